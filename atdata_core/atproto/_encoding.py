"""Records as the PDS takes them: checked, validated and JSON-encoded before anything is sent.

A PDS does not validate lexicons it does not know (DESIGN D6), so:

- ``science.alt.dataset.*`` records are validated strictly against their
  lexicon; a :class:`~atdata_core.errors.ValidationError` names the JSON path;
- the record is JSON-encoded as the ATProto data model says: ``bytes`` become
  ``{"$bytes": base64}`` (standard alphabet, no padding), blob refs pass as
  they are, floats are refused (the data model has none);
- a record over 1,000,000 bytes of JSON is refused naming the limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from atdata_core._bytes import encode_bytes
from atdata_core.errors import RecordError

__all__ = ["MAX_RECORD_BYTES", "VALIDATED_NAMESPACE", "dumps", "encode_record"]

#: A PDS refuses a record whose JSON encoding is larger than this.
MAX_RECORD_BYTES = 1_000_000
#: Records of this namespace are validated against the lexicons before they are written.
VALIDATED_NAMESPACE = "science.alt.dataset."


def encode_record(record: Any, collection: str | None = None, *, validate: bool = True) -> dict[str, Any]:
    """Check a record and turn it into its JSON wire form, refusing it before anything is sent.

    ``record`` is a dict or a record model from :mod:`atdata_core.records`.
    ``$type`` is set to ``collection`` when missing (and must equal it when
    present). ``science.alt.dataset.*`` records are validated strictly.
    """
    if not isinstance(record, Mapping):
        if attrs.has(type(record)):
            from atdata_core.records import to_record

            record = to_record(record)
        else:
            raise RecordError(f"a record is a dict (or a record model), not {type(record).__name__}")
    record = dict(record)
    nsid = record.get("$type")
    if collection is None:
        if not isinstance(nsid, str):
            raise RecordError('the record has no "$type" and no collection was named')
        collection = nsid
    elif nsid is None:
        record = {"$type": collection, **record}
    elif nsid != collection:
        raise RecordError(f"the record's $type is {nsid!r} but it is written to the collection {collection!r}")
    if validate and collection.startswith(VALIDATED_NAMESPACE):
        from atdata_core.lexicon import validate_record

        validate_record(record, collection, strict=True)
    wire = _to_wire(record, "$")
    size = len(dumps(wire))
    if size > MAX_RECORD_BYTES:
        raise RecordError(
            f"the {collection} record is {size:,} bytes of JSON; a PDS accepts at most {MAX_RECORD_BYTES:,} bytes "
            f"per record. Move large content into a blob or shard storage and refer to it"
        )
    return wire


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as requests to a PDS carry it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _to_wire(value: Any, path: str) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return encode_bytes(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RecordError(f"{path}: record keys are strings, not {type(key).__name__} ({key!r})")
            out[key] = _to_wire(item, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_wire(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise RecordError(
            f"{path}: {value!r} is a float; the ATProto data model has no floats (use an integer, or a string)"
        )
    if hasattr(value, "__index__"):  # numpy integers
        return int(value)
    raise RecordError(f"{path}: a {type(value).__name__} cannot be written into a record")
