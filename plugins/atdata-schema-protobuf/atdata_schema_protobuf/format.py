"""The ``protobuf`` schema format: a sample class as a proto3 message, and back.

A schema record of this format (``schemaType`` ``protobuf``) holds this union
member::

    {
      "$type": "science.alt.dataset.protobufFormat",
      "fileDescriptor": {"$bytes": "<base64 of a serialized FileDescriptorProto>"},
      "messageName": "atdata.samples.Image",
      "protoText": "syntax = \\"proto3\\"; ..."      (for people; readers ignore it)
    }

The file (``atdata/samples/Image.proto``, package ``atdata.samples``) declares
one top-level message, the sample; nested sample classes and wrappers are
messages nested inside it. Field types::

    str / int / float / bool / bytes   string / int64 / double / bool / bytes
    NDArray                            .atdata.v1.NDArray, with (atdata.v1.field) dtype and shape
    Any                                .google.protobuf.Value
    list[T]                            repeated T
    dict[str, T]                       map<string, T>
    Optional[T]                        optional T  (repeated and map fields: nullable: true)
    nested @packable class             a nested message
    list[list[T]], list[Optional[T]]   repeated W, with W a wrapper message holding one field
    dict[str, list[T]]...              'value' (option (atdata.v1.message) = {wrapper: true})

A field that may be left out of a sample has a default; proto3 has none, so
``(atdata.v1.field).default`` carries it as JSON text. ``Optional[T] = None``
is plain ``optional T``; a nullable field every sample must carry says
``required: true``; descriptions are ``description``. Readers also accept the
other integer widths (``int32``, ``uint64``, ``sint64``...) and ``float``.

Field numbers are 1, 2, 3... in field order unless a field's metadata says
``protobuf_number``; a class built from a schema keeps its schema's numbers.
Compatibility is checked as strictly as for JSON Schema (the core compares
the fields), and protobuf adds its own rule: a field keeps its number, and a
number never names another field, nor one the previous version reserved.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from typing import Any

from atdata_core.errors import RecordError
from atdata_core.plugins import (
    DictOf,
    Field,
    FieldType,
    ListOf,
    Nested,
    Optional,
    SchemaChange,
    make_sample_type,
    set_rebuild_recipe,
)

from atdata_schema_protobuf import SCHEMA_TYPE, UNION_TYPE, _shim
from atdata_schema_protobuf._defaults import default_from_text
from atdata_schema_protobuf._reader import MessageRef, Parsed, ParsedMessage, parse_member
from atdata_schema_protobuf._text import render_file
from atdata_schema_protobuf._writer import ORIGIN_ATTRIBUTE, Origin, file_from_type

__all__ = ["ProtobufFormat", "register_lexicon"]


def register_lexicon() -> None:
    """Make ``science.alt.dataset.protobufFormat`` known to the core's validator (once per process)."""
    import json
    from importlib.resources import files

    from atdata_core.plugins import register_lexicon as register

    document = files("atdata_schema_protobuf").joinpath("lexicons", "science", "alt", "dataset", "protobufFormat.json")
    try:
        register(json.loads(document.read_text(encoding="utf-8")))
    except RecordError:
        pass  # registered already, by an earlier instance in this process


