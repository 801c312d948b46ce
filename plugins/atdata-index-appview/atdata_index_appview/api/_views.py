"""Responses as JSON text, with records spliced in as they were stored.

A record is never parsed and written again on its way out: its stored JSON
text goes into the response as it is (:class:`RawJson`), so what a client
receives is what the publisher's repository holds, byte for byte. The views
the federation's lexicons define (``entryView``, ``schemaView``,
``lensView``, ``labelView``) are the record's fields beside its location
(``uri``, ``cid``, ``did``, ``indexedAt``): the location is written first,
then the record's own text. A record that itself has a field of one of those
names (a stranger's record may) loses that field in views, so the location
cannot be forged; :func:`record_body` (``getRecord``, ``listRecords``,
``resolveSchema``) always carries the record whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from atdata_index_appview.store import StoredRecord

__all__ = ["RawJson", "dumps", "record_body", "view"]

_VIEW_KEYS = ("uri", "cid", "did", "indexedAt")


class RawJson:
    """JSON text written into a response as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, RawJson):
        out.append(value.text)
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False, allow_nan=False))


def dumps(value: Any) -> bytes:
    """``value`` as UTF-8 JSON, :class:`RawJson` parts as they are."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8", "surrogatepass")


def view(record: StoredRecord) -> RawJson:
    """The record's view: ``uri``, ``cid``, ``did``, ``indexedAt``, then the record's fields as stored."""
    head = {"uri": record.uri, "cid": record.cid or "", "did": record.did, "indexedAt": record.indexed_at}
    text = record.json
    if any(f'"{key}"' in text for key in _VIEW_KEYS):
        value = json.loads(text)
        if isinstance(value, dict) and any(key in value for key in _VIEW_KEYS):
            rest = {key: item for key, item in value.items() if key not in _VIEW_KEYS}
            text = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    prefix = dumps(head).decode("utf-8", "surrogatepass")
    inner = text.strip()
    if inner.startswith("{") and inner[1:].strip() != "}":
        return RawJson(prefix[:-1] + "," + inner[1:])
    return RawJson(prefix)


def record_body(record: StoredRecord) -> dict[str, Any]:
    """``{uri, cid, value}``, the shape of ``com.atproto.repo.getRecord``, the value as stored."""
    body: dict[str, Any] = {"uri": record.uri}
    if record.cid:
        body["cid"] = record.cid
    body["value"] = RawJson(record.json)
    return body
