"""What the pages show of a record: text, links and tables made from values nobody checked.

Every record is a stranger's (DESIGN D8), so nothing here trusts a field's
type, length or content: a field of the wrong type shows as missing, long
text is cut, a URL becomes a link only when it is an absolute ``http(s)``
URL, and an internal link is built from a parsed AT-URI, each part quoted.
Escaping is the templates' (Jinja2 autoescape); nothing here makes markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs

from atdata_core.plugins import (
    ENTRY_NSID,
    SCHEMA_NSID,
    STORAGE_BLOBS_NSID,
    STORAGE_HTTP_NSID,
    STORAGE_S3_NSID,
    AtUri,
)

from atdata_index_appview.store import normalize_time

__all__ = [
    "FieldRow",
    "SchemaFields",
    "Shard",
    "Storage",
    "account_path",
    "checksum_text",
    "dataset_path",
    "diff_fields",
    "home_path",
    "human_bytes",
    "load_line",
    "mapping",
    "pretty_json",
    "record_path",
    "schema_fields",
    "schema_path",
    "semver_key",
    "storage_of",
    "text",
    "web_url",
    "when",
]

#: A page lists at most this many shards of a dataset (the rest are counted).
MAX_SHARDS_SHOWN = 50
#: Nested sample classes are shown this many levels deep.
MAX_FIELD_DEPTH = 4

_SEMVER = re.compile(r"^v?(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_SHORT_REF_ACCOUNT = re.compile(r"^[^/\s@]+$")
_SHORT_REF_NAME = re.compile(r"^[^@\s]+$")


def text(value: Any, limit: int = 5000) -> str | None:
    """``value`` if it is a non-empty string (NULs dropped, cut at ``limit`` with an ellipsis), else None."""
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", "").strip()
    if not cleaned:
        return None
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is an object, else an empty one: a field of the wrong type reads as absent."""
    return value if isinstance(value, Mapping) else {}


def number(value: Any) -> int | None:
    """A non-negative integer field, else None (``True`` is no number here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def web_url(value: Any) -> str | None:
    """``value`` when it may be a link target: an absolute ``http`` or ``https`` URL with a host.

    Anything else (``javascript:``, ``data:``, a relative path, a URL with
    white space or control characters) is None and shows as text.
    """
    if not isinstance(value, str) or not 0 < len(value) <= 2048:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return value


def when(value: Any, *, with_time: bool = False) -> str | None:
    """An RFC 3339 datetime as ``2025-02-01`` (UTC), or with the time; None when it is not one."""
    stamp = normalize_time(value)
    if not stamp:
        return None
    return f"{stamp[:10]} {stamp[11:16]} UTC" if with_time else stamp[:10]


def human_bytes(value: Any) -> str | None:
    """A byte count as ``12.4 MiB``; None for anything but a non-negative integer."""
    size = number(value)
    if size is None:
        return None
    if size < 1024:
        return f"{size} B"
    amount = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        amount /= 1024
        if amount < 1024 or unit == "PiB":
            return f"{amount:.1f} {unit}"
    return f"{size} B"  # pragma: no cover - the loop always returns


def pretty_json(value: Any, limit: int = 200_000) -> str:
    """A record as indented JSON for people to read (cut when huge)."""
    try:
        shown = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "\n…"


# --------------------------------------------------------------------------- internal links


def _parsed(uri: Any) -> AtUri | None:
    try:
        return AtUri.parse(uri)
    except Exception:  # noqa: BLE001 - a stranger's malformed reference is no link
        return None


def record_path(uri: Any) -> str | None:
    """The page of the record an AT-URI names (a dataset or a schema), None when there is none."""
    parsed = _parsed(uri)
    if parsed is None:
        return None
    page = {ENTRY_NSID: "dataset", SCHEMA_NSID: "schema"}.get(parsed.collection or "")
    if page is None:
        return None
    return f"/{page}/{quote(parsed.authority, safe=':')}/{quote(parsed.rkey or '', safe=':')}"


def dataset_path(uri: Any) -> str | None:
    """``/dataset/<did>/<rkey>`` for an entry's AT-URI."""
    parsed = _parsed(uri)
    return record_path(uri) if parsed is not None and parsed.collection == ENTRY_NSID else None


def schema_path(uri: Any) -> str | None:
    """``/schema/<did>/<rkey>`` for a schema's AT-URI."""
    parsed = _parsed(uri)
    return record_path(uri) if parsed is not None and parsed.collection == SCHEMA_NSID else None


def account_path(did: str) -> str:
    return f"/account/{quote(did, safe=':')}"


def home_path(*, q: str = "", tags: Sequence[str] = (), schema: str | None = None, author: str | None = None,
              cursor: str | None = None, page: int = 1, limit: int | None = None) -> str:
    """The search page with these filters (the query string quoted, empty filters left out)."""
    params: list[tuple[str, str]] = []
    if limit is not None:
        params.append(("limit", str(limit)))
    if q:
        params.append(("q", q))
    params.extend(("tags", tag) for tag in tags)  # one tag each, commas and all (the form's box splits at commas)
    if schema:
        params.append(("schema", schema))
    if author:
        params.append(("author", author))
    if cursor:
        params.append(("cursor", cursor))
        params.append(("page", str(page)))
    return "/?" + urlencode(params) if params else "/"