class ProtobufFormat:
    """The ``protobuf`` schema format (see the module docstring for the record shape and the mapping).

    It has no settings; the plugin's hook registers it. Building one
    registers the format's lexicon document, so records using it validate.
    """

    schema_type = SCHEMA_TYPE
    union_type = UNION_TYPE

    def __init__(self, config: Any = None):
        register_lexicon()

    # --- class -> schema ----------------------------------------------------

    def schema_from_type(self, sample_type: type) -> dict[str, Any]:
        """The ``protobufFormat`` union member describing ``sample_type``."""
        f, message_name = file_from_type(sample_type)
        data = f.SerializeToString(deterministic=True)
        member = {
            "$type": UNION_TYPE,
            "fileDescriptor": {"$bytes": base64.b64encode(data).decode("ascii").rstrip("=")},
            "messageName": message_name,
        }
        # Read back what was written: a class this format cannot read back is refused here, not by a reader.
        member["protoText"] = render_file(parse_member(member, UNION_TYPE).file)
        return member

    # --- schema -> class ----------------------------------------------------

    def validate_schema(self, schema: Mapping[str, Any]) -> None:
        """Raise :class:`SchemaError` unless ``schema`` is a readable ``protobufFormat`` member."""
        _validated(schema)

    def fields_of(self, schema: Mapping[str, Any]) -> tuple[Field, ...]:
        """The fields of the sample message, required ones first (the order of the class built from it)."""
        parsed = parse_member(schema, UNION_TYPE)
        return _Builder(parsed).fields(parsed.top)

    def type_from_schema(self, schema: Mapping[str, Any], *, name: str) -> type:
        """A packable class, built now, that reads and writes the samples ``schema`` describes.

        The same schema and name give the same class within a process, and the
        class (nested ones too) pickles as "build it from this schema".
        """
        parsed = parse_member(schema, UNION_TYPE)
        key = (parsed.data, parsed.message_name, name)
        with _lock:
            built = _built.get(key)
        if built is not None:
            return built[0]
        builder = _Builder(parsed)
        cls = make_sample_type(name, builder.fields(parsed.top))
        file = parsed.file
        _remember(cls, parsed.top, file_name=file.name, package=file.package, message=parsed.top.name)
        with _lock:
            stored = _built.setdefault(key, (cls, dict(builder.classes)))
        if stored[0] is cls:
            member = _plain_member(parsed)
            set_rebuild_recipe(cls, _rebuild, member, name)
            for full_name, nested in builder.classes.items():
                set_rebuild_recipe(nested, _rebuild_nested, member, name, full_name)
        return stored[0]

    # --- changes ------------------------------------------------------------

    def format_changes(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[SchemaChange]:
        """Changes the fields do not show: protobuf field numbers and encodings.

        A field that changed its number, a number that now names another
        field or one the old version reserved, and a reserved name reused are
        major: a protobuf reader of the old version would take one field for
        another. So is a changed encoding with the same field type
        (``int32`` -> ``int64``, ``int64`` -> ``sint64``).
        """
        before, after = parse_member(old, UNION_TYPE), parse_member(new, UNION_TYPE)
        changes: list[SchemaChange] = []
        _compare_messages(before, after, before.top, after.top, "", changes, set())
        return changes

    # --- protobuf -----------------------------------------------------------

    def proto_text(self, schema: Mapping[str, Any]) -> str:
        """The schema's .proto text, rendered from its file descriptor (never the record's ``protoText``)."""
        return render_file(_validated(schema).file)

    def proto_files(self, schema: Mapping[str, Any]) -> dict[str, str]:
        """Every file protoc needs for the schema, by path: the schema's own, and ``atdata/v1/atdata.proto``
        when it imports it (``google/protobuf/*`` come with protoc)."""
        parsed = _validated(schema)
        files = {parsed.file.name: render_file(parsed.file)}
        if _shim.SHIM_FILE in parsed.file.dependency:
            files[_shim.SHIM_FILE] = _shim.shim_text()
        return files

    def message_class(self, schema: Mapping[str, Any]) -> type:
        """The protobuf message class of the sample message, built at run time from the file descriptor."""
        from google.protobuf import message_factory

        parsed = _validated(schema)
        return message_factory.GetMessageClass(parsed.pool.FindMessageTypeByName(parsed.message_name))

    def __repr__(self) -> str:
        return "ProtobufFormat()"


# --------------------------------------------------------------------------- classes


def _validated(schema: Mapping[str, Any]) -> Parsed:
    """The parsed schema, after checking every default decodes and every nested class builds."""
    parsed = parse_member(schema, UNION_TYPE)
    _Builder(parsed).fields(parsed.top)
    return parsed


_lock = threading.Lock()
_built: dict[tuple[bytes, str, str], tuple[type, dict[str, type]]] = {}


def _plain_member(parsed: Parsed) -> dict[str, Any]:
    return {
        "$type": UNION_TYPE,
        "fileDescriptor": {"$bytes": base64.b64encode(parsed.data).decode("ascii").rstrip("=")},
        "messageName": parsed.message_name,
    }


def _rebuild(member: dict[str, Any], name: str) -> type:
    return ProtobufFormat().type_from_schema(member, name=name)


def _rebuild_nested(member: dict[str, Any], name: str, full_name: str) -> type:
    parsed = parse_member(member, UNION_TYPE)
    _rebuild(member, name)
    with _lock:
        return _built[(parsed.data, parsed.message_name, name)][1][full_name]


def _remember(cls: type, parsed: ParsedMessage, **top: Any) -> None:
    origin = Origin(
        numbers=tuple((f.name, f.number) for f in parsed.fields),
        reserved_ranges=parsed.reserved_ranges,
        reserved_names=parsed.reserved_names,
        **top,
    )
    setattr(cls, ORIGIN_ATTRIBUTE, origin)


class _Builder:
    """Builds the fields of parsed messages, and a class for each nested message (once per message)."""

    def __init__(self, parsed: Parsed):
        self.parsed = parsed
        self.classes: dict[str, type] = {}

    def fields(self, message: ParsedMessage) -> tuple[Field, ...]:
        fields = []
        for parsed in message.fields:
            where = f"{message.full_name}.{parsed.name}"
            ft = self.resolve(parsed.type)
            default = None
            if parsed.default_text is not None:
                default = default_from_text(parsed.default_text, ft, where)
            fields.append(Field(parsed.name, ft, parsed.required, default, parsed.description))
        # The order of the class make_sample_type builds: required fields first.
        return tuple([f for f in fields if f.required] + [f for f in fields if not f.required])

    def resolve(self, ft: FieldType) -> FieldType:
        if isinstance(ft, MessageRef):
            return Nested(self.class_for(ft.full_name))
        if isinstance(ft, Optional):
            return Optional(self.resolve(ft.inner))
        if isinstance(ft, ListOf):
            return ListOf(self.resolve(ft.item))
        if isinstance(ft, DictOf):
            return DictOf(self.resolve(ft.value))
        return ft

    def class_for(self, full_name: str) -> type:
        cls = self.classes.get(full_name)
        if cls is None:
            message = self.parsed.messages[full_name]
            cls = make_sample_type(message.name, self.fields(message))
            _remember(cls, message)
            self.classes[full_name] = cls
        return cls


# --------------------------------------------------------------------------- changes


def _compare_messages(
    old_file: Parsed,
    new_file: Parsed,
    old: ParsedMessage,
    new: ParsedMessage,
    prefix: str,
    changes: list[SchemaChange],
    seen: set[tuple[str, str]],
) -> None:
    if (old.full_name, new.full_name) in seen:
        return
    seen.add((old.full_name, new.full_name))
    old_by_name = {f.name: f for f in old.fields}
    old_by_number = {f.number: f for f in old.fields}
    for field in new.fields:
        path = prefix + field.name
        before = old_by_name.get(field.name)
        if before is not None and before.number != field.number:
            changes.append(SchemaChange(
                "major", f"field {path!r}: protobuf number {before.number} -> {field.number} (protobuf readers of "
                "the old version would read it as another field)"
            ))
        holder = old_by_number.get(field.number)
        if holder is not None and holder.name != field.name:
            changes.append(SchemaChange(
                "major", f"field {path!r} takes protobuf number {field.number}, which was field "
                f"{prefix + holder.name!r}: a number never changes meaning"
            ))
        if any(start <= field.number < end for start, end in old.reserved_ranges):
            changes.append(SchemaChange("major", f"field {path!r} takes protobuf number {field.number}, reserved before"))
        if field.name in old.reserved_names:
            changes.append(SchemaChange("major", f"field {path!r} takes a name reserved before"))
        if before is None:
            continue
        if before.type == field.type and before.encoding != field.encoding:
            changes.append(SchemaChange(
                "major", f"field {path!r}: protobuf encoding {_encoding(before)} -> {_encoding(field)}"
            ))
        pair = _message_pair(before.type, field.type)
        if pair is not None:
            _compare_messages(
                old_file, new_file, old_file.messages[pair[0]], new_file.messages[pair[1]], f"{path}.", changes, seen
            )


def _message_pair(old: FieldType, new: FieldType) -> tuple[str, str] | None:
    """The messages two field types hold at the same place (through the same lists, maps and optionals)."""
    while type(old) is type(new) and isinstance(old, (Optional, ListOf, DictOf)):
        if isinstance(old, Optional):
            old, new = old.inner, new.inner  # type: ignore[attr-defined]
        elif isinstance(old, ListOf):
            old, new = old.item, new.item  # type: ignore[attr-defined]
        else:
            old, new = old.value, new.value  # type: ignore[attr-defined]
    if isinstance(old, MessageRef) and isinstance(new, MessageRef):
        return old.full_name, new.full_name
    return None


def _encoding(field: Any) -> str:
    from google.protobuf import descriptor_pb2

    label, kind, optional = field.encoding
    words = []
    if optional:
        words.append("optional")
    elif label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
        words.append("repeated")
    words.append(descriptor_pb2.FieldDescriptorProto.Type.Name(kind).removeprefix("TYPE_").lower())
    return " ".join(words)

