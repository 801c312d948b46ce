"""Published lenses: a lens record, its author and the verifications that vouch for it, handed to an executor.

Loading a published lens (:func:`load_published_lens`, behind
:func:`atdata_core.load_lens`) gathers what the executor's trust decision
needs, without running anything:

- the record, its CID (the version of the record) and its author, the DID of
  the repository holding it;
- the ``science.alt.dataset.lensVerification`` records that DIDs in
  ``[lens] trusted_dids`` published about it, read from their repositories;
- whether you passed the lens explicitly (``trust=True``).

The executor decides (DESIGN D3): the built-in one runs installed Python code
only, and only when that code is trusted (:mod:`atdata_core.executors`).
An executor plugin whose ``load_lens`` does not take ``uri``, ``cid``,
``verifications`` or ``explicit`` gets only the arguments it declares, as
pluggy does with hook arguments.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from atdata_core._aturi import AtUri
from atdata_core._nsids import LENS_NSID, LENS_VERIFICATION_NSID
from atdata_core.errors import AtdataError, LensExecutionRefused, RecordError

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.lenses._lens import Lens
    from atdata_core.plugins import IndexedRecord, IndexProvider

__all__ = ["PublishedLens", "find_verifications", "load_published_lens", "published_lens", "trusted_dids"]

log = logging.getLogger("atdata_core.lenses")
_warned: set[tuple[str, str]] = set()


@attrs.frozen
class PublishedLens:
    """A lens record as read, with what a trust decision needs: its author and the verifications found."""

    uri: str
    cid: str | None
    author: str
    value: Mapping[str, Any] = attrs.field(repr=False)
    verifications: tuple[IndexedRecord, ...] = attrs.field(default=(), repr=False)

    @property
    def name(self) -> str:
        name = self.value.get("name")
        return name if isinstance(name, str) else "lens"

    @property
    def language(self) -> str:
        getter = self.value.get("getterCode")
        language = getter.get("language") if isinstance(getter, Mapping) else None
        language = language or self.value.get("language") or "python"
        return str(language)


def trusted_dids() -> list[str]:
    """The DIDs in ``[lens] trusted_dids`` (``ATDATA_LENS_TRUSTED_DIDS``)."""
    from atdata_core.plugins import get_config

    return [did for did in get_config().get_list("lens.trusted_dids") if did.startswith("did:")]


def find_verifications(provider: IndexProvider, lens_uri: str, verifiers: Iterable[str]) -> list[IndexedRecord]:
    """The lensVerification records each of ``verifiers`` published about the lens at ``lens_uri``.

    Records that name another lens are left out; a verifier whose repository
    cannot be read is skipped with a warning (the decision then lacks its word).
    """
    from atdata_core.lexicon import validate_record

    wanted = _lens_key(lens_uri)
    found = []
    for did in dict.fromkeys(verifiers):
        try:
            listed = provider.list_records(LENS_VERIFICATION_NSID, repo=did)
        except AtdataError as err:
            log.warning("lens verifications of %s could not be read: %s", did, err)
            continue
        for item in listed:
            value = item.value if isinstance(item.value, Mapping) else None
            if value is None or _lens_key(value.get("lens")) != wanted or _authority(item.uri) != did:
                continue
            try:
                validate_record(dict(value), LENS_VERIFICATION_NSID, strict=False)
            except AtdataError as err:
                log.warning("skipped %s, not a readable lensVerification: %s", item.uri, err)
                continue
            found.append(item)
    return found


def published_lens(provider: IndexProvider, ref: str, *, verifiers: Iterable[str] | None = None) -> PublishedLens:
    """The lens record at ``ref`` (an ``at://`` URI, its authority a handle or DID), with its verifications.

    ``verifiers``: whose verifications to read (default: ``[lens] trusted_dids``).
    """
    from atdata_core.records import LensRecord, read_record

    uri = AtUri.parse(ref)
    did = provider.resolve_repo(uri.authority)
    found = provider.get_record(str(uri.with_authority(did)))
    kind = found.value.get("$type") if isinstance(found.value, Mapping) else None
    if kind is not None and kind != LENS_NSID:
        raise RecordError(f"{found.uri} is a {kind} record, not a lens ({LENS_NSID})")
    _, warnings = read_record(dict(found.value), LensRecord)
    for warning in warnings:  # tolerated deviations (DESIGN D6), said once per record
        if (found.uri, str(warning)) not in _warned:
            _warned.add((found.uri, str(warning)))
            log.warning("%s: %s", found.uri, warning)
    verifications = find_verifications(provider, found.uri, trusted_dids() if verifiers is None else verifiers)
    return PublishedLens(found.uri, found.cid, did, dict(found.value), tuple(verifications))


def load_published_lens(
    provider: IndexProvider,
    ref: str | PublishedLens,
    *,
    executor: Any = None,
    trust: bool = False,
    source_type: Any = None,
    view_type: Any = None,
) -> Lens:
    """The lens a published record describes, its code run by an executor that decided to trust it.

    ``trust=True`` is you passing this lens explicitly: its code then runs if
    it is installed here at the pinned commit, whoever published it.
    """
    lens = ref if isinstance(ref, PublishedLens) else published_lens(provider, ref)
    if executor is None:
        from atdata_core.plugins import lens_executor

        executor = lens_executor(language=lens.language)
    return call_supported(
        executor.load_lens, dict(lens.value),
        source_type=source_type, view_type=view_type, author=lens.author,
        uri=lens.uri, cid=lens.cid, verifications=lens.verifications, explicit=trust,
    )


def decide_published_lens(lens: PublishedLens, *, executor: Any = None, trust: bool = False) -> Any:
    """The executor's trust decision on a published lens (nothing imported), or None when it cannot say.

    An executor without a ``decide`` method (the optional capability the
    built-in one has) gives None.
    """
    if executor is None:
        from atdata_core.plugins import lens_executor

        executor = lens_executor(language=lens.language)
    decide = getattr(executor, "decide", None)
    if not callable(decide):
        return None
    return call_supported(
        decide, dict(lens.value), author=lens.author, uri=lens.uri, cid=lens.cid,
        verifications=lens.verifications, explicit=trust,
    )


def call_supported(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` with only the keyword arguments it declares (all, if it takes ``**kwargs``).

    An executor written before an argument was added keeps working; a refused
    ``explicit=True`` is not silently dropped: an executor that cannot be told
    a lens was passed explicitly is asked without it and decides on its own.
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return function(*args, **kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return function(*args, **kwargs)
    names = {p.name for p in parameters}
    return function(*args, **{key: value for key, value in kwargs.items() if key in names})


def refused_in_context(err: LensExecutionRefused, context: str) -> LensExecutionRefused:
    """The same refusal with what was being done in front (``migrating com.example.image 1.0.0 -> 2.0.0``)."""
    new = LensExecutionRefused(f"{context}: {err}")
    new.__cause__ = err
    return new


def _authority(uri: Any) -> str | None:
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    return uri[len("at://"):].split("/", 1)[0]


def _lens_key(uri: Any) -> tuple[str, ...] | None:
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[len("at://"):].split("/")
    return tuple(parts[:3]) if len(parts) >= 3 else None
