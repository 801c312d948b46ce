"""Compatibility: how a schema version changes the last one, and whether a class fits a schema.

Changes are classified the way semver wants them published (DESIGN D5):

- ``patch``: documentation only (descriptions, titles, record metadata);
- ``minor``: only optional fields added (old readers ignore them, new readers
  fill them in for old samples);
- ``major``: anything else: a field removed, added as required, retyped, a
  dtype or shape changed, a field made required or optional, a default changed.

:func:`compare_schemas` gives every format the same checks: it compares the
fields the format parses (``fields_of``) here, and adds what the format says
its fields do not show (``format_changes``; for JSON Schema, keywords such as
``minimum`` or ``enum``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

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
    sample_fields,
)
from atdata_core.schema._naming import dtype_text

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.plugins import SchemaFormat

__all__ = [
    "ChangeKind",
    "SchemaChange",
    "classify_changes",
    "compare_fields",
    "compare_schemas",
    "field_mismatches",
    "type_text",
]

#: How much a change matters to readers, in semver terms.
ChangeKind = Literal["patch", "minor", "major"]

_RANK = {"patch": 0, "minor": 1, "major": 2}


def _check_kind(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in _RANK:
        raise ValueError(f"a schema change is 'patch', 'minor' or 'major', not {value!r}")


@attrs.frozen
class SchemaChange:
    """One difference between two schema versions: its semver ``kind`` and a sentence saying what changed.

    >>> SchemaChange("minor", "added optional field 'caption' (str)")
    """

    kind: ChangeKind = attrs.field(validator=_check_kind)
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


def classify_changes(changes: Iterable[SchemaChange]) -> ChangeKind:
    """The largest kind among ``changes``; ``"patch"`` when there are none."""
    kind = "patch"
    for change in changes:
        if _RANK[change.kind] > _RANK[kind]:
            kind = change.kind
    return kind


def compare_schemas(fmt: SchemaFormat, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[SchemaChange]:
    """Every change from schema ``old`` to schema ``new`` of one format, each with its kind.

    The same checks for every format: both schemas must be valid, their
    fields (``fmt.fields_of``) are compared here, and the format adds what its
    fields do not show (``fmt.format_changes``).
    """
    fmt.validate_schema(old)
    fmt.validate_schema(new)
    changes = compare_fields(fmt.fields_of(old), fmt.fields_of(new))
    for change in fmt.format_changes(old, new):
        if not isinstance(change, SchemaChange):
            raise TypeError(
                f"{type(fmt).__name__}.format_changes must return SchemaChange objects, got {change!r}"
            )
        changes.append(change)
    return changes


def type_text(ft: FieldType) -> str:
    """A field type as people write it: ``NDArray[float32, (None, 64)]``, ``list[str]``."""
    if isinstance(ft, Scalar):
        return ft.type.__name__
    if isinstance(ft, Array):
        parts = []
        if ft.dtype is not None:
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


def compare_fields(old: Sequence[Field], new: Sequence[Field], prefix: str = "") -> list[SchemaChange]:
    """Every change from ``old`` fields to ``new`` fields, in field order."""
    changes: list[SchemaChange] = []
    old_by_name = {f.name: f for f in old}
    new_by_name = {f.name: f for f in new}
    for f in old:
        if f.name not in new_by_name:
            changes.append(SchemaChange("major", f"removed field {prefix + f.name!r} ({type_text(f.type)})"))
    for f in new:
        before = old_by_name.get(f.name)
        path = prefix + f.name
        if before is None:
            if f.required:
                changes.append(SchemaChange("major", f"added required field {path!r} ({type_text(f.type)})"))
            else:
                changes.append(SchemaChange("minor", f"added optional field {path!r} ({type_text(f.type)})"))
            continue
        if before.required != f.required:
            state = "required" if f.required else "optional"
            changes.append(SchemaChange("major", f"field {path!r} is now {state}"))
        changes.extend(_compare_types(before.type, f.type, path))
        old_default, new_default = _plain_default(before.default), _plain_default(f.default)
        if not before.required and not f.required and not _same_value(old_default, new_default):
            changes.append(SchemaChange("major", f"field {path!r}: default {old_default!r} -> {new_default!r}"))
        if (before.description or None) != (f.description or None):
            changes.append(SchemaChange("patch", f"field {path!r}: description changed"))
    return changes


def _compare_types(old: FieldType, new: FieldType, path: str) -> list[SchemaChange]:
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
        return [SchemaChange("major", f"field {path!r} {state}")] + _compare_types(inner_old, inner_new, path)
    if isinstance(old, ListOf) and isinstance(new, ListOf):
        return _compare_types(old.item, new.item, f"{path}[]")
    if isinstance(old, DictOf) and isinstance(new, DictOf):
        return _compare_types(old.value, new.value, f"{path}{{}}")
    if isinstance(old, Array) and isinstance(new, Array):
        changes = []
        if old.dtype != new.dtype:
            changes.append(SchemaChange("major", f"field {path!r}: dtype {_dtype(old)} -> {_dtype(new)}"))
        if old.shape != new.shape:
            changes.append(SchemaChange("major", f"field {path!r}: shape {_shape(old)} -> {_shape(new)}"))
        return changes
    if old == new:
        return []
    return [SchemaChange("major", f"field {path!r}: type {type_text(old)} -> {type_text(new)}")]


def _dtype(ft: Array) -> str:
    if ft.dtype is None:
        return "any"
    return dtype_text(ft.dtype)


def _shape(ft: Array) -> str:
    return "any" if ft.shape is None else str(tuple(ft.shape))


def _plain_default(value: Any) -> Any:
    if isinstance(value, DefaultFactory):
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
