"""Compatibility: how a schema version changes the last one, and whether a class fits a schema.

Changes are classified the way semver wants them published (DESIGN D5):

- ``patch``: documentation only (descriptions, titles, record metadata);
- ``minor``: only optional fields added (old readers ignore them, new readers
  fill them in for old samples);
- ``major``: anything else: a field removed, added as required, retyped, a
  dtype or shape changed, a field made required or optional, a default changed.

The comparison works on parsed fields, so it serves every schema format; the
JSON Schema format adds a check for keywords fields do not model (``minimum``...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from atdata_core.sample import (
    AnyValue,
    Array,
    DictOf,
    Field,
    FieldType,
    ListOf,
    Nested,
    Optional,
    Scalar,
    _Factory,
    sample_fields,
)

__all__ = [
    "Change",
    "classify_changes",
    "compare_bodies",
    "compare_fields",
    "field_mismatches",
    "type_text",
]

_RANK = {"patch": 0, "minor": 1, "major": 2}
_DOC_KEYS = frozenset({"description", "title", "$comment", "examples", "x-atdata-notes"})


@attrs.frozen
class Change:
    """One difference between two schema versions: its semver ``kind`` and a sentence."""

    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


def classify_changes(changes: Iterable[Change]) -> str:
    """The largest kind among ``changes``; ``"patch"`` when there are none."""
    kind = "patch"
    for change in changes:
        if _RANK[change.kind] > _RANK[kind]:
            kind = change.kind
    return kind


def type_text(ft: FieldType) -> str:
    """A field type as people write it: ``NDArray[float32, (None, 64)]``, ``list[str]``."""
    if isinstance(ft, Scalar):
        return ft.type.__name__
    if isinstance(ft, Array):
        parts = []
        if ft.dtype is not None:
            from atdata_core.schema._jsonschema import dtype_text

            parts.append(dtype_text(ft.dtype))
        if ft.shape is not None:
            parts.append("(" + ", ".join(str(d) for d in ft.shape) + ("," if len(ft.shape) == 1 else "") + ")")
        return f"NDArray[{', '.join(parts)}]" if parts else "NDArray"
    if isinstance(ft, ListOf):
        return f"list[{type_text(ft.item)}]"
    if isinstance(ft, DictOf):
        return f"dict[str, {type_text(ft.value)}]"
    if isinstance(ft, Optional):
        return f"Optional[{type_text(ft.inner)}]"
    if isinstance(ft, Nested):
        return ft.cls.__name__
    if isinstance(ft, AnyValue):
        return "Any"
    return repr(ft)


# --------------------------------------------------------------------------- version changes


def compare_fields(old: Sequence[Field], new: Sequence[Field], prefix: str = "") -> list[Change]:
    """Every change from ``old`` fields to ``new`` fields, in field order."""
    changes: list[Change] = []
    old_by_name = {f.name: f for f in old}
    new_by_name = {f.name: f for f in new}
    for f in old:
        if f.name not in new_by_name:
            changes.append(Change("major", f"removed field {prefix + f.name!r} ({type_text(f.type)})"))
    for f in new:
        before = old_by_name.get(f.name)
        path = prefix + f.name
        if before is None:
            if f.required:
                changes.append(Change("major", f"added required field {path!r} ({type_text(f.type)})"))
            else:
                changes.append(Change("minor", f"added optional field {path!r} ({type_text(f.type)})"))
            continue
        if before.required != f.required:
            state = "required" if f.required else "optional"
            changes.append(Change("major", f"field {path!r} is now {state}"))
        changes.extend(_compare_types(before.type, f.type, path))
        old_default, new_default = _plain_default(before.default), _plain_default(f.default)
        if not before.required and not f.required and not _same_value(old_default, new_default):
            changes.append(Change("major", f"field {path!r}: default {old_default!r} -> {new_default!r}"))
        if (before.description or None) != (f.description or None):
            changes.append(Change("patch", f"field {path!r}: description changed"))
    return changes


def _compare_types(old: FieldType, new: FieldType, path: str) -> list[Change]:
    if isinstance(old, Nested) and isinstance(new, Nested):
        if old.cls is new.cls:
            return []
        return compare_fields(sample_fields(old.cls), sample_fields(new.cls), prefix=f"{path}.")
    if isinstance(old, Optional) and isinstance(new, Optional):
        return _compare_types(old.inner, new.inner, path)
    if isinstance(old, Optional) != isinstance(new, Optional):
        state = "may now be null" if isinstance(new, Optional) else "may no longer be null"
        inner_old = old.inner if isinstance(old, Optional) else old
        inner_new = new.inner if isinstance(new, Optional) else new
        return [Change("major", f"field {path!r} {state}")] + _compare_types(inner_old, inner_new, path)
    if isinstance(old, ListOf) and isinstance(new, ListOf):
        return _compare_types(old.item, new.item, f"{path}[]")
    if isinstance(old, DictOf) and isinstance(new, DictOf):
        return _compare_types(old.value, new.value, f"{path}{{}}")
    if isinstance(old, Array) and isinstance(new, Array):
        changes = []
        if old.dtype != new.dtype:
            changes.append(Change("major", f"field {path!r}: dtype {_dtype(old)} -> {_dtype(new)}"))
        if old.shape != new.shape:
            changes.append(Change("major", f"field {path!r}: shape {_shape(old)} -> {_shape(new)}"))
        return changes
    if old == new:
        return []
    return [Change("major", f"field {path!r}: type {type_text(old)} -> {type_text(new)}")]


def _dtype(ft: Array) -> str:
    if ft.dtype is None:
        return "any"
    from atdata_core.schema._jsonschema import dtype_text

    return dtype_text(ft.dtype)


def _shape(ft: Array) -> str:
    return "any" if ft.shape is None else str(tuple(ft.shape))


def _plain_default(value: Any) -> Any:
    if isinstance(value, _Factory):
        value = value.factory()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain_default(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain_default(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_default(v) for k, v in value.items()}
    return value


def _same_value(a: Any, b: Any) -> bool:
    # 0 and 0.0 are the same default; True and 1 are not.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays compared elementwise
        return False


def compare_bodies(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Changes between two ``jsonSchemaFormat`` bodies."""
    from atdata_core.schema._jsonschema import JsonSchemaFormat

    fmt = JsonSchemaFormat()
    old_fields, new_fields = fmt.fields_from_schema(old), fmt.fields_from_schema(new)
    changes = compare_fields(old_fields, new_fields)
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    new_by_name = {f.name: f for f in new_fields}
    for before in old_fields:
        after = new_by_name.get(before.name)
        if after is None or _strip(old_props[before.name]) == _strip(new_props[before.name]):
            continue
        if classify_changes(compare_fields([before], [after])) == "patch":
            # Something fields do not model (minimum, enum, pattern...) changed: readers may now refuse values.
            changes.append(Change("major", f"field {before.name!r}: JSON Schema keywords that constrain values changed"))
    return changes


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


