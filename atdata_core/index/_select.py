"""The selection rules every index provider shares.

An index provider (embedded SQLite, an account's PDS, an AppView, a plugin of
yours) answers the same questions the same way, whatever it stores. These
functions are those answers, written once; a provider that keeps records in
memory can call them directly, and one that queries a database must return
what they would (the index conformance suite checks it):

- :func:`newest_first`: records by ``createdAt``, newest first.
- :func:`record_tags` / :func:`text_matches` / :func:`search_records`: a
  ``query`` matches the ``name`` or ``description``, ignoring case; every tag
  given must be present (an entry's ``tags``, a schema's ``metadata.tags``).
- :func:`select_schema`: a schema by ``{schemaId}:{version}`` record key or by
  ``name`` + ``version``; without a version the highest semver release wins
  (a prerelease ranks below its release; free-form versions only when there
  is nothing else, newest first).
- :func:`select_label`: the newest label of a name (and version, when given).

Records are written by strangers: a field of the wrong type matches nothing,
it never raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from atdata_core._aturi import AtUri
from atdata_core._nsids import SCHEMA_NSID
from atdata_core.errors import RecordNotFound
from atdata_core.plugins._contracts import IndexedRecord

__all__ = [
    "newest_first",
    "record_tags",
    "search_records",
    "select_label",
    "select_schema",
    "text_matches",
]


def _created(record: IndexedRecord) -> str:
    value = record.value.get("createdAt") if isinstance(record.value, Mapping) else None
    return value if isinstance(value, str) else ""


def newest_first(records: Iterable[IndexedRecord]) -> list[IndexedRecord]:
    """Sorted by ``createdAt``, newest first; records without a usable one last."""
    return sorted(records, key=_created, reverse=True)


def record_tags(value: Mapping[str, Any]) -> frozenset[str]:
    """The tags a record carries: ``tags``, or a schema's ``metadata.tags``. Non-strings are ignored.

    >>> sorted(record_tags({"tags": ["vision", 5, "cats"]}))
    ['cats', 'vision']
    """
    if not isinstance(value, Mapping):
        return frozenset()
    tags = value.get("tags")
    if value.get("$type") == SCHEMA_NSID or tags is None:
        metadata = value.get("metadata")
        tags = metadata.get("tags") if isinstance(metadata, Mapping) else tags
    if not isinstance(tags, (list, tuple)):
        return frozenset()
    return frozenset(tag for tag in tags if isinstance(tag, str))


def text_matches(value: Mapping[str, Any], query: str) -> bool:
    """Whether ``query`` occurs in the record's ``name`` or ``description``, ignoring case."""
    if not isinstance(value, Mapping):
        return False
    needle = query.casefold()
    return any(
        isinstance(text, str) and needle in text.casefold()
        for text in (value.get("name"), value.get("description"))
    )


def search_records(
    records: Iterable[IndexedRecord],
    *,
    query: str | None = None,
    tags: Sequence[str] = (),
    limit: int | None = None,
) -> list[IndexedRecord]:
    """Records matching ``query`` and carrying every tag in ``tags``, newest first, at most ``limit``."""
    wanted = frozenset(tags)
    found = [
        record
        for record in records
        if (not query or text_matches(record.value, query)) and wanted <= record_tags(record.value)
    ]
    found = newest_first(found)
    return found[:limit] if limit is not None else found


def select_schema(records: Iterable[IndexedRecord], repo: str, schema_id: str, version: str | None = None) -> IndexedRecord:
    """The schema record ``schema_id`` (at ``version``, else the highest) among one account's schema records.

    Raises :class:`~atdata_core.errors.RecordNotFound` listing the versions
    that exist when the one asked for does not.
    """
    from atdata_core.records import latest_version, parse_schema_rkey

    candidates: dict[str, IndexedRecord] = {}
    for record in records:
        try:
            rkey = AtUri.parse(record.uri).rkey or ""
        except Exception:  # noqa: BLE001 - a record with a malformed URI is not a candidate
            continue
        parsed = parse_schema_rkey(rkey)
        if parsed is not None:
            rid, rversion = parsed
        else:
            rid, rversion = record.value.get("name"), record.value.get("version")
        if rid == schema_id and isinstance(rversion, str):
            # Our deterministic keys win over another record claiming the same version.
            if rversion not in candidates or parsed is not None:
                candidates[rversion] = record
    if version is not None:
        if version in candidates:
            return candidates[version]
        known = ", ".join(sorted(candidates)) or "none"
        raise RecordNotFound(f"{repo} has no schema {schema_id} version {version} (versions published: {known})")
    best = latest_version(candidates, include_prereleases=False) or latest_version(candidates)
    if best is None:
        if candidates:  # only free-form versions: the newest record
            return newest_first(candidates.values())[0]
        raise RecordNotFound(f"{repo} has no schema named {schema_id}")
    return candidates[best]


def select_label(records: Iterable[IndexedRecord], repo: str, name: str, version: str | None = None) -> IndexedRecord:
    """The newest label called ``name`` (with ``version`` when given) among one account's labels."""
    matching = [
        record
        for record in records
        if record.value.get("name") == name and (version is None or record.value.get("version") == version)
    ]
    if not matching:
        what = f"{name}@{version}" if version else name
        raise RecordNotFound(f"{repo} has no label {what}")
    return newest_first(matching)[0]
