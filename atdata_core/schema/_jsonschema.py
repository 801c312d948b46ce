"""The built-in schema format: JSON Schema draft-07 with the NDArray shim.

A sample class maps to the ``science.alt.dataset.schema#jsonSchemaFormat``
union member, field by field (DESIGN section 4)::

    str         {"type": "string"}
    int         {"type": "integer"}
    float       {"type": "number"}
    bool        {"type": "boolean"}
    bytes       {"type": "string", "format": "byte", "contentEncoding": "base64"}
    list[T]     {"type": "array", "items": T}
    dict[str,T] {"type": "object", "additionalProperties": T}
    Any         {}
    NDArray     {"$ref": "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray",
                 "dtype": "float32", "shape": [null, 64]}        (dtype, shape when declared)
    @packable   {"type": "object", "title": "Point", "properties": ..., "required": [...]}

Nullability and defaults follow the other federation client, which writes an
``Optional[T]`` field as ``T`` left out of ``required`` and reads every field
left out of ``required`` as ``Optional[T] = None``:

- ``x: Optional[T] = None`` is ``T``, not required, no ``default``;
- ``x: T = value`` is ``T`` with ``"default": value``, not required;
- ``x: Optional[T] = value`` (and ``Optional`` below the top of a field, as in
  ``list[Optional[int]]``) is ``{"anyOf": [T, {"type": "null"}]}``.

Records cannot hold floats (the ATProto data model has integers only), so a
float default is written as an integer when it is whole and as its decimal
string otherwise (``"0.25"``); bytes defaults are base64 text. Readers decode
defaults by the field's type.

Readers also accept what other writers produce: ``type: ["string", "null"]``,
``anyOf`` / ``oneOf`` with a null member, a local ``#/$defs/ndarray`` shim,
``x-atdata-dtype`` / ``x-atdata-shape``, local ``$ref`` to ``$defs`` and
unknown keywords (ignored).
"""

from __future__ import annotations

import base64
import copy
import json
import keyword
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np

from atdata_core._bytes import b64decode_unpadded
from atdata_core._nsids import JSON_SCHEMA_FORMAT_NSID
from atdata_core.errors import SchemaError
from atdata_core.sample import (
    AnyValue,
    Array,
    DefaultFactory,
    DictOf,
    Field,
    FieldType,
    ListOf,
    Nested,
    Optional,
    Scalar,
    make_sample_type,
    sample_fields,
)
from atdata_core.schema._compat import SchemaChange, classify_changes, compare_fields
from atdata_core.schema._naming import class_name_for, dtype_text

__all__ = [
    "DRAFT_07",
    "NDARRAY_SHIM_VERSION",
    "SCHEMA_TYPE",
    "UNION_TYPE",
    "JsonSchemaFormat",
    "ndarray_ref",
]

SCHEMA_TYPE = "jsonSchema"
UNION_TYPE = JSON_SCHEMA_FORMAT_NSID
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
NDARRAY_SHIM_VERSION = "1.0.0"
_SHIM_URL = "https://alt.science/schemas/atdata-ndarray-bytes/{version}#/$defs/ndarray"
_SHIM_VERSION_RE = re.compile(r"atdata-ndarray-bytes/(\d+\.\d+\.\d+)#/\$defs/ndarray$")

_BYTES = {"type": "string", "format": "byte", "contentEncoding": "base64"}
_SCALAR_TO_JSON = {str: "string", int: "integer", float: "number", bool: "boolean"}
_JSON_TO_SCALAR = {"string": str, "integer": int, "number": float, "boolean": bool}
_NULL = {"type": "null"}
_DOC_KEYS = frozenset({"description", "title", "$comment", "examples", "x-atdata-notes"})
_TOP_KEYS = ("$type", "$schema", "type", "properties", "required", "arrayFormatVersions")


def ndarray_ref(version: str = NDARRAY_SHIM_VERSION) -> str:
    """The ``$ref`` of the NDArray shim: ``https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray``."""
    return _SHIM_URL.format(version=version)


