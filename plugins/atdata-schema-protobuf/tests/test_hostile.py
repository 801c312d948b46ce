"""Schema records from strangers: whatever they hold, the format answers SchemaError, never another exception,
and nothing unchecked reaches a descriptor pool, a class or a .proto file."""

from __future__ import annotations

import base64
import random
from typing import Any, Callable

import pytest
from google.protobuf import descriptor_pb2

from atdata_core.errors import SchemaError

from atdata_schema_protobuf import UNION_TYPE
from atdata_schema_protobuf._shim import _extension_bytes, option_classes
from protobuf_samples import Everything

F = descriptor_pb2.FieldDescriptorProto


@pytest.fixture
def schema(fmt):
    return fmt.schema_from_type(Everything)


def encode(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    return {"$bytes": base64.b64encode(file.SerializeToString()).decode("ascii")}


def descriptor(schema) -> descriptor_pb2.FileDescriptorProto:
    text = schema["fileDescriptor"]["$bytes"]
    return descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text + "=" * (-len(text) % 4)))


def mutated(schema, change: Callable[[descriptor_pb2.FileDescriptorProto], Any], **member: Any) -> dict:
    file = descriptor(schema)
    change(file)
    return {**schema, "fileDescriptor": encode(file), **member}


def refused(fmt, schema, match: str | None = None) -> None:
    """Every entry point refuses the schema with SchemaError (and a message matching ``match``)."""
    for call in (
        fmt.validate_schema,
        fmt.fields_of,
        lambda s: fmt.type_from_schema(s, name="Evil"),
        fmt.proto_text,
        fmt.proto_files,
        fmt.message_class,
    ):
        with pytest.raises(SchemaError, match=match):
            call(schema)


def top(file):
    return file.message_type[0]


def field(file, name):
    return next(f for f in top(file).field if f.name == name)


def nested(file, name):
    return next(m for m in top(file).nested_type if m.name == name)


def set_option_bytes(target, payload: bytes) -> None:
    """Replace the options message with the atdata extension holding raw ``payload`` bytes."""
    target.Clear()
    target.MergeFromString(_extension_bytes(payload))


def field_option(**values) -> bytes:
    options = option_classes()[0]()
    for key, value in values.items():
        if key == "shape":
            options.shape.dims.extend(value)
        else:
            setattr(options, key, value)
    return options.SerializeToString()


NAME_ATTACKS = [
    'Evil { } message X',
    "x = 1; } message Y {",
    "Größe",
    "_private",
    "__init__",
    "a.b",
    "",
    "x" * 101,
    "a\nb",
    "class",
    "None",
]


@pytest.mark.parametrize("name", NAME_ATTACKS)
def test_hostile_message_names(fmt, schema, name):
    def change(file):
        top(file).name = name

    refused(fmt, mutated(schema, change, messageName=f"atdata.samples.{name}"))


@pytest.mark.parametrize("name", NAME_ATTACKS + ["def", "import"])
def test_hostile_field_names(fmt, schema, name):
    def change(file):
        f = field(file, "label")
        f.name = name
        f.ClearField("json_name")

    refused(fmt, mutated(schema, change))


@pytest.mark.parametrize("name", NAME_ATTACKS)
def test_hostile_nested_message_names(fmt, schema, name):
    def change(file):
        nested(file, "Point").name = name

    refused(fmt, mutated(schema, change))


@pytest.mark.parametrize("package", ['a; import "x"', "a..b", "google.protobuf", "atdata.v1", "", "1a", "a.b c"])
def test_hostile_packages(fmt, schema, package):
    def change(file):
        file.package = package

    refused(fmt, mutated(schema, change))


@pytest.mark.parametrize("name", ["../../etc/x.proto", "/abs.proto", "a/./b.proto", "x.txt", 'a".proto', "a b.proto",
                                  "google/protobuf/struct.proto", "atdata/v1/atdata.proto", ""])
