"""A validated file descriptor as .proto text that protoc compiles back to the same descriptor.

Only names the reader checked (plain identifiers) are written bare; every
string (descriptions, defaults, dtypes) is written as an escaped literal, so
nothing a record holds can close a string, a comment or a block. Type
references are fully qualified (``.atdata.samples.Image.Point``): no scope
rule can make them mean another type.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2

from atdata_schema_protobuf import _shim
from atdata_schema_protobuf._names import FIELD_NUMBER_MAX

__all__ = ["render_file", "string_literal"]

_F = descriptor_pb2.FieldDescriptorProto
_KEYWORDS = {
    _F.TYPE_DOUBLE: "double", _F.TYPE_FLOAT: "float", _F.TYPE_INT64: "int64", _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32", _F.TYPE_FIXED64: "fixed64", _F.TYPE_FIXED32: "fixed32", _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string", _F.TYPE_BYTES: "bytes", _F.TYPE_UINT32: "uint32", _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64", _F.TYPE_SINT32: "sint32", _F.TYPE_SINT64: "sint64",
}
_INDENT = "  "


def string_literal(text: str) -> str:
    """``text`` as a .proto string literal: printable ASCII as is (``"`` and ``\\`` escaped), every other
    byte of its UTF-8 as an octal escape, so no character of ``text`` can end the literal or the line."""
    out = ['"']
    for byte in text.encode("utf-8"):
        if byte in (0x22, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def render_file(f: descriptor_pb2.FileDescriptorProto) -> str:
    """The .proto text of a file descriptor the reader validated."""
    lines = [
        "// The samples of an atdata schema, described as protobuf messages. Samples in dataset",
        "// shards are msgpack maps; this file describes their fields for other languages.",
        'syntax = "proto3";',
        "",
        f"package {f.package};",
        "",
    ]
    if f.dependency:
        lines.extend(f"import {string_literal(dep)};" for dep in f.dependency)
        lines.append("")
    for index, message in enumerate(f.message_type):
        if index:
            lines.append("")
        _message(message, 0, lines)
    return "\n".join(lines) + "\n"


def _message(message: descriptor_pb2.DescriptorProto, depth: int, lines: list[str]) -> None:
    pad = _INDENT * depth
    inner = pad + _INDENT
    lines.append(f"{pad}message {message.name} {{")
    options = _shim.message_options(message, message.name)
    if options is not None and options.wrapper:
        lines.append(f"{inner}option (atdata.v1.message) = {{wrapper: true}};")
    if message.reserved_range:
        parts = []
        for r in message.reserved_range:
            last = r.end - 1
            if last == r.start:
                parts.append(str(r.start))
            else:
                parts.append(f"{r.start} to {'max' if last == FIELD_NUMBER_MAX else last}")
        lines.append(f"{inner}reserved {', '.join(parts)};")
    if message.reserved_name:
        lines.append(f"{inner}reserved {', '.join(string_literal(n) for n in message.reserved_name)};")
    entries = {f".{m.name}": m for m in message.nested_type if m.options.map_entry}
    for field in message.field:
        lines.append(inner + _field(field, entries))
    for nested in message.nested_type:
        if nested.options.map_entry:
            continue  # protoc declares it from the map field
        lines.append("")
        _message(nested, depth + 1, lines)
    lines.append(f"{pad}}}")


def _field(field: descriptor_pb2.FieldDescriptorProto, entries: dict[str, descriptor_pb2.DescriptorProto]) -> str:
    entry = entries.get("." + field.type_name.rsplit(".", 1)[-1]) if field.type == _F.TYPE_MESSAGE else None
    if field.label == _F.LABEL_REPEATED and entry is not None:
        value = next(f for f in entry.field if f.number == 2)
        head = f"map<string, {_type(value)}>"
    elif field.label == _F.LABEL_REPEATED:
        head = f"repeated {_type(field)}"
    elif field.proto3_optional:
        head = f"optional {_type(field)}"
    else:
        head = _type(field)
    options = _shim.field_options(field, field.name)
    suffix = f" [(atdata.v1.field) = {_field_options(options)}]" if options is not None and options.ListFields() else ""
    return f"{head} {field.name} = {field.number}{suffix};"


def _type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type == _F.TYPE_MESSAGE:
        return field.type_name  # fully qualified, leading dot: the reader checked every part
    return _KEYWORDS[field.type]


def _field_options(options: Any) -> str:
    parts = []
    if options.dtype:
        parts.append(f"dtype: {string_literal(options.dtype)}")
    if options.HasField("shape"):
        dims = ", ".join(str(d) for d in options.shape.dims)
        parts.append(f"shape: {{dims: [{dims}]}}" if dims else "shape: {}")
    if options.HasField("default"):
        parts.append(f"default: {string_literal(options.default)}")
    if options.description:
        parts.append(f"description: {string_literal(options.description)}")
    if options.required:
        parts.append("required: true")
    if options.nullable:
        parts.append("nullable: true")
    return "{" + " ".join(parts) + "}"