class JsonSchemaFormat:
    """The ``jsonSchema`` schema format (see the module docstring for the mapping).

    It has no settings and holds no state; the built-in plugin registers it.
    """

    schema_type = SCHEMA_TYPE
    union_type = UNION_TYPE

    # --- class -> schema ----------------------------------------------------

    def schema_from_type(self, sample_type: type) -> dict[str, Any]:
        """The ``jsonSchemaFormat`` union member describing ``sample_type``."""
        properties, required = _object_schema(sample_type, stack=())
        body: dict[str, Any] = {
            "$type": UNION_TYPE,
            "$schema": DRAFT_07,
            "type": "object",
            "properties": properties,
        }
        if required:
            body["required"] = required
        versions = sorted(set(_shim_versions(properties)), key=lambda v: tuple(int(p) for p in v.split(".")))
        if versions:
            body["arrayFormatVersions"] = {"ndarrayBytes": versions[-1]}
        return body

    # --- schema -> class ----------------------------------------------------

    def fields_of(self, schema: Mapping[str, Any]) -> tuple[Field, ...]:
        """The fields a schema describes (nested objects become classes), in schema order."""
        return self._fields(schema, name="Sample")

    def type_from_schema(self, schema: Mapping[str, Any], *, name: str) -> type:
        """A packable class, built now, that reads and writes the samples ``schema`` describes."""
        return make_sample_type(class_name_for(name), self._fields(schema, name=name))

    def _fields(self, schema: Mapping[str, Any], *, name: str) -> tuple[Field, ...]:
        body = _unwrap(schema)
        self.validate_schema(body)
        return _Reader(body).object_fields(body, owner=name)

    # --- checks -------------------------------------------------------------

    def validate_schema(self, schema: Mapping[str, Any]) -> None:
        """Raise :class:`SchemaError` unless ``schema`` is a readable ``jsonSchemaFormat`` member."""
        if not isinstance(schema, Mapping):
            raise SchemaError(f"a jsonSchema body is an object, got {type(schema).__name__}")
        schema = _unwrap(schema)
        kind = schema.get("$type")
        if kind != UNION_TYPE:
            raise SchemaError(
                f"not a JSON Schema body: $type is {kind!r}, expected {UNION_TYPE!r}"
            )
        if schema.get("$schema") != DRAFT_07:
            raise SchemaError(f"$schema must be {DRAFT_07!r} (JSON Schema draft-07), got {schema.get('$schema')!r}")
        if schema.get("type") != "object":
            raise SchemaError(f"a sample schema has type 'object', got {schema.get('type')!r}")
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            raise SchemaError("a sample schema needs 'properties': an object with one entry per field")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise SchemaError("'required' must be a list of field names")
        unknown = [r for r in required if r not in properties]
        if unknown:
            raise SchemaError(f"'required' names fields that 'properties' does not define: {unknown}")
        versions = schema.get("arrayFormatVersions")
        if versions is not None and not (
            isinstance(versions, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in versions.items())
        ):
            raise SchemaError("'arrayFormatVersions' maps array formats to version strings, e.g. {'ndarrayBytes': '1.0.0'}")
        # Every field must be readable: parse them all (nested classes are built and dropped).
        _Reader(schema).object_fields(schema, owner="schema")

    def format_changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[SchemaChange]:
        """Changes of JSON Schema keywords that fields do not model (``minimum``, ``enum``, ``pattern``...).

        Such a keyword changed on a field whose type, default and nullability
        did not change is major: readers may now refuse values they accepted.
        """
        old, new = _unwrap(old), _unwrap(new)
        old_fields, new_fields = self.fields_of(old), self.fields_of(new)
        old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
        new_by_name = {f.name: f for f in new_fields}
        changes: list[SchemaChange] = []
        for before in old_fields:
            after = new_by_name.get(before.name)
            if after is None or _strip(old_props[before.name]) == _strip(new_props[before.name]):
                continue
            if classify_changes(compare_fields([before], [after])) == "patch":
                changes.append(
                    SchemaChange("major", f"field {before.name!r}: JSON Schema keywords that constrain values changed")
                )
        return changes

    def __repr__(self) -> str:
        return "JsonSchemaFormat()"


