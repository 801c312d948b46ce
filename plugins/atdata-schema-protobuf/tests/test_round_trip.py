"""Every field type: class -> protobuf schema -> class reads and writes the same samples, and the schema is stable."""

from __future__ import annotations

import base64
import dataclasses
import pickle
import typing
from typing import Annotated, Any, Optional

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import packable
from atdata_core.errors import SchemaError
from atdata_core.plugins import (
    AnyValue,
    Array,
    DefaultFactory,
    DictOf,
    ListOf,
    Nested,
    Scalar,
    sample_fields,
)
from atdata_core.plugins import Optional as OptionalType

from protobuf_samples import CASES, Everything, Point, everything, holder


def decoded(sample: Any) -> Any:
    return msgpack.unpackb(sample.to_bytes(), raw=False)


def same_fields(a, b, path: str = "") -> None:
    """Two field lists say the same (nested classes compared by their fields)."""
    assert [f.name for f in a] == [f.name for f in b], path
    for x, y in zip(a, b):
        where = f"{path}{x.name}"
        assert x.required == y.required, where
        assert (x.description or None) == (y.description or None), where
        same_type(x.type, y.type, where)
        if not x.required:
            assert plain(x.default) == plain(y.default), where


def same_type(a, b, where: str) -> None:
    assert type(a) is type(b), f"{where}: {a!r} vs {b!r}"
    if isinstance(a, Nested):
        same_fields(sample_fields(a.cls), sample_fields(b.cls), f"{where}.")
    elif isinstance(a, OptionalType):
        same_type(a.inner, b.inner, where)
    elif isinstance(a, ListOf):
        same_type(a.item, b.item, f"{where}[]")
    elif isinstance(a, DictOf):
        same_type(a.value, b.value, f"{where}{{}}")
    else:
        assert a == b, where


def plain(value: Any) -> Any:
    if isinstance(value, DefaultFactory):
        value = value.factory()
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


