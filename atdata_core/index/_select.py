"""Selection rules every index provider shares: search, newest-first, schema and label resolution."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from atdata_core.errors import RecordNotFound, ValidationError
from atdata_core.plugins import IndexedRecord
from atdata_core.records import is_version, latest_version, parse_schema_rkey


def at_uri_parts(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` -> ``(did, collection, rkey)``."""
    if not uri.startswith("at://"):
        raise ValidationError(f"{uri!r} is not an at:// URI", rule="format:at-uri")
    parts = uri[len("at://") :].split("/")
    if len(parts) != 3 or not all(parts):
        raise ValidationError(
            f"{uri!r} must name a record: at://<did>/<collection>/<record key>", rule="format:at-uri"
        )
    return parts[0], parts[1], parts[2]


def newest_first(records: Iterable[IndexedRecord]) -> list[IndexedRecord]:
    """Sort by ``createdAt``, newest first (records without one last)."""
    return sorted(records, key=lambda r: str(r.value.get("createdAt") or ""), reverse=True)


def _text_matches(record: IndexedRecord, query: str) -> bool:
    needle = query.lower()
    return any(needle in str(record.value.get(field) or "").lower() for field in ("name", "description"))


def search(
    records: Iterable[IndexedRecord],
    *,
    query: str | None = None,
    tags: Sequence[str] = (),
    limit: int | None = None,
) -> list[IndexedRecord]:
    """Filter by text and tags (every tag must be present), newest first, at most ``limit``."""
    wanted = set(tags)
    out = [
        r
        for r in records
        if (not query or _text_matches(r, query)) and wanted <= set(r.value.get("tags") or ())
    ]
    out = newest_first(out)
    return out[:limit] if limit is not None else out


def pick_schema(records: Iterable[IndexedRecord], repo: str, schema_id: str, version: str | None) -> IndexedRecord:
    """Match by record key ``{schemaId}:{version}`` or by ``name`` + ``version``; latest = highest release."""
    candidates: dict[str, IndexedRecord] = {}
    for record in records:
        rkey = record.uri.rsplit("/", 1)[-1]
        parsed = parse_schema_rkey(rkey)
        if parsed is not None:
            rid, rversion = parsed
        else:
            rid, rversion = record.value.get("name"), record.value.get("version")
        if rid == schema_id and isinstance(rversion, str):
            # our deterministic keys win over another record claiming the same version
            if rversion not in candidates or parsed is not None:
                candidates[rversion] = record
    if version is not None:
        if version in candidates:
            return candidates[version]
        known = ", ".join(sorted(candidates)) or "none"
        raise RecordNotFound(f"{repo} has no schema {schema_id} version {version} (versions published: {known})")
    best = latest_version(candidates, include_prereleases=False) or latest_version(candidates)
    if best is None:
        if candidates:  # only free-form versions: take the newest record
            return newest_first(candidates.values())[0]
        raise RecordNotFound(f"{repo} has no schema named {schema_id}")
    return candidates[best]


def pick_label(records: Iterable[IndexedRecord], repo: str, name: str, version: str | None) -> IndexedRecord:
    """The newest label called ``name`` (with ``version`` when given)."""
    matching = [
        r
        for r in records
        if r.value.get("name") == name and (version is None or r.value.get("version") == version)
    ]
    if not matching:
        what = f"{name}@{version}" if version else name
        raise RecordNotFound(f"{repo} has no label {what}")
    return newest_first(matching)[0]


def is_semver(text: Any) -> bool:
    return isinstance(text, str) and is_version(text)
