"""The ``atdata/v1/atdata.proto`` shim: the NDArray message and atdata's custom options.

Schema files import it the way JSON Schema bodies refer to the NDArray shim
by URL: it is part of the format, shipped with the plugin, never read from a
record. Its descriptor is built here in code (the runtime has no .proto
parser); a test checks it against protoc's compilation of the shipped
``proto/atdata/v1/atdata.proto``.

The options live in ``FieldOptions`` / ``MessageOptions`` of the schema's
descriptor as extension 50871. The descriptor classes of the default pool do
not know that extension, so its payload is carried as an unknown field: this
module writes it (:func:`with_field_options`) and finds it again
(:func:`field_options`) with a few lines of wire-format reading.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

from atdata_core.errors import SchemaError

__all__ = [
    "EXTENSION_NUMBER",
    "NDARRAY_TYPE",
    "SHIM_FILE",
    "SHIM_PACKAGE",
    "STRUCT_FILE",
    "VALUE_TYPE",
    "base_pool",
    "field_options",
    "message_options",
    "option_classes",
    "shim_file",
    "shim_text",
    "with_field_options",
    "with_message_options",
]

SHIM_FILE = "atdata/v1/atdata.proto"
SHIM_PACKAGE = "atdata.v1"
STRUCT_FILE = "google/protobuf/struct.proto"
DESCRIPTOR_FILE = "google/protobuf/descriptor.proto"
#: Fully qualified names as a field's ``type_name`` holds them.
NDARRAY_TYPE = ".atdata.v1.NDArray"
VALUE_TYPE = ".google.protobuf.Value"
#: The number of both extensions, (atdata.v1.field) and (atdata.v1.message).
EXTENSION_NUMBER = 50871

_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, *, label: int = _F.LABEL_OPTIONAL, type_name: str = "") -> _F:
    field = _F(name=name, number=number, label=label, type=kind, json_name=name)
    if type_name:
        field.type_name = type_name
    return field


@functools.cache
def _shim_bytes() -> bytes:
    f = descriptor_pb2.FileDescriptorProto(name=SHIM_FILE, package=SHIM_PACKAGE, syntax="proto3")
    f.dependency.append(DESCRIPTOR_FILE)
    f.message_type.add(name="NDArray").field.extend([
        _field("dtype", 1, _F.TYPE_STRING),
        _field("shape", 2, _F.TYPE_INT64, label=_F.LABEL_REPEATED),
        _field("data", 3, _F.TYPE_BYTES),
    ])
    f.message_type.add(name="Shape").field.append(_field("dims", 1, _F.TYPE_INT64, label=_F.LABEL_REPEATED))
    options = f.message_type.add(name="FieldOptions")
    options.field.extend([
        _field("dtype", 1, _F.TYPE_STRING),
        _field("shape", 2, _F.TYPE_MESSAGE, type_name=".atdata.v1.Shape"),
        _field("default", 3, _F.TYPE_STRING),
        _field("description", 4, _F.TYPE_STRING),
        _field("required", 5, _F.TYPE_BOOL),
        _field("nullable", 6, _F.TYPE_BOOL),
    ])
    options.field[2].proto3_optional = True
    options.field[2].oneof_index = 0
    options.oneof_decl.add(name="_default")
    f.message_type.add(name="MessageOptions").field.append(_field("wrapper", 1, _F.TYPE_BOOL))
    for name, extendee, type_name in (
        ("field", ".google.protobuf.FieldOptions", ".atdata.v1.FieldOptions"),
        ("message", ".google.protobuf.MessageOptions", ".atdata.v1.MessageOptions"),
    ):
        ext = _field(name, EXTENSION_NUMBER, _F.TYPE_MESSAGE, type_name=type_name)
        ext.extendee = extendee
        f.extension.append(ext)
    return f.SerializeToString(deterministic=True)


def shim_file() -> descriptor_pb2.FileDescriptorProto:
    """A fresh copy of the shim's FileDescriptorProto."""
    return descriptor_pb2.FileDescriptorProto.FromString(_shim_bytes())


