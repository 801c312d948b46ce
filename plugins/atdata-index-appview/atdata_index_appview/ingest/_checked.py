"""What the checks of a ``#commit`` frame found, made before the ingestor needs it (see ``_checking``)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Checked", "Rejected"]


class Rejected(Exception):
    """An event (or a repository) that fails a check: counted under ``metric``, not indexed."""

    def __init__(self, metric: str, reason: str):
        super().__init__(reason)
        self.metric = metric
        self.reason = reason

    def __reduce__(self) -> tuple:
        return Rejected, (self.metric, self.reason)


@attrs.frozen
class Checked:
    """The checks of one commit that depend on its frame alone, each a result or the
    :class:`Rejected` it raised: the CAR read with every block checked against its CID, the commit
    block decoded (with its signed bytes), and the operations of indexed collections proven against
    the signed tree, their records decoded and validated. The ingestor takes each where it would
    have computed it, so an event is refused for the same reason, in the same order, either way;
    what was not computed (``None``) it computes itself."""

    car_read: Any = None
    car_refused: Rejected | None = None
    commit_decoded: tuple[Any, bytes, bytes] | None = None
    commit_refused: Rejected | None = None
    proven_ops: tuple[list, list] | None = None
    ops_refused: Rejected | None = None

    def car(self) -> Any:
        if self.car_refused is not None:
            raise self.car_refused
        return self.car_read

    def commit(self) -> tuple[Any, bytes, bytes] | None:
        if self.commit_refused is not None:
            raise self.commit_refused
        return self.commit_decoded

    def ops(self) -> tuple[list, list]:
        if self.ops_refused is not None:
            raise self.ops_refused
        return self.proven_ops