def test_hostile_file_names(fmt, schema, name):
    def change(file):
        file.name = name

    refused(fmt, mutated(schema, change))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda f: setattr(f, "syntax", "proto2"), "proto3"),
        (lambda f: f.ClearField("syntax"), "proto3"),
        (lambda f: f.dependency.append("other/evil.proto"), "may import only"),
        (lambda f: f.dependency.append("atdata/v1/atdata.proto"), "may import only"),
        (lambda f: f.ClearField("dependency"), "does not import"),
        (lambda f: f.enum_type.add(name="Color").value.add(name="RED", number=0), "enums"),
        (lambda f: f.service.add(name="Svc"), "services"),
        (lambda f: f.ClearField("message_type"), "no message"),
        (lambda f: setattr(field(f, "label"), "label", F.LABEL_REQUIRED), "required"),
        (lambda f: setattr(field(f, "label"), "type", F.TYPE_GROUP), "group"),
        (lambda f: setattr(field(f, "label"), "type", F.TYPE_ENUM), "enum"),
        (lambda f: setattr(field(f, "label"), "number", 0), "field number"),
        (lambda f: setattr(field(f, "label"), "number", 19500), "reserved by protobuf"),
        (lambda f: setattr(field(f, "label"), "number", 1), "share number"),
        (lambda f: setattr(field(f, "label"), "default_value", "x"), "defaults"),
        (lambda f: setattr(field(f, "label"), "extendee", ".google.protobuf.FieldOptions"), "extensions"),
        (lambda f: setattr(field(f, "label"), "json_name", "other"), "json_name"),
        (lambda f: setattr(field(f, "center"), "type_name", ".atdata.samples.Nowhere"), "not a message of this file"),
        (lambda f: setattr(field(f, "center"), "type_name", "Point"), "not a message of this file"),
        (lambda f: setattr(field(f, "center"), "type_name", ".google.protobuf.Struct"), "not a message of this file"),
        (lambda f: setattr(field(f, "label"), "type_name", ".atdata.samples.Everything.Point"), "names a type"),
        (lambda f: top(f).reserved_range.add(start=2, end=3), "reserved"),
        (lambda f: top(f).reserved_range.add(start=5, end=2), "reserved range"),
        (lambda f: top(f).reserved_name.append("label"), "reserved"),
        (lambda f: top(f).reserved_name.append("a b"), "identifier"),
        (lambda f: top(f).oneof_decl.add(name="choice"), "oneof"),
        (lambda f: setattr(field(f, "score"), "proto3_optional", False), "oneof"),
        (lambda f: top(f).extension_range.add(start=100, end=200), "extension"),
        (lambda f: top(f).field.extend([F(name="fooBar", number=90, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL),
                                         F(name="foo_bar", number=91, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)]),
         "JSON name"),
        (lambda f: top(f).field.add(name="Point", number=90, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL), "declared twice"),
        (lambda f: nested(f, "Point").field.add(name="back", number=9, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                                                type_name=".atdata.samples.Everything"), "recursive"),
        (lambda f: nested(f, "ListOfInt64").field.add(name="more", number=2, type=F.TYPE_INT64,
                                                      label=F.LABEL_OPTIONAL), "one field"),
        (lambda f: setattr(nested(f, "ListOfInt64").field[0], "label", F.LABEL_OPTIONAL), "not a plain value"),
        (lambda f: setattr(field(f, "grid"), "label", F.LABEL_OPTIONAL), "wrapper"),
        (lambda f: setattr(field(f, "counts"), "type_name", ".atdata.samples.Everything.SeriesEntry"), "map"),
        (lambda f: setattr(nested(f, "CountsEntry").field[0], "type", F.TYPE_INT64), "string keys"),
        (lambda f: setattr(nested(f, "CountsEntry"), "name", "Other"), "not a message of this file"),
        (lambda f: top(f).nested_type.add(name="Stray").field.add(name="x", number=1, type=F.TYPE_INT64,
                                                                    label=F.LABEL_OPTIONAL, type_name=".x.Y"),
         "names a type"),
        (lambda f: field(f, "label").MergeFrom(F(type=F.TYPE_MESSAGE, type_name=".atdata.samples.Everything.CountsEntry")),
         "not its map"),
    ],
)
def test_hostile_structures(fmt, schema, change, match):
    refused(fmt, mutated(schema, change), match)