# --------------------------------------------------------------------------- class vs schema


def field_mismatches(class_fields: Sequence[Field], schema_fields: Sequence[Field], prefix: str = "") -> list[str]:
    """Why a class with ``class_fields`` cannot read samples of ``schema_fields``; empty when it can.

    Extra optional fields in the class are fine (they take their defaults), and
    so are schema fields the class leaves out when the schema does not require
    them (readers ignore keys they do not know). Nullability is not compared: a
    class field may be Optional where the schema's is not, and samples written
    by other clients carry the value where they carry the key.
    """
    problems: list[str] = []
    by_name = {f.name: f for f in class_fields}
    schema_names = {f.name for f in schema_fields}
    for sf in schema_fields:
        path = prefix + sf.name
        cf = by_name.get(sf.name)
        if cf is None:
            if sf.required:
                problems.append(f"missing required field {path!r} ({type_text(sf.type)})")
            continue
        if cf.required and not sf.required:
            problems.append(
                f"field {path!r} is required in the class but optional in the schema: samples may lack it; "
                "give it a default"
            )
        problems.extend(_type_mismatches(cf.type, sf.type, path))
    for cf in class_fields:
        if cf.name not in schema_names and cf.required:
            problems.append(
                f"field {prefix + cf.name!r} is required in the class but the schema has no such field; "
                "give it a default or remove it"
            )
    return problems


def _type_mismatches(cls_type: FieldType, schema_type: FieldType, path: str) -> list[str]:
    while isinstance(cls_type, Optional):
        cls_type = cls_type.inner
    while isinstance(schema_type, Optional):
        schema_type = schema_type.inner
    if isinstance(cls_type, AnyValue):
        return []
    if isinstance(cls_type, Scalar) and isinstance(schema_type, Scalar):
        if cls_type.type is schema_type.type or (cls_type.type is float and schema_type.type is int):
            return []
    elif isinstance(cls_type, Array) and isinstance(schema_type, Array):
        problems = []
        if cls_type.dtype is not None and schema_type.dtype is not None and cls_type.dtype != schema_type.dtype:
            problems.append(f"dtype mismatch in {path!r}: class has {_dtype(cls_type)}, schema has {_dtype(schema_type)}")
        if cls_type.shape is not None and schema_type.shape is not None and not _shapes_fit(cls_type.shape, schema_type.shape):
            problems.append(f"shape mismatch in {path!r}: class has {_shape(cls_type)}, schema has {_shape(schema_type)}")
        return problems
    elif isinstance(cls_type, ListOf) and isinstance(schema_type, ListOf):
        return _type_mismatches(cls_type.item, schema_type.item, f"{path}[]")
    elif isinstance(cls_type, DictOf) and isinstance(schema_type, DictOf):
        return _type_mismatches(cls_type.value, schema_type.value, f"{path}{{}}")
    elif isinstance(cls_type, Nested) and isinstance(schema_type, Nested):
        if cls_type.cls is schema_type.cls:
            return []
        return field_mismatches(sample_fields(cls_type.cls), sample_fields(schema_type.cls), prefix=f"{path}.")
    return [f"type mismatch in {path!r}: class has {type_text(cls_type)}, schema has {type_text(schema_type)}"]


def _shapes_fit(cls_shape: tuple, schema_shape: tuple) -> bool:
    if len(cls_shape) != len(schema_shape):
        return False
    # A class dimension of None accepts any size; a fixed one must match the schema's fixed size.
    return all(c is None or c == s for c, s in zip(cls_shape, schema_shape))