@pytest.mark.parametrize("annotation, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_field_type_round_trips(fmt, annotation, value):
    cls = holder(annotation)
    schema = fmt.schema_from_type(cls)
    fmt.validate_schema(schema)
    rebuilt = fmt.type_from_schema(schema, name="Holder")
    # the schema says what the class says, and the rebuilt class writes the same schema
    same_fields(fmt.fields_of(schema), sample_fields(cls))
    same_fields(sample_fields(rebuilt), sample_fields(cls))
    assert fmt.schema_from_type(rebuilt) == schema
    # samples: written by one class, read by the other, the same bytes again
    payload = cls(value=value).to_bytes()
    assert decoded(rebuilt.from_bytes(payload)) == msgpack.unpackb(payload, raw=False)
    assert decoded(cls.from_bytes(rebuilt.from_bytes(payload).to_bytes())) == msgpack.unpackb(payload, raw=False)


@pytest.mark.parametrize("annotation, value", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_field_type_as_an_optional_field_with_none(fmt, annotation, value):
    if typing.get_origin(annotation) is Annotated:
        # Python 3.11 cannot hash the dict inside Optional[Annotated[...]]: the core reads it this way round.
        inner, *extras = typing.get_args(annotation)
        optional = Annotated[(Optional[inner], *extras)]
    else:
        optional = Optional[annotation]
    cls = holder(optional, default=None)
    schema = fmt.schema_from_type(cls)
    rebuilt = fmt.type_from_schema(schema, name="Holder")
    same_fields(fmt.fields_of(schema), sample_fields(cls))
    assert fmt.schema_from_type(rebuilt) == schema
    assert rebuilt().value is None
    assert decoded(rebuilt.from_bytes(cls(value=value).to_bytes())) == decoded(cls(value=value))


DEFAULTS = [
    ("int", int, 3),
    ("float", float, 0.1),
    ("float_whole", float, 2),
    ("str", str, 'quote " backslash \\ newline \n brace }'),
    ("bool", bool, False),
    ("bytes", bytes, b"\x00\x01\xfe"),
    ("list", list[int], [1, 2]),
    ("dict", dict[str, list[str]], {"a": ["b"]}),
    ("optional_value", Optional[int], 5),
    ("any", Any, {"k": [1, 2.5, "x"]}),
    ("null_for_non_optional", int, None),
]


@pytest.mark.parametrize("annotation, default", [c[1:] for c in DEFAULTS], ids=[c[0] for c in DEFAULTS])
def test_defaults_round_trip(fmt, annotation, default):
    if isinstance(default, (list, dict)):
        cls = holder(annotation, default_factory=lambda: default)
    else:
        cls = holder(annotation, default=default)
    schema = fmt.schema_from_type(cls)
    (field,) = fmt.fields_of(schema)
    assert not field.required
    assert plain(field.default) == default
    rebuilt = fmt.type_from_schema(schema, name="Holder")
    assert rebuilt().value == default
    assert fmt.schema_from_type(rebuilt) == schema


def test_a_nested_default_is_a_fresh_copy_per_sample(fmt):
    schema = fmt.schema_from_type(Everything)
    rebuilt = fmt.type_from_schema(schema, name="Everything")
    origin = {f.name: f for f in fmt.fields_of(schema)}["origin"]
    assert isinstance(origin.default, DefaultFactory)
    a, b = (rebuilt(**{f.name: getattr(everything(), f.name) for f in sample_fields(rebuilt) if f.required}) for _ in "ab")
    assert (a.origin.x, a.origin.y) == (1.0, 2.0)
    a.origin.x = 9.0
    assert b.origin.x == 1.0


def test_an_array_default_is_refused(fmt):
    cls = holder(NDArray[np.float32], default_factory=lambda: np.zeros(2, dtype=np.float32))
    with pytest.raises(SchemaError, match="NDArray default"):
        fmt.schema_from_type(cls)


def test_field_types_are_read_as_written(fmt):
    fields = {f.name: f for f in fmt.fields_of(fmt.schema_from_type(Everything))}
    assert fields["image"].type == Array(np.dtype(np.uint8), (None, None, 3))
    assert fields["grid"].type == ListOf(ListOf(Scalar(int)))
    assert fields["maybe"].type == ListOf(OptionalType(Scalar(int)))
    assert fields["series"].type == DictOf(ListOf(Scalar(float)))
    assert fields["anything"].type == AnyValue()
    assert fields["extra"].type == OptionalType(ListOf(Scalar(int))) and fields["extra"].default is None
    assert fields["note"].description == 'a "note"\n} message Evil {'
    assert fields["label"].required and not fields["score"].required


def test_the_record_shape(fmt):
    schema = fmt.schema_from_type(Everything)
    assert set(schema) == {"$type", "fileDescriptor", "messageName", "protoText"}
    assert schema["$type"] == "science.alt.dataset.protobufFormat"
    assert schema["messageName"] == "atdata.samples.Everything"
    text = schema["fileDescriptor"]["$bytes"]
    assert not text.endswith("="), "the data model writes bytes without padding"
    from google.protobuf import descriptor_pb2

    file = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text + "=" * (-len(text) % 4)))
    assert file.syntax == "proto3" and file.package == "atdata.samples"
    assert [m.name for m in file.message_type] == ["Everything"]
    assert list(file.dependency) == ["atdata/v1/atdata.proto", "google/protobuf/struct.proto"]
    # padded base64, as other writers send it, reads the same
    padded = dict(schema, fileDescriptor={"$bytes": text + "=" * (-len(text) % 4)})
    assert fmt.schema_from_type(fmt.type_from_schema(padded, name="Everything")) == schema


