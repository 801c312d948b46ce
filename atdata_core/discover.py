"""Discovery without an AppView: one account's schemas, datasets, lenses and labels.

Each function asks the configured index provider (``[index] default``: by
default ``pds``, the account's repository on its own PDS), or the ``index``
you pass (a provider or its name), and
filters by text (``query`` in the name or description, ignoring case) and
tags (every tag given must be present). Newest first.

Records are written by strangers (DESIGN D6, D8): a listed record that is not a
record of its collection even when read tolerantly (an entry whose ``tags`` is
``5``, a schema whose ``metadata`` is a string) is left out with a warning on
the ``atdata_core.discover`` logger, and the rest are listed. With ``limit``,
skipped records count against it (the provider applies the limit)::

    from atdata_core.discover import list_datasets
    for found in list_datasets("alice.example.com", query="mnist", tags=["vision"]):
        print(found.uri, found.value["name"])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from atdata_core._nsids import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID
from atdata_core.plugins._contracts import IndexedRecord, IndexProvider

__all__ = ["list_datasets", "list_labels", "list_lenses", "list_schemas"]

log = logging.getLogger("atdata_core.discover")


def _list(collection: str, handle_or_did: str, query: str | None, tags: Sequence[str], limit: int | None,
          index: IndexProvider | str | None) -> list[IndexedRecord]:
    from atdata_core._loading import index_for

    provider = index_for(index)
    repo = provider.resolve_repo(handle_or_did)
    found = provider.list_records(collection, repo=repo, query=query, tags=tuple(tags), limit=limit)
    return [record for record in found if _readable(record, collection)]


def _readable(record: IndexedRecord, collection: str) -> bool:
    """Whether a listed record reads as a record of ``collection`` (tolerantly); if not, say so and skip it."""
    from atdata_core.errors import ValidationError
    from atdata_core.lexicon import validate_record

    value = getattr(record, "value", None)
    if not isinstance(value, Mapping):
        problem = f"its value is {type(value).__name__}, not a record object"
    else:
        try:
            validate_record(dict(value), collection, strict=False)
            return True
        except ValidationError as err:
            problem = str(err)
        except RecursionError:
            problem = "it nests values too deeply to read"
    log.warning("skipped %s, which is not a readable %s record: %s", getattr(record, "uri", "?"), collection, problem)
    return False


def list_datasets(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                  limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Dataset entries (``science.alt.dataset.entry``) of one account."""
    return _list(ENTRY_NSID, handle_or_did, query, tags, limit, index)


def list_schemas(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                 limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Schema records of one account (every version of every schema id); tags match ``metadata.tags``."""
    return _list(SCHEMA_NSID, handle_or_did, query, tags, limit, index)


def list_lenses(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Lens records of one account."""
    return _list(LENS_NSID, handle_or_did, query, tags, limit, index)


def list_labels(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Label records of one account."""
    return _list(LABEL_NSID, handle_or_did, query, tags, limit, index)