def test_a_wrapper_that_holds_itself(fmt, schema):
    def change(file):
        wrapper = nested(file, "ListOfInt64")
        wrapper.field[0].type = F.TYPE_MESSAGE
        wrapper.field[0].type_name = ".atdata.samples.Everything.ListOfInt64"

    refused(fmt, mutated(schema, change), "holds itself")


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\xff\xff\xff", "do not parse"),
        (field_option(dtype="object"), "object arrays"),
        (field_option(dtype="not a dtype"), "dtype"),
        (field_option(dtype="x" * 100), "longer"),
        (field_option(shape=[-2]), "shape"),
        (field_option(shape=[1] * 40), "shape"),
        (field_option(default="{not json"), "JSON"),
        (field_option(default='"text"'), "not a"),
        (field_option(default="[1, 2]", required=True), "not required"),
        (field_option(nullable=True), "nullable"),
        (field_option(required=True), "required"),
        (field_option(default="1" * 200_000), "characters"),
    ],
)
def test_hostile_field_options(fmt, schema, payload, match):
    def change(file):
        target = field(file, "count")
        if "dtype" in match or "shape" in match or "object" in match or "longer" in match:
            target = field(file, "image")
        set_option_bytes(target.options, payload)

    refused(fmt, mutated(schema, change), match)


def test_dtype_and_shape_on_a_field_that_is_not_an_array(fmt, schema):
    refused(fmt, mutated(schema, lambda f: set_option_bytes(field(f, "label").options, field_option(dtype="float32"))),
            "NDArray")


def test_a_deeply_nested_file(fmt, schema):
    def change(file):
        message = top(file)
        for depth in range(40):
            message = message.nested_type.add(name=f"Deep{depth}")

    refused(fmt, mutated(schema, change), "nested more than")


def test_long_chains_of_wrappers_and_messages(fmt, schema):
    def wrappers(file):
        scope = ".atdata.samples.Everything"
        for i in range(300):
            w = top(file).nested_type.add(name=f"W{i}")
            w.options.MergeFromString(_extension_bytes(option_classes()[1](wrapper=True).SerializeToString()))
            w.field.add(name="value", number=1, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                        type_name=f"{scope}.W{i + 1}" if i < 299 else "", json_name="value")
            if i == 299:
                w.field[0].type = F.TYPE_INT64
                w.field[0].ClearField("type_name")
        field(file, "grid").type_name = f"{scope}.W0"

    refused(fmt, mutated(schema, wrappers), "nested more than")

    def messages(file):
        scope = ".atdata.samples.Everything"
        for i in range(300):
            m = top(file).nested_type.add(name=f"M{i}")
            if i < 299:
                m.field.add(name="next", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                            type_name=f"{scope}.M{i + 1}", json_name="next")
        field(file, "center").type_name = f"{scope}.M0"

    refused(fmt, mutated(schema, messages), "nested more than")


def test_names_in_errors_are_quoted(fmt, schema):
    def change(file):
        field(file, "label").name = "x\x1b[31mred"

    with pytest.raises(SchemaError) as caught:
        fmt.validate_schema(mutated(schema, change))
    assert "\x1b" not in str(caught.value) and "\\x1b" in str(caught.value)


@pytest.mark.parametrize(
    "member, match",
    [
        ({"$type": "science.alt.dataset.schema#jsonSchemaFormat"}, "not a protobuf"),
        ({"fileDescriptor": "AAAA"}, "\\$bytes"),
        ({"fileDescriptor": {"$bytes": "!!!"}}, "base64"),
        ({"fileDescriptor": {"$bytes": 5}}, "\\$bytes"),
        ({"fileDescriptor": {"$bytes": "AA", "x": 1}}, "\\$bytes"),
        ({"fileDescriptor": {"$bytes": base64.b64encode(b"\x0a\xff\xff\xff\xff\x0f").decode()}}, "not a serialized"),
        ({"fileDescriptor": {"$bytes": "A" * 2_000_000}}, "larger"),
        ({"messageName": 5}, "messageName"),
        ({"messageName": "atdata.samples.Nothing"}, "names no message"),
        ({"messageName": "atdata.samples.Everything.ListOfInt64"}, "wrapper"),
        ({"messageName": "atdata.samples.Everything.CountsEntry"}, "map entry"),
        ({"protoText": 5}, "protoText"),
    ],
)
def test_hostile_members(fmt, schema, member, match):
    refused(fmt, {**schema, **member}, match)


