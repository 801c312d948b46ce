"""The .proto text this format renders compiles with protoc, back to the very descriptor the record holds."""

from __future__ import annotations

import base64
import dataclasses

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from atdata_core import packable

from atdata_schema_protobuf._shim import shim_file
from protobuf_samples import CASES, Everything, everything, holder


def record_descriptor(schema) -> bytes:
    text = schema["fileDescriptor"]["$bytes"]
    return base64.b64decode(text + "=" * (-len(text) % 4))


def compiled(protoc, schema, fmt) -> descriptor_pb2.FileDescriptorProto:
    code, messages, data = protoc(fmt.proto_files(schema))
    assert code == 0, messages
    files = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(data).file}
    return files[descriptor_pb2.FileDescriptorProto.FromString(record_descriptor(schema)).name]


def test_the_shipped_shim_is_the_descriptor_the_format_builds(protoc, fmt):
    code, messages, data = protoc({"atdata/v1/atdata.proto": fmt.proto_files(fmt.schema_from_type(Everything))["atdata/v1/atdata.proto"]},
                                  target="atdata/v1/atdata.proto")
    assert code == 0, messages
    (compiled_shim,) = descriptor_pb2.FileDescriptorSet.FromString(data).file
    assert compiled_shim.SerializeToString(deterministic=True) == shim_file().SerializeToString(deterministic=True)


def test_the_proto_text_compiles_to_the_record_descriptor(protoc, fmt):
    schema = fmt.schema_from_type(Everything)
    assert schema["protoText"] == fmt.proto_files(schema)["atdata/samples/Everything.proto"]
    assert compiled(protoc, schema, fmt).SerializeToString(deterministic=True) == record_descriptor(schema)


@pytest.mark.parametrize("annotation", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_every_field_type_compiles(protoc, fmt, annotation):
    schema = fmt.schema_from_type(holder(annotation))
    assert compiled(protoc, schema, fmt).SerializeToString(deterministic=True) == record_descriptor(schema)


def test_strings_from_the_class_are_escaped(protoc, fmt):
    nasty = 'end " quote \\ backslash \n newline */ // comment } ]; message Evil { \x00 \x7f é ✓ \u2028'
    cls = packable(dataclasses.make_dataclass("Nasty", [
        ("text", str, dataclasses.field(default=nasty, metadata={"description": nasty})),
    ]))
    schema = fmt.schema_from_type(cls)
    file = compiled(protoc, schema, fmt)
    assert file.SerializeToString(deterministic=True) == record_descriptor(schema)
    assert "Evil" not in [m.name for m in file.message_type[0].nested_type]
    (field,) = fmt.fields_of(schema)
    assert field.default == nasty and field.description == nasty


def test_protobuf_keywords_are_fine_field_and_message_names(protoc, fmt):
    names = ["message", "optional", "repeated", "map", "group", "reserved", "option", "string", "syntax", "package",
             "service", "enum", "returns", "stream", "oneof", "to", "max", "extensions", "weak", "public"]
    cls = packable(dataclasses.make_dataclass("Optional", [(n, int) for n in names]))
    schema = fmt.schema_from_type(cls)
    assert compiled(protoc, schema, fmt).SerializeToString(deterministic=True) == record_descriptor(schema)


def test_the_message_class_reads_a_sample_as_protobuf(fmt):
    """The descriptor is a real protobuf type: a sample's values fit the message class built at run time."""
    schema = fmt.schema_from_type(Everything)
    Message = fmt.message_class(schema)
    sample = everything()
    message = Message(label=sample.label, count=sample.count, flag=sample.flag, blob=sample.blob, tags=sample.tags)
    message.image.dtype = sample.image.dtype.str
    message.image.shape.extend(sample.image.shape)
    message.image.data = sample.image.tobytes()
    message.center.x, message.center.y = sample.center.x, sample.center.y
    for row in sample.grid:
        message.grid.add().value.extend(row)
    for item in sample.maybe:
        wrapper = message.maybe.add()
        if item is not None:
            wrapper.value = item
    message.counts.update(sample.counts)
    for key, values in sample.series.items():
        message.series[key].value.extend(values)
    message.score = sample.score
    again = Message.FromString(message.SerializeToString())
    image = np.frombuffer(again.image.data, dtype=again.image.dtype).reshape(tuple(again.image.shape))
    np.testing.assert_array_equal(image, sample.image)
    assert [list(w.value) for w in again.grid] == sample.grid
    assert [w.value if w.HasField("value") else None for w in again.maybe] == sample.maybe
    assert again.HasField("score") and not again.HasField("weights")
    assert {k: list(v.value) for k, v in again.series.items()} == sample.series