def test_message_layout(fmt):
    text = fmt.proto_text(fmt.schema_from_type(Everything))
    assert "message Everything {" in text
    assert "  message Point {" in text  # nested sample classes are nested messages
    assert "repeated .atdata.samples.Everything.ListOfInt64 grid = 9;" in text
    assert "repeated .atdata.samples.Everything.OptionalInt64 maybe = 10;" in text
    assert "map<string, int64> counts = 11;" in text
    assert "optional double score = 15;" in text
    assert "repeated int64 extra = 17 [(atdata.v1.field) = {nullable: true}];" in text
    assert ".atdata.v1.NDArray image = 1 [(atdata.v1.field) = {dtype: \"uint8\" shape: {dims: [-1, -1, 3]}}];" in text


def test_numbers_follow_the_fields_unless_metadata_says(fmt):
    @packable
    class Numbered:
        a: int
        b: int = dataclasses.field(default=0, metadata={"protobuf_number": 10})
        c: int = 0

    schema = fmt.schema_from_type(Numbered)
    text = fmt.proto_text(schema)
    assert "int64 a = 1;" in text and "int64 c = 2" in text and "int64 b = 10" in text
    # the rebuilt class has no metadata, yet keeps the schema's numbers
    rebuilt = fmt.type_from_schema(schema, name="Numbered")
    assert fmt.schema_from_type(rebuilt) == schema


@pytest.mark.parametrize("number", [0, -1, 19000, 2**29, True, "3"])
def test_bad_explicit_numbers_are_refused(fmt, number):
    cls = holder(int, default=0, metadata={"protobuf_number": number})
    with pytest.raises(SchemaError, match="field number"):
        fmt.schema_from_type(cls)


def test_a_rebuilt_class_keeps_its_message_name_under_another_class_name(fmt):
    schema = fmt.schema_from_type(Everything)
    renamed = fmt.type_from_schema(schema, name="Image")
    assert renamed.__name__ == "Image"
    assert fmt.schema_from_type(renamed) == schema


def test_the_same_schema_and_name_give_the_same_class_and_it_pickles(fmt):
    schema = fmt.schema_from_type(Everything)
    cls = fmt.type_from_schema(schema, name="Everything")
    assert fmt.type_from_schema(schema, name="Everything") is cls
    sample = cls.from_bytes(everything().to_bytes())
    again = pickle.loads(pickle.dumps(sample))
    assert type(again) is cls and type(again.center) is type(sample.center)
    assert decoded(again) == decoded(sample)


IntPoint = packable(dataclasses.make_dataclass("Point", [("v", int)]))
StrPoint = packable(dataclasses.make_dataclass("Point", [("v", str)]))
Both = packable(dataclasses.make_dataclass("Both", [("a", IntPoint), ("b", StrPoint), ("c", list[list[IntPoint]])]))


@packable
class Tree:
    children: list[Tree]


def test_two_nested_classes_with_one_name_get_two_messages(fmt):
    schema = fmt.schema_from_type(Both)
    text = fmt.proto_text(schema)
    assert "message Point {" in text and "message Point2 {" in text and "message ListOfPoint {" in text
    rebuilt = fmt.type_from_schema(schema, name="Both")
    assert fmt.schema_from_type(rebuilt) == schema
    sample = Both(a=IntPoint(1), b=StrPoint("x"), c=[[IntPoint(2)]])
    assert decoded(rebuilt.from_bytes(sample.to_bytes())) == decoded(sample)


def test_what_protobuf_cannot_say_is_refused_when_writing(fmt):
    with pytest.raises(SchemaError, match="recursive"):
        fmt.schema_from_type(Tree)

    with pytest.raises(SchemaError, match="JSON name"):
        fmt.schema_from_type(packable(dataclasses.make_dataclass("Clash", [("foo_bar", int), ("fooBar", int)])))
    with pytest.raises(SchemaError, match="twice"):
        fmt.schema_from_type(
            packable(dataclasses.make_dataclass("Clash", [("tags", dict[str, int]), ("TagsEntry", int)]))
        )
    with pytest.raises(SchemaError, match="plain identifier"):
        fmt.schema_from_type(packable(dataclasses.make_dataclass("Größe", [("x", int)])))
