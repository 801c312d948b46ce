"""Compatibility: the core's field comparison plus protobuf's own rule on field numbers."""

from __future__ import annotations

import base64
import dataclasses
from typing import Optional

from google.protobuf import descriptor_pb2

from atdata_core import packable

from protobuf_samples import AppendedOptional, InsertedOptional, Point, V1


@packable
class InsertedWithNumbers:
    name: str
    size: int
    inner: Point
    caption: Optional[str] = dataclasses.field(default=None, metadata={"protobuf_number": 5})
    note: Optional[str] = None


@packable
class PointRenumbered:
    y: float = dataclasses.field(default=0.5, metadata={"protobuf_number": 1})
    x: float = dataclasses.field(default=0.0, metadata={"protobuf_number": 2})


@packable
class InnerRenumbered:
    name: str
    size: int
    inner: PointRenumbered
    note: Optional[str] = None


def kinds(fmt, old, new):
    return [(c.kind, c.text) for c in fmt.format_changes(fmt.schema_from_type(old), fmt.schema_from_type(new))]


def test_appending_an_optional_field_keeps_every_number(fmt):
    assert kinds(fmt, V1, AppendedOptional) == []


def test_inserting_a_field_renumbers_the_ones_after_it(fmt):
    found = kinds(fmt, V1, InsertedOptional)
    assert ("major", "field 'note': protobuf number 4 -> 5 (protobuf readers of the old version would read it as "
            "another field)") in found
    assert any("takes protobuf number 4, which was field 'note'" in text for _, text in found)


def test_explicit_numbers_make_an_insertion_compatible(fmt):
    assert kinds(fmt, V1, InsertedWithNumbers) == []


def test_nested_messages_are_compared_too(fmt):
    found = kinds(fmt, V1, InnerRenumbered)
    assert any(text.startswith("field 'inner.y': protobuf number 2 -> 1") for _, text in found)


def _rewrite(fmt, schema, change):
    text = schema["fileDescriptor"]["$bytes"]
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text + "=" * (-len(text) % 4)))
    change(file)
    new = {**schema, "fileDescriptor": {"$bytes": base64.b64encode(file.SerializeToString()).decode().rstrip("=")}}
    fmt.validate_schema(new)
    return {**new, "protoText": fmt.proto_text(new)}


def test_an_encoding_change_with_the_same_field_type_is_major(fmt):
    old = fmt.schema_from_type(V1)

    def to_sint64(file):
        next(f for f in file.message_type[0].field if f.name == "size").type = descriptor_pb2.FieldDescriptorProto.TYPE_SINT64

    new = _rewrite(fmt, old, to_sint64)
    assert [(c.kind, c.text) for c in fmt.format_changes(old, new)] == [
        ("major", "field 'size': protobuf encoding int64 -> sint64")
    ]


def test_numbers_reserved_before_are_not_taken(fmt):
    def reserve_five(file):
        file.message_type[0].reserved_range.add(start=5, end=6)
        file.message_type[0].reserved_name.append("caption")

    old = _rewrite(fmt, fmt.schema_from_type(V1), reserve_five)
    texts = [c.text for c in fmt.format_changes(old, fmt.schema_from_type(AppendedOptional))]
    assert "field 'caption' takes protobuf number 5, reserved before" in texts
    assert "field 'caption' takes a name reserved before" in texts
    # A class built from the schema keeps the reservation and numbers around it.
    rebuilt = fmt.type_from_schema(old, name="V1")
    assert fmt.schema_from_type(rebuilt) == old
    assert "reserved 5;" in old["protoText"] and 'reserved "caption";' in old["protoText"]
