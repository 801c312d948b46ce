"""``.proto`` files for schema records of any format, so that other languages can use protoc.

::

    files = proto_files(record)        # {"com/example/image/v1_0_0.proto": "syntax = \\"proto3\\"; ..."}

A schema format that describes samples as protobuf itself offers the optional
capability ``proto_files(schema) -> {path: text}`` (atdata-schema-protobuf
does: its files keep the record's own field numbers and options); it is used
when present. Every other format gets proto3 rendered here from the fields it
parses (``SchemaFormat.fields_of``), one self-contained file per schema:

=====================  ============================================================
``str int float``      ``string int64 double``
``bool bytes``         ``bool bytes``
NDArray                ``NDArray`` (a message of the file: ``dtype``, ``shape``, ``data``,
                       the same layout as atdata-schema-protobuf's ``atdata.v1.NDArray``)
``Optional[T]``        ``optional T`` (message fields have presence already)
``list[T]``            ``repeated T``
``dict[str, T]``       ``map<string, T>``
nested class           a message of its own
``Any``                ``google.protobuf.Value``
=====================  ============================================================

Types protobuf cannot nest (a list of lists, a map of lists, an optional list
item) get a wrapper message with one field, ``value``. Field numbers follow
the schema's field order (1, 2, ...): a JSON Schema has no field numbers, so
they are stable only while a schema's versions append fields. The package is
the schema id with the version (``com.example.image.v1_0_0``), so several
versions can sit side by side.

Names that become .proto identifiers must be ASCII identifiers (anything else
raises :class:`~atdata_core.errors.SchemaError`); record text (descriptions,
defaults, dtypes) appears only in ``//`` comments, with every character other
than printable ASCII escaped, so it cannot end the comment. Every rendered
line is checked against the shapes this writer produces before the file is
returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from atdata_core.errors import SchemaError
from atdata_core.sample import AnyValue, Array, DictOf, Field, FieldType, ListOf, Nested, Optional, Scalar, sample_fields
from atdata_core.schema._naming import class_name_for, dtype_text
from atdata_core.schema._record import check_layout, format_for_record, schema_body

__all__ = ["check_proto_text", "proto_files", "render_proto3"]

_ASCII_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCALARS = {str: "string", int: "int64", float: "double", bool: "bool", bytes: "bytes"}
_STRUCT = "google/protobuf/struct.proto"
_NDARRAY = "NDArray"
# Words protoc reads as types or syntax; a message may not be named one of them.
_RESERVED = frozenset({
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
    "sfixed32", "sfixed64", "bool", "string", "bytes", "message", "enum", "service", "rpc", "returns",
    "stream", "package", "import", "option", "optional", "repeated", "required", "map", "oneof", "reserved",
    "extensions", "extend", "syntax", "to", "max", "weak", "public", "true", "false", "inf", "nan", "group",
})


def proto_files(record: Mapping[str, Any]) -> dict[str, str]:
    """``{relative path: .proto text}`` for a schema record: the format's own files, else proto3 from its fields."""
    check_layout(record)
    fmt = format_for_record(record)
    own = getattr(fmt, "proto_files", None)
    if callable(own):
        files = own(schema_body(record))
        if not isinstance(files, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise SchemaError(f"{type(fmt).__name__}.proto_files returned {type(files).__name__}, not a map of paths to text")
        for path in files:
            _check_relative_path(path)
        return dict(files)
    path, text = render_proto3(record)
    return {path: text}


def render_proto3(record: Mapping[str, Any]) -> tuple[str, str]:
    """(path, text) of one proto3 file describing the record's samples, rendered from its fields."""
    check_layout(record)
    fmt = format_for_record(record)
    fields = tuple(fmt.fields_of(schema_body(record)))
    name = record.get("name") if isinstance(record.get("name"), str) else ""
    version = record.get("version") if isinstance(record.get("version"), str) else ""
    package = _package(name, version)
    writer = _ProtoWriter()
    top = writer.message(class_name_for(name, fallback="Sample"), fields, record.get("description"))
    header = [
        f"// Samples of the atdata schema {_comment(name)} {_comment(version)}, as proto3 messages ({top}).",
        "// Rendered by atdata-core from the schema record's fields; dataset shards hold msgpack maps of",
        "// these fields. Field numbers follow the schema's field order.",
        'syntax = "proto3";',
        "",
        f"package {package};",
        "",
    ]
    if writer.uses_struct:
        header += [f'import "{_STRUCT}";', ""]
    blocks = list(writer.blocks)
    if writer.uses_ndarray:
        blocks.insert(0, "\n".join([
            "// A dense array: numpy's dtype string, the shape, and the raw bytes in C order.",
            f"message {_NDARRAY} {{",
            "  string dtype = 1;",
            "  repeated int64 shape = 2;",
            "  bytes data = 3;",
            "}",
        ]))
    text = "\n".join(header) + "\n" + "\n\n".join(blocks) + "\n"
    check_proto_text(text)
    return package.replace(".", "/") + ".proto", text


def _package(name: str, version: str) -> str:
    parts = [re.sub(r"[^a-z0-9_]+", "_", part.lower()).strip("_") for part in re.split(r"[.]", name)]
    parts = [part if part and part[0].isalpha() else f"s_{part}".rstrip("_") for part in parts if part] or ["atdata_schema"]
    tail = "v" + re.sub(r"[^a-z0-9]+", "_", version.lower()).strip("_") if version else "unversioned"
    return ".".join([*parts, tail])


class _ProtoWriter:
    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.names: dict[Any, str] = {}
        self.taken: set[str] = {_NDARRAY}
        self.uses_struct = False
        self.uses_ndarray = False

    def _unique(self, wanted: str) -> str:
        if not _ASCII_NAME.match(wanted) or wanted.lower() in _RESERVED:
            raise SchemaError(f"{wanted!r} cannot name a .proto message: only ASCII identifiers that are not keywords")
        candidate, n = wanted, 2
        while candidate in self.taken:
            candidate, n = f"{wanted}{n}", n + 1
        self.taken.add(candidate)
        return candidate

    def message(self, wanted: str, fields: tuple[Field, ...], description: Any = None) -> str:
        name = self._unique(wanted)
        lines = _comment_lines(description, "")
        lines.append(f"message {name} {{")
        json_names: dict[str, str] = {}
        for number, field in enumerate(fields, start=1):
            if not isinstance(field.name, str) or not _ASCII_NAME.match(field.name):
                raise SchemaError(
                    f"{name}: field name {field.name!r} is not an ASCII identifier, so no .proto field can carry it"
                )
            camel = _json_name(field.name)
            if camel in json_names:
                raise SchemaError(
                    f"{name}: fields {json_names[camel]!r} and {field.name!r} have the same JSON name {camel!r}, "
                    "which protoc refuses"
                )
            json_names[camel] = field.name
            where = f"{name}.{field.name}"
            notes = []
            if field.description:
                notes.append(field.description)
            if not field.required and field.default is not None:
                notes.append(f"default: {field.default!r}")
            lines += _comment_lines("\n".join(notes), "  ")
            label, kind = self.field_type(field.type, where)
            lines.append(f"  {label}{kind} {field.name} = {number};{_array_note(field.type)}")
        lines.append("}")
        self.blocks.append("\n".join(lines))
        return name

    def field_type(self, ft: FieldType, where: str) -> tuple[str, str]:
        """(label, type) of a field: label is ``""``, ``"optional "`` or ``"repeated "``."""
        if isinstance(ft, Optional):
            # An optional list or map is a repeated field or a map (empty stands for absent); a message
            # field has presence already; a scalar says so with `optional`.
            label, kind = self.field_type(ft.inner, where)
            return ("optional " if isinstance(ft.inner, Scalar) else label), kind
        if isinstance(ft, ListOf):
            return "repeated ", self.element(ft.item, where)
        if isinstance(ft, DictOf):
            return "", f"map<string, {self.element(ft.value, where)}>"
        return "", self.single(ft, where)

    def single(self, ft: FieldType, where: str) -> str:
        if isinstance(ft, Scalar):
            return _SCALARS[ft.type]
        if isinstance(ft, Array):
            self.uses_ndarray = True
            return _NDARRAY
        if isinstance(ft, Nested):
            if ft.cls not in self.names:
                self.names[ft.cls] = "?"  # a cycle would recurse forever; formats refuse them, this is a guard
                self.names[ft.cls] = self.message(ft.cls.__name__, tuple(sample_fields(ft.cls)), ft.cls.__doc__
                                                  if _own_doc(ft.cls) else None)
            if self.names[ft.cls] == "?":
                raise SchemaError(f"{where}: the nested type {ft.cls.__name__} contains itself")
            return self.names[ft.cls]
        if isinstance(ft, AnyValue):
            self.uses_struct = True
            return "google.protobuf.Value"
        raise SchemaError(f"{where}: no .proto type for {ft!r}")

    def element(self, ft: FieldType, where: str) -> str:
        """The type of a repeated item or map value: wrapped in a message when protobuf cannot nest it."""
        if isinstance(ft, (ListOf, DictOf, Optional)):
            wrapper = class_name_for(where.replace(".", "_"), fallback="Item") + "Item"
            return self.message(wrapper, (Field("value", ft, required=True),))
        return self.single(ft, where)


def _own_doc(cls: type) -> bool:
    doc = cls.__doc__
    return isinstance(doc, str) and bool(doc.strip()) and doc != f"{cls.__name__} sample"


def _json_name(name: str) -> str:
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _array_note(ft: FieldType) -> str:
    while isinstance(ft, (Optional, ListOf, DictOf)):
        ft = ft.inner if isinstance(ft, Optional) else ft.item if isinstance(ft, ListOf) else ft.value
    if not isinstance(ft, Array):
        return ""
    dtype = dtype_text(ft.dtype) if ft.dtype is not None else "any"
    shape = "any" if ft.shape is None else "(" + ", ".join("any" if d is None else str(int(d)) for d in ft.shape) + ")"
    return _comment(f"  // dtype {dtype}, shape {shape}")


def _comment(text: Any) -> str:
    """Text fit for one ``//`` comment line: printable ASCII kept, everything else escaped (``\\u202e``)."""
    if not isinstance(text, str):
        return ""
    out = []
    for ch in text:
        if " " <= ch <= "~":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _comment_lines(text: Any, indent: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return []
    return [f"{indent}// {_comment(line)}".rstrip() for line in text.splitlines()]


def _check_relative_path(path: str) -> None:
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or any(part in ("", ".", "..") for part in parts) or not path.endswith(".proto"):
        raise SchemaError(f"{path!r} is not a relative .proto path a generated file may be written to")
    if not all(re.fullmatch(r"[A-Za-z0-9_.-]+", part) for part in parts):
        raise SchemaError(f"{path!r} holds characters a generated file's path may not")


_LINE_SHAPES = [
    re.compile(r"^$"),
    re.compile(r"^ *//[ -~]*$"),
    re.compile(r'^syntax = "proto3";$'),
    re.compile(r"^package [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*;$"),
    re.compile(rf'^import "{re.escape(_STRUCT)}";$'),
    re.compile(r"^message [A-Za-z_][A-Za-z0-9_]* \{$"),
    re.compile(r"^\}$"),
    re.compile(
        r"^  (optional |repeated )?"
        r"(map<string, [A-Za-z_][A-Za-z0-9_.]*>|[A-Za-z_][A-Za-z0-9_.]*) [A-Za-z_][A-Za-z0-9_]* = [1-9][0-9]*;"
        r"(  //[ -~]*)?$"
    ),
]


def check_proto_text(text: str) -> None:
    """Refuse rendered .proto text any line of which is not a shape this writer produces.

    Comments are escaped, names checked; this is the proof that no record
    text escaped its comment or became a statement.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if not any(shape.match(line) for shape in _LINE_SHAPES):
            raise SchemaError(f"the rendered .proto text has an unexpected line {number}; it was not returned")