def _strip(schema: Any) -> Any:
    """A schema without its documentation keywords (property names are kept, even 'description')."""
    if isinstance(schema, list):
        return [_strip(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {}
    for key, value in schema.items():
        if key in _DOC_KEYS:
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, Mapping):
            out[key] = {name: _strip(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "not"):
            out[key] = _strip(value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- writing


def _object_schema(cls: type, *, stack: tuple[type, ...]) -> tuple[dict[str, Any], list[str]]:
    if cls in stack:
        chain = " -> ".join(c.__name__ for c in (*stack, cls))
        raise SchemaError(f"recursive sample types cannot be written as a JSON Schema: {chain}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in sample_fields(cls):
        where = f"{cls.__name__}.{field.name}"
        properties[field.name] = _field_property(field, where, (*stack, cls))
        if field.required:
            required.append(field.name)
    return properties, required


def _field_property(field: Field, where: str, stack: tuple[type, ...]) -> dict[str, Any]:
    ft = field.type
    nullable_by_omission = isinstance(ft, Optional) and not field.required and field.default is None
    prop = _type_schema(ft.inner if nullable_by_omission else ft, where, stack)
    if field.description:
        prop["description"] = field.description
    if not field.required and not nullable_by_omission:
        prop["default"] = _default_to_json(field.default, ft, where)
    return prop


def _type_schema(ft: FieldType, where: str, stack: tuple[type, ...]) -> dict[str, Any]:
    if isinstance(ft, Scalar):
        if ft.type is bytes:
            return dict(_BYTES)
        return {"type": _SCALAR_TO_JSON[ft.type]}
    if isinstance(ft, Array):
        prop: dict[str, Any] = {"$ref": ndarray_ref()}
        if ft.dtype is not None:
            prop["dtype"] = dtype_text(ft.dtype)
        if ft.shape is not None:
            prop["shape"] = list(ft.shape)
        return prop
    if isinstance(ft, ListOf):
        return {"type": "array", "items": _type_schema(ft.item, f"{where}[]", stack)}
    if isinstance(ft, DictOf):
        return {"type": "object", "additionalProperties": _type_schema(ft.value, f"{where}{{}}", stack)}
    if isinstance(ft, Optional):
        return {"anyOf": [_type_schema(ft.inner, where, stack), dict(_NULL)]}
    if isinstance(ft, Nested):
        properties, required = _object_schema(ft.cls, stack=stack)
        nested: dict[str, Any] = {"type": "object", "title": ft.cls.__name__, "properties": properties}
        if required:
            nested["required"] = required
        return nested
    if isinstance(ft, AnyValue):
        return {}
    raise SchemaError(f"{where}: the JSON Schema format cannot express {ft!r}")


def _shim_versions(value: Any):
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            match = _SHIM_VERSION_RE.search(ref)
            if match:
                yield match.group(1)
        for item in value.values():
            yield from _shim_versions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _shim_versions(item)


def _default_to_json(value: Any, ft: FieldType, where: str) -> Any:
    if isinstance(value, DefaultFactory):
        value = value.factory()
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(ft, Optional):
        return _default_to_json(value, ft.inner, where)
    if isinstance(ft, Scalar):
        if ft.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SchemaError(f"{where}: default {value!r} is not a number")
            value = float(value)
            # Records hold no floats: whole numbers as integers, the rest as decimal text.
            return int(value) if value.is_integer() else repr(value)
        if ft.type is bytes:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise SchemaError(f"{where}: default {value!r} is not bytes")
            return base64.b64encode(bytes(value)).decode("ascii")
        if not isinstance(value, ft.type) or (ft.type is int and isinstance(value, bool)):
            raise SchemaError(f"{where}: default {value!r} is not a {ft.type.__name__}")
        return value
    if isinstance(ft, ListOf):
        return [_default_to_json(v, ft.item, f"{where}[]") for v in value]
    if isinstance(ft, DictOf):
        return {str(k): _default_to_json(v, ft.value, f"{where}{{}}") for k, v in value.items()}
    if isinstance(ft, Nested):
        return {
            f.name: _default_to_json(getattr(value, f.name), f.type, f"{where}.{f.name}")
            for f in sample_fields(ft.cls)
        }
    if isinstance(ft, Array):
        raise SchemaError(
            f"{where}: an NDArray default cannot be written into a schema record; "
            "make the field Optional with default None, or required"
        )
    return _plain_json(value, where)


def _plain_json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_json(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain_json(v, where) for k, v in value.items()}
    raise SchemaError(
        f"{where}: default {value!r} cannot be written into a record (untyped defaults may hold "
        "strings, integers, booleans, lists and maps only)"
    )


# --------------------------------------------------------------------------- reading


def _unwrap(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """Bodies once nested their JSON Schema under ``schemaBody``; flatten those."""
    inner = schema.get("schemaBody") if isinstance(schema, Mapping) else None
    if isinstance(inner, Mapping) and "properties" not in schema:
        merged = {k: v for k, v in schema.items() if k != "schemaBody"}
        merged.update(inner)
        return merged
    return schema


class _Reader:
    """Parses one schema body; builds nested classes once per distinct object schema."""

    def __init__(self, root: Mapping[str, Any]):
        self.root = root
        self.nested: dict[str, type] = {}

    def object_fields(self, schema: Mapping[str, Any], *, owner: str) -> tuple[Field, ...]:
        properties = schema.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise SchemaError(f"{owner}: 'properties' must be an object")
        required = set(schema.get("required") or ())
        fields = []
        for name, prop in properties.items():
            where = f"{owner}.{name}"
            _check_field_name(name, where)
            if not isinstance(prop, Mapping):
                if prop is True:
                    prop = {}
                else:
                    raise SchemaError(f"{where}: a property schema is an object, got {prop!r}")
            ft = self.field_type(prop, where, name)
            description = prop.get("description") if isinstance(prop.get("description"), str) else None
            if name in required:
                fields.append(Field(name, ft, True, None, description))
            elif "default" in prop:
                fields.append(Field(name, ft, False, _default_from_json(prop["default"], ft, where), description))
            else:
                # Left out of 'required' without a default: the field may be missing or null.
                fields.append(Field(name, ft if isinstance(ft, Optional) else Optional(ft), False, None, description))
        return tuple(fields)

    def field_type(self, prop: Mapping[str, Any], where: str, hint: str) -> FieldType:
        ref = prop.get("$ref")
        if isinstance(ref, str):
            if ref.endswith("/ndarray") and ("#/$defs/" in ref or "#/definitions/" in ref):
                return _array_type(prop, where)
            return self.field_type(self.resolve(ref, where), where, hint)
        for key in ("anyOf", "oneOf"):
            members = prop.get(key)
            if isinstance(members, list):
                return self.union_type(members, where, hint)
        all_of = prop.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
            return self.field_type(all_of[0], where, hint)
        kind = prop.get("type")
        if isinstance(kind, list):
            others = [k for k in kind if k != "null"]
            if len(others) != 1:
                return AnyValue()
            single = self.field_type({**prop, "type": others[0]}, where, hint)
            return Optional(single) if len(others) < len(kind) else single
        if kind == "string":
            if prop.get("format") == "byte" or prop.get("contentEncoding") == "base64":
                return Scalar(bytes)
            return Scalar(str)
        if kind in _JSON_TO_SCALAR:
            return Scalar(_JSON_TO_SCALAR[kind])
        if kind == "array":
            items = prop.get("items")
            if isinstance(items, Mapping):
                return ListOf(self.field_type(items, f"{where}[]", hint))
            return ListOf(AnyValue())
        if kind == "object":
            if isinstance(prop.get("properties"), Mapping):
                return Nested(self.nested_class(prop, where, hint))
            extra = prop.get("additionalProperties")
            if isinstance(extra, Mapping):
                return DictOf(self.field_type(extra, f"{where}{{}}", hint))
            return DictOf(AnyValue())
        if kind is None or kind == "null":
            return AnyValue()
        raise SchemaError(f"{where}: unknown JSON Schema type {kind!r}")

    def union_type(self, members: list, where: str, hint: str) -> FieldType:
        non_null = [m for m in members if not (isinstance(m, Mapping) and m.get("type") == "null")]
        if len(non_null) != 1 or not isinstance(non_null[0], Mapping):
            return AnyValue()  # a real union: pass values through as decoded
        inner = self.field_type(non_null[0], where, hint)
        return Optional(inner) if len(non_null) < len(members) else inner

    def resolve(self, ref: str, where: str) -> Mapping[str, Any]:
        if ref.startswith("#/"):
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if isinstance(target, Mapping):
                return target
        raise SchemaError(
            f"{where}: cannot resolve $ref {ref!r}; only the NDArray shim and local '#/$defs/...' "
            "references are understood"
        )

    def nested_class(self, prop: Mapping[str, Any], where: str, hint: str) -> type:
        key = json.dumps(prop, sort_keys=True, default=str)
        title = prop.get("title")
        name = class_name_for(title if isinstance(title, str) else hint)
        cache_key = f"{name}:{key}"
        cls = self.nested.get(cache_key)
        if cls is None:
            cls = make_sample_type(name, self.object_fields(prop, owner=where))
            self.nested[cache_key] = cls
        return cls


def _array_type(prop: Mapping[str, Any], where: str) -> Array:
    dtype_value = prop.get("dtype", prop.get("x-atdata-dtype"))
    shape_value = prop.get("shape", prop.get("x-atdata-shape"))
    dtype = None
    if dtype_value is not None:
        try:
            dtype = np.dtype(dtype_value)
        except TypeError as exc:
            raise SchemaError(f"{where}: unknown dtype {dtype_value!r} ({exc})") from exc
        if dtype.hasobject:
            raise SchemaError(f"{where}: object arrays are not supported (dtype {dtype_value!r})")
    shape = None
    if shape_value is not None:
        if not isinstance(shape_value, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape_value
        ):
            raise SchemaError(f"{where}: shape is a list of sizes or nulls, got {shape_value!r}")
        shape = tuple(shape_value)
    return Array(dtype, shape)


def _check_field_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SchemaError(
            f"{where}: field name {name!r} is not a Python identifier, so no sample class can hold it"
        )
    if name.startswith("_"):
        raise SchemaError(f"{where}: field names starting with '_' are private in sample classes; rename {name!r}")
    if unicodedata.normalize("NFKC", name) != name:
        # Python folds identifiers to NFKC: "ﬁeld" would become the attribute "field".
        raise SchemaError(
            f"{where}: field name {name!r} reads as {unicodedata.normalize('NFKC', name)!r} in Python (identifiers "
            "are NFKC-normalized); rename it"
        )


def _default_from_json(value: Any, ft: FieldType, where: str) -> Any:
    if value is None:
        return None
    if isinstance(ft, Optional):
        return _default_from_json(value, ft.inner, where)
    try:
        if isinstance(ft, Scalar):
            if ft.type is float:
                number = float(value)
                return number
            if ft.type is bytes:
                return b64decode_unpadded(value) if isinstance(value, str) else bytes(value)
            if ft.type is int and isinstance(value, float) and value.is_integer():
                return int(value)
            return value
        if isinstance(ft, ListOf):
            return [_default_from_json(v, ft.item, where) for v in value]
        if isinstance(ft, DictOf):
            return {k: _default_from_json(v, ft.value, where) for k, v in value.items()}
        if isinstance(ft, Nested):
            kwargs = {
                f.name: _default_from_json(value[f.name], f.type, f"{where}.{f.name}")
                for f in sample_fields(ft.cls)
                if f.name in value
            }
            prototype = ft.cls(**kwargs)
            # A sample instance is mutable: every new sample gets its own copy.
            return DefaultFactory(lambda: copy.deepcopy(prototype))
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise SchemaError(f"{where}: cannot read default {value!r}: {exc}") from exc
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value