# --------------------------------------------------------------------------- the load line


def python_string(value: str) -> str:
    """``value`` as a double-quoted Python string literal (every odd character escaped)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable() and (ch.isascii() or not ch.isspace()):
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def load_line(uri: str, handle: str | None, name: str | None, newest_of_name: bool) -> str:
    """The one line of Python that loads the entry at ``uri``.

    ``@handle/name`` when that reference reaches this very entry (the
    account has a handle, the name fits the reference syntax, and no newer
    entry of the account has the same name); otherwise the entry's AT-URI.
    """
    ref = uri
    if handle and name and newest_of_name and _SHORT_REF_ACCOUNT.match(handle) and _SHORT_REF_NAME.match(name):
        ref = f"@{handle}/{name}"
    return f"atdata_core.load({python_string(ref)})"


# --------------------------------------------------------------------------- schemas


@attrs.frozen
class FieldRow:
    """One field of a schema as a table row: ``name`` is dotted for fields of nested objects."""

    name: str
    type: str
    dtype: str = ""
    shape: str = ""
    required: bool = False
    description: str = ""


@attrs.frozen
class SchemaFields:
    """The fields of a schema, or why they cannot be shown (then ``rows`` is empty)."""

    rows: tuple[FieldRow, ...]
    problem: str | None = None


def _type_text(ft: Any) -> tuple[str, str, str]:
    """``(type, dtype, shape)`` of a parsed field type, in Python's spelling."""
    from atdata_core.plugins import AnyValue, Array, DictOf, ListOf, Nested, Optional, Scalar

    if isinstance(ft, Scalar):
        return ft.type.__name__, "", ""
    if isinstance(ft, Array):
        dtype = "" if ft.dtype is None else str(ft.dtype)
        shape = "" if ft.shape is None else "(" + ", ".join("None" if n is None else str(n) for n in ft.shape) + (
            ",)" if len(ft.shape) == 1 else ")")
        return "NDArray", dtype, shape
    if isinstance(ft, Optional):
        inner, dtype, shape = _type_text(ft.inner)
        return f"{inner} | None", dtype, shape
    if isinstance(ft, ListOf):
        inner, dtype, shape = _type_text(ft.item)
        return f"list[{inner}]", dtype, shape
    if isinstance(ft, DictOf):
        inner, dtype, shape = _type_text(ft.value)
        return f"dict[str, {inner}]", dtype, shape
    if isinstance(ft, Nested):
        return "object", "", ""
    if isinstance(ft, AnyValue):
        return "Any", "", ""
    return type(ft).__name__, "", ""


def _nested_class(ft: Any) -> type | None:
    from atdata_core.plugins import ListOf, Nested, Optional

    while isinstance(ft, (Optional, ListOf)):
        ft = ft.inner if isinstance(ft, Optional) else ft.item
    return ft.cls if isinstance(ft, Nested) else None


def _rows(fields: Sequence[Any], prefix: str, depth: int) -> list[FieldRow]:
    from atdata_core.plugins import sample_fields

    rows: list[FieldRow] = []
    for field in fields:
        kind, dtype, shape = _type_text(field.type)
        rows.append(FieldRow(
            name=prefix + field.name, type=kind, dtype=dtype, shape=shape, required=bool(field.required),
            description=text(field.description, 1000) or "",
        ))
        nested = _nested_class(field.type)
        if nested is not None and depth < MAX_FIELD_DEPTH:
            rows.extend(_rows(sample_fields(nested), f"{prefix}{field.name}.", depth + 1))
    return rows


def schema_fields(record: Mapping[str, Any]) -> SchemaFields:
    """The fields a schema record describes, as its format reads them (the format a plugin may add).

    Never raises: a schema its format refuses, or of a format nobody
    installed, gives no rows and the reason.
    """
    from atdata_core.plugins import schema_format

    body = record.get("schema")
    if not isinstance(body, Mapping):
        return SchemaFields((), "the record has no schema body")
    schema_type = record.get("schemaType")
    try:
        if isinstance(schema_type, str) and schema_type:
            fmt = schema_format(schema_type)
        elif isinstance(body.get("$type"), str):
            fmt = schema_format(union_type=body["$type"])
        else:
            return SchemaFields((), "the record names no schema format (schemaType)")
        return SchemaFields(tuple(_rows(fmt.fields_of(body), "", 1)))
    except Exception as err:  # noqa: BLE001 - a stranger's schema may be anything; say why it shows no fields
        reason = text(str(err), 500) or type(err).__name__
        return SchemaFields((), reason)