def test_not_a_mapping(fmt):
    refused(fmt, ["not", "a", "schema"], "object")


def test_the_record_protoText_is_never_used(fmt, schema):
    lying = {**schema, "protoText": 'message Evil { string x = 1; }\nimport "/etc/passwd";'}
    fmt.validate_schema(lying)
    assert fmt.proto_text(lying) == schema["protoText"]


def test_random_byte_damage_is_a_schema_error(fmt, schema):
    """Flipped, dropped and inserted bytes: the reader answers SchemaError, never another exception."""
    data = bytearray(descriptor(schema).SerializeToString())
    rng = random.Random(1234)
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            where = rng.randrange(len(damaged))
            action = rng.choice(("flip", "drop", "insert"))
            if action == "flip":
                damaged[where] ^= 1 << rng.randrange(8)
            elif action == "drop":
                del damaged[where]
            else:
                damaged.insert(where, rng.randrange(256))
        member = {"$type": UNION_TYPE, "fileDescriptor": {"$bytes": base64.b64encode(bytes(damaged)).decode()},
                  "messageName": schema["messageName"]}
        try:
            fmt.validate_schema(member)
        except SchemaError:
            continue
        fmt.type_from_schema(member, name="Damaged")


NAMES = ["x", "value", "key", "Point", "Everything", "label", "a_b", "aB", "", "9x", "é", "x y", "max", "to",
         'q"', "x\n", "_x", "class", "NDArray"]


def _mutate(file: descriptor_pb2.FileDescriptorProto, rng: random.Random) -> None:
    messages = [top(file), *top(file).nested_type]
    message = rng.choice(messages)
    fields = list(message.field)
    action = rng.randrange(9)
    if action == 0 or not fields:
        message.name = rng.choice(NAMES)
        return
    target = rng.choice(fields)
    if action == 1:
        target.name = rng.choice(NAMES)
        target.ClearField("json_name")
    elif action == 2:
        target.number = rng.choice([1, 2, 3, 7, 0, 19001, 2**29 - 1, 2**29])
    elif action == 3:
        target.type = rng.randrange(1, 19)
    elif action == 4:
        target.label = rng.randrange(1, 4)
    elif action == 5:
        target.proto3_optional = not target.proto3_optional
    elif action == 6:
        target.type_name = rng.choice(
            [f".atdata.samples.Everything.{m.name}" for m in top(file).nested_type]
            + [".atdata.v1.NDArray", ".google.protobuf.Value", ".atdata.samples.Everything", "Point", ""]
        )
    elif action == 7:
        set_option_bytes(target.options, field_option(**rng.choice([
            {"dtype": "float32"}, {"shape": [2, -1]}, {"default": "3"}, {"default": "null"}, {"required": True},
            {"nullable": True}, {"description": 'x"}\n'}, {"default": '"s"'}, {"default": "[[1]]"},
        ])))
    else:
        message.reserved_range.add(start=rng.randrange(1, 20), end=rng.randrange(1, 30))


def test_structured_damage_is_a_schema_error_or_a_schema_protoc_compiles(fmt, schema, protoc):
    """Names, numbers, types, labels, options and reserved ranges changed at random: the reader answers
    SchemaError, or reads a schema that builds a class and whose .proto text protoc compiles."""
    rng = random.Random(99)
    readable = []
    for _ in range(400):
        file = descriptor(schema)
        for _ in range(rng.randint(1, 3)):
            _mutate(file, rng)
        member = {**schema, "fileDescriptor": encode(file)}
        try:
            fmt.validate_schema(member)
        except SchemaError:
            continue
        fmt.type_from_schema(member, name="Damaged")
        readable.append(member)
    assert 5 <= len(readable) < 400, len(readable)
    for member in rng.sample(readable, 12):
        code, messages, data = protoc(fmt.proto_files(member))
        assert code == 0, messages