def shim_text() -> str:
    """The shipped ``atdata/v1/atdata.proto``, for protoc's include path."""
    from importlib.resources import files

    return files("atdata_schema_protobuf").joinpath("proto", "atdata", "v1", "atdata.proto").read_text(encoding="utf-8")


def _file_proto(module: Any) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


def base_pool() -> descriptor_pool.DescriptorPool:
    """A new pool holding what schema files may import: descriptor.proto, struct.proto and the shim."""
    pool = descriptor_pool.DescriptorPool()
    for proto in _base_protos():
        pool.Add(proto)
    return pool


@functools.cache
def _base_protos() -> tuple[descriptor_pb2.FileDescriptorProto, ...]:
    return (_file_proto(descriptor_pb2), _file_proto(struct_pb2), shim_file())


@functools.cache
def option_classes() -> tuple[type, type, type]:
    """The message classes of ``atdata.v1.FieldOptions``, ``atdata.v1.MessageOptions`` and ``atdata.v1.NDArray``."""
    pool = base_pool()
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{SHIM_PACKAGE}.{name}"))
        for name in ("FieldOptions", "MessageOptions", "NDArray")
    )


# --------------------------------------------------------------------------- options as unknown fields


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise SchemaError("malformed options in the file descriptor (a truncated varint)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _extension_payload(options: Any, where: str) -> bytes | None:
    """The bytes of extension 50871 in an options message; None when it is absent."""
    data = options.SerializeToString()
    found: list[bytes] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
            continue
        if wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            if number == EXTENSION_NUMBER:
                found.append(data[pos : pos + size])
            pos += size
        else:
            raise SchemaError(f"{where}: malformed options in the file descriptor (wire type {wire})")
        if pos > len(data):
            raise SchemaError(f"{where}: malformed options in the file descriptor (truncated)")
    # A message-typed option written twice merges, as protobuf merges repeated occurrences.
    return b"".join(found) if found else None


def _parse(cls: type, payload: bytes, where: str) -> Any:
    try:
        return cls.FromString(payload)
    except Exception as err:  # noqa: BLE001 - the runtime raises DecodeError, RuntimeError...
        raise SchemaError(f"{where}: the atdata options do not parse ({err})") from None


def field_options(field: descriptor_pb2.FieldDescriptorProto, where: str) -> Any | None:
    """The ``(atdata.v1.field)`` option of a field, parsed; None when it has none."""
    if not field.HasField("options"):
        return None
    payload = _extension_payload(field.options, where)
    return None if payload is None else _parse(option_classes()[0], payload, where)


def message_options(message: descriptor_pb2.DescriptorProto, where: str) -> Any | None:
    """The ``(atdata.v1.message)`` option of a message, parsed; None when it has none."""
    if not message.HasField("options"):
        return None
    payload = _extension_payload(message.options, where)
    return None if payload is None else _parse(option_classes()[1], payload, where)


def _extension_bytes(payload: bytes) -> bytes:
    return _varint(EXTENSION_NUMBER << 3 | 2) + _varint(len(payload)) + payload


def with_field_options(field: descriptor_pb2.FieldDescriptorProto, values: dict[str, Any]) -> None:
    """Set ``(atdata.v1.field)`` on ``field`` from ``values`` (dtype, shape, default...); nothing when empty."""
    if not values:
        return
    options = option_classes()[0]()
    for key, value in values.items():
        if key == "shape":
            options.shape.dims.extend(value)
        else:
            setattr(options, key, value)
    field.options.MergeFromString(_extension_bytes(options.SerializeToString(deterministic=True)))


def with_message_options(message: descriptor_pb2.DescriptorProto, *, wrapper: bool) -> None:
    """Mark ``message`` as a wrapper with ``(atdata.v1.message) = {wrapper: true}``."""
    if wrapper:
        options = option_classes()[1](wrapper=True)
        message.options.MergeFromString(_extension_bytes(options.SerializeToString(deterministic=True)))
