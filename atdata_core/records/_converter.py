"""The wire shape of records: a cattrs converter between the models and dicts.

``to_record`` gives what the ATProto client sends: camelCase keys, ``$type``
on records and union members, ``createdAt`` as RFC 3339 with a zone, bytes as
Python ``bytes`` (the client JSON-encodes them as ``{"$bytes": ...}``) and
blobs as ``{"$type": "blob", "ref": {"$link": cid}, "mimeType", "size"}``.

``from_record`` reads tolerantly: unknown fields go to ``extra``, unknown union
members stay raw dicts, and the deviations listed in :mod:`atdata_core.lexicon`
are accepted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from atdata_core._bytes import decode_bytes
from atdata_core.errors import RecordError
from atdata_core.records import _models as m

converter = cattrs.Converter(unstruct_collection_overrides={tuple: list})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def format_datetime(value: datetime) -> str:
    """RFC 3339 with millisecond precision and a ``Z`` for UTC: ``2025-01-31T12:00:00.000Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 datetime; a missing zone is read as UTC."""
    if isinstance(text, datetime):
        return m._aware(text)
    if not isinstance(text, str):
        raise RecordError(f"createdAt should be an RFC 3339 string, got {type(text).__name__}")
    cleaned = text.strip()
    if cleaned[-1:] in ("z", "Z"):
        cleaned = cleaned[:-1] + "+00:00"
    if len(cleaned) > 10 and cleaned[10] == "t":  # RFC 3339 allows a lowercase separator; other clients write it
        cleaned = cleaned[:10] + "T" + cleaned[11:]
    # Python before 3.11 handled 3 or 6 fraction digits only; keep at most 6.
    if "." in cleaned:
        head, _, tail = cleaned.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        cleaned = head + "." + tail[: min(digits, 6)] + tail[digits:]
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise RecordError(f"createdAt {text!r} is not an RFC 3339 datetime") from None
    return m._aware(value)


converter.register_unstructure_hook(datetime, format_datetime)
converter.register_structure_hook(datetime, lambda value, _: parse_datetime(value))


# --- blobs --------------------------------------------------------------------


def _unstructure_blob(blob: m.BlobRef) -> dict[str, Any]:
    wire: dict[str, Any] = {"$type": "blob", "ref": {"$link": blob.cid}, "mimeType": blob.mime_type}
    wire["size"] = blob.size if blob.size is not None else 0
    return wire


def _structure_blob(value: Any, _: type) -> m.BlobRef:
    if isinstance(value, m.BlobRef):
        return value
    if not isinstance(value, dict):
        raise RecordError(f"a blob reference is an object, got {type(value).__name__}")
    ref = value.get("ref")
    if isinstance(ref, dict) and isinstance(ref.get("$link"), str):
        return m.BlobRef(ref["$link"], value.get("mimeType", "application/octet-stream"), value.get("size"))
    if isinstance(ref, str):  # some SDKs flatten the link
        return m.BlobRef(ref, value.get("mimeType", "application/octet-stream"), value.get("size"))
    if isinstance(value.get("cid"), str):  # the legacy {cid, mimeType} form
        return m.BlobRef(value["cid"], value.get("mimeType", "application/octet-stream"), value.get("size"))
    raise RecordError("a blob reference needs ref.$link (or the legacy cid)")


converter.register_unstructure_hook(m.BlobRef, _unstructure_blob)
converter.register_structure_hook(m.BlobRef, _structure_blob)


# --- attrs classes: camelCase, $type, extra ------------------------------------


def _omittable(attribute: attrs.Attribute) -> bool:
    """Optional wire fields are left out when unset; defaults that carry meaning are written."""
    default = attribute.default
    if default is None or default == ():
        return True
    return isinstance(default, attrs.Factory) and default.factory in (dict, list, tuple)


def _register(cls: type, *, type_name: str | None = None, wire_constants: dict[str, Any] | None = None,
              before_structure=None, after_unstructure=None, wire_required: tuple[str, ...] = ()) -> None:
    """Hooks for one attrs class.

    ``wire_required`` names wire fields that have a Python default (so a new
    object can leave them out) but must be present in a record being read:
    filling them in would invent data.
    """
    fields = attrs.fields(cls)
    has_extra = any(a.name == "extra" for a in fields)
    overrides = {}
    for a in fields:
        if a.name == "extra":
            overrides[a.name] = override(omit=True)
        else:
            overrides[a.name] = override(rename=_camel(a.name), omit_if_default=_omittable(a))
    base_unstructure = make_dict_unstructure_fn(cls, converter, **overrides)
    base_structure = make_dict_structure_fn(cls, converter, **overrides)
    known = {_camel(a.name) for a in fields if a.name != "extra"} | {"$type"} | set(wire_constants or ())

    def unstructure(obj: Any) -> dict[str, Any]:
        wire: dict[str, Any] = {"$type": type_name} if type_name else {}
        wire.update(wire_constants or {})
        wire.update(base_unstructure(obj))
        if after_unstructure is not None:
            after_unstructure(obj, wire)
        if has_extra:
            for key, value in obj.extra.items():
                wire.setdefault(key, value)
        return wire

    def structure(value: Any, _: type) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise RecordError(f"{cls.__name__} is read from an object, got {type(value).__name__}")
        value = dict(value)
        for name in wire_required:
            if value.get(name) is None:
                raise RecordError(f"{cls.__name__} record has no {name!r}; it is required")
        extra: dict[str, Any] = {}
        if before_structure is not None:
            before_structure(value, extra)
        # null means absent for optional fields (a tolerated deviation).
        value = {k: v for k, v in value.items() if v is not None or k not in known}
        obj = base_structure(value, cls)
        if has_extra:
            extra.update({k: v for k, v in value.items() if k not in known})
            obj = attrs.evolve(obj, extra=extra)
        return obj

    converter.register_unstructure_hook(cls, unstructure)
    converter.register_structure_hook(cls, structure)


# Entry metadata: a dict in Python, msgpack bytes on the wire.


def _entry_metadata_out(obj: m.EntryRecord, wire: dict[str, Any]) -> None:
    if obj.metadata is not None:
        import msgpack

        wire["metadata"] = msgpack.packb(obj.metadata, use_bin_type=True)


def _entry_metadata_in(value: dict[str, Any], extra: dict[str, Any]) -> None:
    raw = value.get("metadata")
    if raw is None or (isinstance(raw, dict) and "$bytes" not in raw):
        return  # absent, or the tolerated JSON-object form
    data = decode_bytes(raw)
    decoded: Any = None
    if data is not None:
        import msgpack

        try:
            decoded = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception:  # noqa: BLE001 - any undecodable payload is kept raw below
            decoded = None
    if isinstance(decoded, dict):
        value["metadata"] = decoded
    else:
        # Not a msgpack map: keep the wire value untouched so nothing is lost.
        extra["metadata"] = value.pop("metadata")


def _schema_in(value: dict[str, Any], extra: dict[str, Any]) -> None:
    # Another client spells the layout version with a '$'; it is the same field.
    if "atdataSchemaVersion" not in value and "$atdataSchemaVersion" in value:
        value["atdataSchemaVersion"] = value.pop("$atdataSchemaVersion")


def _json_schema_in(value: dict[str, Any], extra: dict[str, Any]) -> None:
    content = value.get("content")
    if "properties" not in value and isinstance(content, dict):
        # The {draft, content} envelope: lift the JSON Schema to the top level.
        value.pop("content")
        value.pop("draft", None)
        for key, item in content.items():
            value.setdefault(key, item)


_register(m.ShardChecksum)
_register(m.DatasetSize)
_register(m.CodeReference)
_register(m.HttpShard)
_register(m.S3Shard)
_register(m.BlobShard)
_register(m.StorageHttp, type_name=m.StorageHttp.TYPE)
_register(m.StorageS3, type_name=m.StorageS3.TYPE)
_register(m.StorageBlobs, type_name=m.StorageBlobs.TYPE)
_register(
    m.JsonSchemaFormat,
    type_name=m.JsonSchemaFormat.TYPE,
    wire_constants={"$schema": m.JSON_SCHEMA_DRAFT_07, "type": "object"},
    before_structure=_json_schema_in,
)
# --- open unions ----------------------------------------------------------------


def _union_hooks(union: Any, members: dict[str, type]) -> None:
    def structure(value: Any, _: type) -> Any:
        if isinstance(value, tuple(members.values())):
            return value
        if not isinstance(value, dict):
            raise RecordError(f"a union member is an object with $type, got {type(value).__name__}")
        member = value.get("$type", "")
        cls = members.get(member) or members.get(member.removesuffix("#main"))
        return converter.structure(value, cls) if cls else dict(value)

    def is_union(candidate: Any) -> bool:
        return get_origin(candidate) is Union and set(get_args(candidate)) == set(get_args(union))

    converter.register_structure_hook_func(is_union, structure)


_union_hooks(m.Storage, m.STORAGE_TYPES)
_union_hooks(m.SchemaBody, {m.JsonSchemaFormat.TYPE: m.JsonSchemaFormat})


_register(m.SchemaMetadata)
_register(
    m.SchemaRecord,
    type_name=m.SchemaRecord.NSID,
    before_structure=_schema_in,
    wire_required=("schemaType", "createdAt"),
)
_register(
    m.EntryRecord,
    type_name=m.EntryRecord.NSID,
    before_structure=_entry_metadata_in,
    after_unstructure=_entry_metadata_out,
    wire_required=("createdAt",),
)
_register(m.LensRecord, type_name=m.LensRecord.NSID, wire_required=("createdAt",))
_register(m.LabelRecord, type_name=m.LabelRecord.NSID, wire_required=("createdAt",))
_register(m.LensVerificationRecord, type_name=m.LensVerificationRecord.NSID, wire_required=("createdAt",))


# --- public -----------------------------------------------------------------------


Record = Union[m.SchemaRecord, m.EntryRecord, m.LensRecord, m.LabelRecord, m.LensVerificationRecord]


def to_record(obj: Any) -> dict[str, Any]:
    """The wire dict of a record model (or of any model in this package)."""
    return converter.unstructure(obj)


def from_record(record: dict[str, Any], cls: type | None = None) -> Any:
    """Build the model of a wire record; the class comes from ``$type`` unless given.

    Raises :class:`~atdata_core.errors.RecordError` when the record cannot be
    interpreted (no known ``$type``, a required field missing, a wrong type).
    Unknown fields never cause an error: they are kept in ``extra``.
    """
    if cls is None:
        nsid = record.get("$type") if isinstance(record, dict) else None
        cls = m.RECORD_TYPES.get(nsid)  # type: ignore[arg-type]
        if cls is None:
            known = ", ".join(sorted(m.RECORD_TYPES))
            raise RecordError(f"cannot read a record of type {nsid!r}; known types: {known}")
    try:
        return converter.structure(record, cls)
    except RecordError:
        raise
    except (cattrs.BaseValidationError, KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"cannot read {cls.__name__}: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc)
        return "; ".join(messages)
    return str(exc)