@attrs.frozen
class FieldChange:
    """How one field differs between two versions of a schema."""

    name: str
    kind: str  # "added", "removed" or "changed"
    details: tuple[str, ...] = ()


def diff_fields(old: Sequence[FieldRow], new: Sequence[FieldRow]) -> list[FieldChange]:
    """Fields added, removed and changed (type, dtype, shape, required, description) from ``old`` to ``new``."""
    before = {row.name: row for row in old}
    after = {row.name: row for row in new}
    changes = [FieldChange(row.name, "removed", (_describe(row),)) for row in old if row.name not in after]
    for row in new:
        previous = before.get(row.name)
        if previous is None:
            changes.append(FieldChange(row.name, "added", (_describe(row),)))
            continue
        details = []
        for attribute in ("type", "dtype", "shape"):
            was, now = getattr(previous, attribute), getattr(row, attribute)
            if was != now:
                details.append(f"{attribute} {was or 'any'} → {now or 'any'}")
        if previous.required != row.required:
            details.append("now required" if row.required else "now optional")
        if previous.description != row.description:
            details.append("description changed")
        if details:
            changes.append(FieldChange(row.name, "changed", tuple(details)))
    return changes


def _describe(row: FieldRow) -> str:
    parts = [row.type]
    if row.dtype:
        parts.append(row.dtype)
    if row.shape:
        parts.append(row.shape)
    parts.append("required" if row.required else "optional")
    return ", ".join(parts)


def semver_key(version: Any) -> tuple:
    """Sorts versions by semantic version, a prerelease below its release; anything else first, by text."""
    match = _SEMVER.match(version) if isinstance(version, str) else None
    if match is None:
        return (0, str(version))
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (1, int(major), int(minor), int(patch), 1, ())
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
    return (1, int(major), int(minor), int(patch), 0, parts)


# --------------------------------------------------------------------------- storage


@attrs.frozen
class Shard:
    """One shard as a row: what names it, a link when it has a web address, its checksum and size."""

    label: str
    href: str | None = None
    checksum: str = ""
    size: str = ""


@attrs.frozen
class Storage:
    """Where an entry's shards are, summed up."""

    kind: str
    where: str = ""
    shard_count: int = 0
    shards: tuple[Shard, ...] = ()
    problem: str | None = None


def checksum_text(value: Any) -> str:
    """``sha256:ab12…`` of a ``{algorithm, digest}`` checksum; ``""`` when there is none."""
    if not isinstance(value, Mapping):
        return ""
    digest = text(value.get("digest"), 200)
    if digest is None:
        return ""
    algorithm = text(value.get("algorithm"), 40) or "?"
    return f"{algorithm}:{digest}"


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def storage_of(value: Any) -> Storage:
    """A summary of an entry's ``storage`` union member; never raises."""
    if not isinstance(value, Mapping):
        return Storage(kind="none", problem="the entry says nothing about where its shards are")
    kind = text(value.get("$type"), 300) or "(no $type)"
    kind = kind.removesuffix("#main")
    if kind == STORAGE_HTTP_NSID:
        items = _items(value.get("shards"))
        shards = []
        for item in items[:MAX_SHARDS_SHOWN]:
            item = mapping(item)
            url = item.get("url")
            shards.append(Shard(label=text(url, 2048) or "(no url)", href=web_url(url),
                                checksum=checksum_text(item.get("checksum"))))
        return Storage(kind="HTTP", shard_count=len(items), shards=tuple(shards))
    if kind == STORAGE_S3_NSID:
        items = _items(value.get("shards"))
        bucket = text(value.get("bucket"), 300) or "?"
        where = ", ".join(part for part in (
            f"bucket {bucket}",
            f"region {text(value.get('region'), 100)}" if text(value.get("region"), 100) else "",
            f"endpoint {text(value.get('endpoint'), 500)}" if text(value.get("endpoint"), 500) else "",
        ) if part)
        shards = []
        for item in items[:MAX_SHARDS_SHOWN]:
            item = mapping(item)
            key = text(item.get("key"), 2048) or "(no key)"
            shards.append(Shard(label=f"s3://{bucket}/{key}", checksum=checksum_text(item.get("checksum"))))
        return Storage(kind="S3", where=where, shard_count=len(items), shards=tuple(shards))
    if kind == STORAGE_BLOBS_NSID:
        items = _items(value.get("blobs"))
        shards = []
        for item in items[:MAX_SHARDS_SHOWN]:
            item = mapping(item)
            blob = mapping(item.get("blob"))
            ref = blob.get("ref")
            cid = text(ref.get("$link") if isinstance(ref, Mapping) else blob.get("cid"), 200)
            shards.append(Shard(label=cid or "(no CID)", checksum=checksum_text(item.get("checksum")),
                                size=human_bytes(blob.get("size")) or ""))
        return Storage(kind="PDS blobs", where="the publisher's PDS", shard_count=len(items), shards=tuple(shards))
    return Storage(kind=kind, problem="a storage kind this AppView does not know; a plugin may read it")
