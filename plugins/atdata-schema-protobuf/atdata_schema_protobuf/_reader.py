"""Reading a ``protobufFormat`` member: decode, validate and type the file descriptor it carries.

A schema record is written by someone else (DESIGN D8). Before anything of
it reaches a descriptor pool, a class or a .proto file, every name is checked
to be a plain identifier, every type reference resolved inside the file or to
the two files it may import, every number checked, and every structure
checked to be one this format writes (or an equivalent one: other integer
widths, ``float``). Whatever the runtime still refuses is reported as
:class:`~atdata_core.errors.SchemaError` too.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
from google.protobuf import descriptor_pb2

from atdata_core.errors import SchemaError
from atdata_core.plugins import AnyValue, Array, DictOf, FieldType, ListOf, Optional, Scalar

from atdata_schema_protobuf import _shim
from atdata_schema_protobuf._names import (
    FIELD_NUMBER_MAX,
    check_field_name,
    check_file_name,
    check_message_name,
    check_number,
    check_package,
    json_name,
    map_entry_name,
    shown,
)

__all__ = ["MAX_DESCRIPTOR_BYTES", "MessageRef", "Parsed", "ParsedField", "ParsedMessage", "parse_member"]

_F = descriptor_pb2.FieldDescriptorProto

#: Largest file descriptor read from a record (a record is at most 1 MB of JSON).
MAX_DESCRIPTOR_BYTES = 500_000
_MAX_DEPTH = 32
_MAX_MESSAGES = 1_000
_MAX_FIELDS = 10_000
_MAX_DTYPE = 64
_MAX_NDIM = 32
_MAX_DESCRIPTION = 5_000

_SCALARS = {
    _F.TYPE_STRING: str,
    _F.TYPE_BYTES: bytes,
    _F.TYPE_BOOL: bool,
    _F.TYPE_DOUBLE: float,
    _F.TYPE_FLOAT: float,
    **{
        kind: int
        for kind in (
            _F.TYPE_INT64, _F.TYPE_INT32, _F.TYPE_UINT64, _F.TYPE_UINT32, _F.TYPE_SINT64, _F.TYPE_SINT32,
            _F.TYPE_FIXED64, _F.TYPE_FIXED32, _F.TYPE_SFIXED64, _F.TYPE_SFIXED32,
        )
    },
}


@dataclasses.dataclass(frozen=True)
class MessageRef(FieldType):
    """A field type naming a message of the file (a nested sample class, built later)."""

    full_name: str


@attrs.frozen
class ParsedField:
    name: str
    number: int
    type: FieldType  # MessageRef where a nested sample class goes
    required: bool
    default_text: str | None  # JSON text; None: no default (or None when not required)
    description: str | None
    #: how protobuf encodes it, for changes the field types do not show: (label, type, proto3 optional)
    encoding: tuple[int, int, bool]


@attrs.frozen
class ParsedMessage:
    full_name: str
    name: str
    fields: tuple[ParsedField, ...]  # in file order
    reserved_ranges: tuple[tuple[int, int], ...]
    reserved_names: tuple[str, ...]


@attrs.frozen
class Parsed:
    """A validated file descriptor: its messages typed, the pool it was built in."""

    file: descriptor_pb2.FileDescriptorProto = attrs.field(eq=False, repr=False)
    data: bytes = attrs.field(repr=False)
    message_name: str
    messages: Mapping[str, ParsedMessage] = attrs.field(eq=False, repr=False)  # plain messages only
    pool: Any = attrs.field(eq=False, repr=False)

    @property
    def top(self) -> ParsedMessage:
        return self.messages[self.message_name]


def parse_member(member: Any, union_type: str) -> Parsed:
    """Validate a ``protobufFormat`` union member and parse its descriptor; :class:`SchemaError` otherwise."""
    if not isinstance(member, Mapping):
        raise SchemaError(f"a protobuf schema body is an object, got {type(member).__name__}")
    kind = member.get("$type")
    if kind != union_type:
        raise SchemaError(f"not a protobuf schema body: $type is {kind!r}, expected {union_type!r}")
    data = _descriptor_bytes(member.get("fileDescriptor"))
    message_name = member.get("messageName")
    if not isinstance(message_name, str) or not message_name or len(message_name) > 500:
        raise SchemaError("'messageName' is the full name of the sample message, e.g. 'atdata.samples.Image'")
    text = member.get("protoText")
    if text is not None and not isinstance(text, str):
        raise SchemaError("'protoText', when present, is the .proto text of the file descriptor")
    return _parse(data, message_name)


def _descriptor_bytes(value: Any) -> bytes:
    import base64
    import binascii

    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, Mapping) and set(value) == {"$bytes"} and isinstance(value["$bytes"], str):
        text = value["$bytes"]
        if len(text) > MAX_DESCRIPTOR_BYTES * 2:
            raise SchemaError(f"'fileDescriptor' is larger than {MAX_DESCRIPTOR_BYTES} bytes")
        try:
            # The data model writes base64 without padding; other writers pad.
            data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as err:
            raise SchemaError(f"'fileDescriptor' is not base64: {err}") from None
    else:
        raise SchemaError("'fileDescriptor' holds the serialized FileDescriptorProto as {\"$bytes\": base64}")
    if len(data) > MAX_DESCRIPTOR_BYTES:
        raise SchemaError(f"'fileDescriptor' is {len(data)} bytes; at most {MAX_DESCRIPTOR_BYTES} are read")
    return data


@functools.lru_cache(maxsize=128)
def _parse(data: bytes, message_name: str) -> Parsed:
    try:
        f = descriptor_pb2.FileDescriptorProto.FromString(data)
    except Exception as err:  # noqa: BLE001 - DecodeError, or RecursionError on absurd nesting
        raise SchemaError(f"'fileDescriptor' is not a serialized FileDescriptorProto ({type(err).__name__}: {err})") from None
    return _FileReader(f, data, message_name).read()


class _FileReader:
    def __init__(self, f: descriptor_pb2.FileDescriptorProto, data: bytes, message_name: str):
        self.f = f
        self.data = data
        self.message_name = message_name
        self.all: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.parents: dict[str, str] = {}
        self.field_count = 0

    def read(self) -> Parsed:
        f = self.f
        if f.syntax != "proto3":
            raise SchemaError(f"the file descriptor's syntax is {f.syntax or 'proto2'!r}; this format reads proto3 files")
        if f.HasField("edition") and f.edition:
            raise SchemaError("the file descriptor declares an edition; this format reads proto3 files")
        check_file_name(f.name, "fileDescriptor.name")
        package = check_package(f.package, "fileDescriptor.package")
        allowed = {_shim.SHIM_FILE, _shim.STRUCT_FILE}
        deps = list(f.dependency)
        if len(set(deps)) != len(deps) or not set(deps) <= allowed:
            raise SchemaError(
                f"the file imports {deps}; a schema file may import only {sorted(allowed)}"
            )
        if f.public_dependency or f.weak_dependency or list(getattr(f, "option_dependency", ())):
            raise SchemaError("the file has public, weak or option imports; a schema file has plain imports only")
        if f.enum_type or f.service or f.extension:
            raise SchemaError("the file declares enums, services or extensions; a schema file holds messages only")
        if not f.message_type:
            raise SchemaError("the file declares no message")
        self.deps = set(deps)
        for message in f.message_type:
            self._collect(message, f".{package}", depth=1)
        if f".{self.message_name}" not in self.all:
            raise SchemaError(f"'messageName' {self.message_name!r} names no message of the file")
        messages: dict[str, ParsedMessage] = {}
        for full, message in self.all.items():
            if message.options.map_entry:
                continue  # read with the map field that uses it
            if self._is_wrapper(full):
                self._wrapped(full, ())
                continue
            messages[full[1:]] = self._message(full, message)
        if self.message_name not in messages:
            raise SchemaError(f"'messageName' {self.message_name!r} names a map entry or a wrapper, not a sample message")
        _check_acyclic(messages, self.message_name)
        pool = self._pool()
        return Parsed(file=self.f, data=self.data, message_name=self.message_name, messages=messages, pool=pool)

    # --- structure ----------------------------------------------------------

    def _collect(self, message: descriptor_pb2.DescriptorProto, scope: str, depth: int) -> None:
        where = f"{scope[1:]}.{shown(message.name)}"
        if depth > _MAX_DEPTH:
            raise SchemaError(f"{where}: messages are nested more than {_MAX_DEPTH} deep")
        check_message_name(message.name, where)
        full = f"{scope}.{message.name}"
        if full in self.all:
            raise SchemaError(f"{where}: the message is declared twice")
        if len(self.all) >= _MAX_MESSAGES:
            raise SchemaError(f"the file declares more than {_MAX_MESSAGES} messages")
        self.all[full] = message
        self.parents[full] = scope
        if message.enum_type or message.extension or message.extension_range:
            raise SchemaError(f"{where}: enums, extensions and extension ranges are not part of a sample message")
        self.field_count += len(message.field)
        if self.field_count > _MAX_FIELDS:
            raise SchemaError(f"the file declares more than {_MAX_FIELDS} fields")
        # Fields and nested messages share one scope in protobuf.
        declared: set[str] = set()
        for name in [f.name for f in message.field] + [m.name for m in message.nested_type]:
            if name in declared:
                raise SchemaError(f"{where}: the name {name!r} is declared twice in the message")
            declared.add(name)
        for nested in message.nested_type:
            self._collect(nested, full, depth + 1)

    def _is_wrapper(self, full: str) -> bool:
        options = self._needs_shim(_shim.message_options(self.all[full], full[1:]), full[1:])
        return bool(options is not None and options.wrapper)

    def _field_options(self, field: descriptor_pb2.FieldDescriptorProto, where: str) -> Any:
        return self._needs_shim(_shim.field_options(field, where), where)

    def _needs_shim(self, options: Any, where: str) -> Any:
        if options is not None and _shim.SHIM_FILE not in self.deps:
            raise SchemaError(f"{where}: the atdata options are declared in {_shim.SHIM_FILE}, which the file does not import")
        return options

    def _message(self, full: str, message: descriptor_pb2.DescriptorProto) -> ParsedMessage:
        where = full[1:]
        reserved_ranges = []
        for r in message.reserved_range:
            if not 1 <= r.start < r.end <= FIELD_NUMBER_MAX + 1:
                raise SchemaError(f"{where}: reserved range {r.start} to {r.end - 1} is not a range of field numbers")
            reserved_ranges.append((r.start, r.end))
        reserved_names = tuple(check_field_name(n, f"{where} (reserved name)") for n in message.reserved_name)
        self._check_oneofs(message, where)
        fields = []
        numbers: dict[int, str] = {}
        for field in message.field:
            parsed = self._field(full, message, field, f"{where}.{shown(field.name)}")
            if parsed.number in numbers:
                raise SchemaError(f"{where}: fields {numbers[parsed.number]!r} and {parsed.name!r} share number {parsed.number}")
            numbers[parsed.number] = parsed.name
            if any(start <= parsed.number < end for start, end in reserved_ranges):
                raise SchemaError(f"{where}.{parsed.name}: number {parsed.number} is reserved in the message")
            if parsed.name in reserved_names:
                raise SchemaError(f"{where}.{parsed.name}: the name is reserved in the message")
            fields.append(parsed)
        _check_json_names(message, where)
        return ParsedMessage(full[1:], message.name, tuple(fields), tuple(reserved_ranges), reserved_names)

    def _check_oneofs(self, message: descriptor_pb2.DescriptorProto, where: str) -> None:
        members: dict[int, list[descriptor_pb2.FieldDescriptorProto]] = {}
        for field in message.field:
            if field.HasField("oneof_index"):
                members.setdefault(field.oneof_index, []).append(field)
        for index, decl in enumerate(message.oneof_decl):
            fields = members.pop(index, [])
            if len(fields) != 1 or not fields[0].proto3_optional:
                raise SchemaError(
                    f"{where}: oneof {decl.name!r} is not the one of a proto3 optional field; samples have no oneofs"
                )
            if decl.name != f"_{fields[0].name}":
                raise SchemaError(
                    f"{where}: the oneof of optional field {shown(fields[0].name)} is named {shown(decl.name)}, "
                    f"not '_{shown(fields[0].name)}'"
                )
        if members:
            raise SchemaError(f"{where}: a field refers to a oneof the message does not declare")

    # --- fields -------------------------------------------------------------

    def _field(
        self, scope: str, message: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto, where: str
    ) -> ParsedField:
        name = check_field_name(field.name, where)
        number = check_number(field.number, where)
        self._check_plain(field, where)
        options = self._field_options(field, where)
        ft = self._field_type(scope, message, field, options, where)
        required, default_text, description = _presence(ft, options, where)
        return ParsedField(name, number, ft, required, default_text, description,
                           (field.label, field.type, field.proto3_optional))

    def _check_plain(self, field: descriptor_pb2.FieldDescriptorProto, where: str) -> None:
        if field.label not in (_F.LABEL_OPTIONAL, _F.LABEL_REPEATED):
            raise SchemaError(f"{where}: proto3 fields are singular or repeated, not required")
        if field.type != _F.TYPE_MESSAGE and field.type_name:
            raise SchemaError(f"{where}: a {_type_word(field.type)} field names a type ({field.type_name!r})")
        if field.extendee or field.HasField("default_value"):
            raise SchemaError(f"{where}: extensions and proto2 defaults are not part of a proto3 sample message")
        if field.HasField("json_name") and field.json_name != json_name(field.name):
            raise SchemaError(f"{where}: a json_name other than protobuf's own ({json_name(field.name)!r}) is not supported")
        if field.proto3_optional and (field.label != _F.LABEL_OPTIONAL or not field.HasField("oneof_index")):
            raise SchemaError(f"{where}: a proto3 optional field is singular and has its own oneof")

    def _field_type(
        self,
        scope: str,
        message: descriptor_pb2.DescriptorProto,
        field: descriptor_pb2.FieldDescriptorProto,
        options: Any,
        where: str,
        stack: tuple[str, ...] = (),
    ) -> FieldType:
        nullable_flag = bool(options is not None and options.nullable)
        if field.label == _F.LABEL_REPEATED:
            target = self._target(field, where)
            if target is not None and self.all[target].options.map_entry:
                ft: FieldType = DictOf(self._map_value(scope, field, target, options, where, stack))
            else:
                ft = ListOf(self._element(field, options, where, map_value=False, stack=stack))
            return Optional(ft) if nullable_flag else ft
        if nullable_flag:
            raise SchemaError(f"{where}: 'nullable' marks repeated and map fields; a singular field is proto3 optional")
        ft = self._element(field, options, where, map_value=False, stack=stack)
        return Optional(ft) if field.proto3_optional else ft

    def _target(self, field: descriptor_pb2.FieldDescriptorProto, where: str) -> str | None:
        """The full name of the message a message field refers to, within this file; None for other types."""
        if field.type != _F.TYPE_MESSAGE:
            if field.HasField("type_name") and field.type_name:
                raise SchemaError(f"{where}: a {_type_word(field.type)} field names a type ({field.type_name!r})")
            return None
        name = field.type_name
        if name in (_shim.NDARRAY_TYPE, _shim.VALUE_TYPE):
            needed = _shim.SHIM_FILE if name == _shim.NDARRAY_TYPE else _shim.STRUCT_FILE
            if needed not in self.deps:
                raise SchemaError(f"{where}: the field's type {name[1:]} is in {needed}, which the file does not import")
            return None
        if name not in self.all:
            raise SchemaError(
                f"{where}: the field's type {name!r} is not a message of this file (type names are fully "
                "qualified: '.package.Message')"
            )
        return name

    def _element(
        self,
        field: descriptor_pb2.FieldDescriptorProto,
        options: Any,
        where: str,
        *,
        map_value: bool,
        stack: tuple[str, ...],
    ) -> FieldType:
        """The type of one value of ``field`` (an element of a repeated field)."""
        array = _array_options(options, where)
        if field.type in _SCALARS:
            ft: FieldType = Scalar(_SCALARS[field.type])
        elif field.type != _F.TYPE_MESSAGE:
            raise SchemaError(f"{where}: fields of type {_type_word(field.type)} are not part of a sample message")
        elif field.type_name == _shim.NDARRAY_TYPE:
            self._target(field, where)
            return Array(*array) if array else Array()
        elif field.type_name == _shim.VALUE_TYPE:
            self._target(field, where)
            ft = AnyValue()
        else:
            target = self._target(field, where)
            assert target is not None
            if self.all[target].options.map_entry:
                raise SchemaError(f"{where}: map entry {target[1:]} is used by a field that is not its map")
            if self._is_wrapper(target):
                if field.label != _F.LABEL_REPEATED and not map_value:
                    raise SchemaError(f"{where}: wrapper {target[1:]} holds list elements and map values only")
                ft = self._wrapped(target, stack)
            else:
                ft = MessageRef(target[1:])
        if array:
            raise SchemaError(f"{where}: dtype and shape describe NDArray fields only")
        return ft

    def _map_value(
        self,
        scope: str,
        field: descriptor_pb2.FieldDescriptorProto,
        target: str,
        options: Any,
        where: str,
        stack: tuple[str, ...],
    ) -> FieldType:
        entry = self.all[target]
        expected = f"{scope}.{map_entry_name(field.name)}"
        if target != expected:
            raise SchemaError(f"{where}: a map field's entry is the message {expected[1:]!r}, declared beside it")
        if entry.nested_type or entry.oneof_decl or entry.reserved_range or entry.reserved_name or len(entry.field) != 2:
            raise SchemaError(f"{where}: map entry {entry.name} holds exactly 'key' and 'value'")
        key, value = sorted(entry.field, key=lambda f: f.number)
        for part, name, number in ((key, "key", 1), (value, "value", 2)):
            self._check_plain(part, f"{where}.{name}")
            if part.name != name or part.number != number or part.label != _F.LABEL_OPTIONAL or part.proto3_optional:
                raise SchemaError(f"{where}: map entry {entry.name} holds 'key' = 1 and 'value' = 2, both singular")
            if part.HasField("options"):
                raise SchemaError(f"{where}: the options of a map field go on the field, not on its entry")
        if key.type != _F.TYPE_STRING:
            raise SchemaError(f"{where}: sample maps have string keys, got {_type_word(key.type)}")
        return self._element(value, options, f"{where}{{}}", map_value=True, stack=stack)

    def _wrapped(self, full: str, stack: tuple[str, ...]) -> FieldType:
        """The type a wrapper message holds in its one field 'value'."""
        where = full[1:]
        if full in stack:
            raise SchemaError(f"{where}: the wrapper holds itself")
        if len(stack) >= _MAX_DEPTH:
            raise SchemaError(f"{where}: wrappers are nested more than {_MAX_DEPTH} deep")
        message = self.all[full]
        if len(message.field) != 1 or message.field[0].name != "value" or message.field[0].number != 1:
            raise SchemaError(f"{where}: a wrapper message holds one field, 'value' = 1")
        if message.reserved_range or message.reserved_name:
            raise SchemaError(f"{where}: a wrapper message has no reserved numbers")
        extra = [m.name for m in message.nested_type if not m.options.map_entry]
        if extra:
            raise SchemaError(f"{where}: a wrapper message declares no messages, got {extra}")
        self._check_oneofs(message, where)
        field = message.field[0]
        self._check_plain(field, f"{where}.value")
        options = self._field_options(field, f"{where}.value")
        if options is not None and (options.HasField("default") or options.required or options.description):
            raise SchemaError(f"{where}.value: a wrapper's value has no default, description or 'required'")
        ft = self._field_type(full, message, field, options, f"{where}.value", (*stack, full))
        if not isinstance(ft, (ListOf, DictOf, Optional)):
            raise SchemaError(
                f"{where}: a wrapper holds what protobuf cannot hold directly (a list, a map or a nullable "
                "value), not a plain value"
            )
        return ft

    # --- the runtime --------------------------------------------------------

    def _pool(self) -> Any:
        """The file in a descriptor pool of its own, its message class built: what the runtime refuses is a SchemaError."""
        from google.protobuf import message_factory

        pool = _shim.base_pool()
        try:
            pool.Add(self.f)
            message_factory.GetMessageClass(pool.FindMessageTypeByName(self.message_name))
        except Exception as err:  # noqa: BLE001 - TypeError, KeyError... whatever the runtime raises
            raise SchemaError(f"the protobuf runtime refuses the file descriptor: {err}") from None
        return pool


def _presence(ft: FieldType, options: Any, where: str) -> tuple[bool, str | None, str | None]:
    """(required, default text, description) of a sample field from its type and options."""
    description = None
    if options is not None and options.description:
        description = options.description
        if len(description) > _MAX_DESCRIPTION:
            raise SchemaError(f"{where}: the description is longer than {_MAX_DESCRIPTION} characters")
    nullable = isinstance(ft, Optional)
    if options is not None and options.HasField("default"):
        if options.required:
            raise SchemaError(f"{where}: a field with a default is not required")
        return False, options.default, description
    if options is not None and options.required:
        if not nullable:
            raise SchemaError(f"{where}: 'required' marks nullable fields; the others are required without it")
        return True, None, description
    return (not nullable), None, description


def _array_options(options: Any, where: str) -> tuple[np.dtype | None, tuple[int | None, ...] | None] | None:
    if options is None or (not options.dtype and not options.HasField("shape")):
        return None
    dtype = None
    if options.dtype:
        text = options.dtype
        if len(text) > _MAX_DTYPE:
            raise SchemaError(f"{where}: dtype {text[:_MAX_DTYPE]!r}... is longer than {_MAX_DTYPE} characters")
        try:
            dtype = np.dtype(text)
        except Exception as err:  # noqa: BLE001 - numpy raises TypeError, ValueError, SyntaxError...
            raise SchemaError(f"{where}: unknown dtype {text!r} ({err})") from None
        if dtype.hasobject:
            raise SchemaError(f"{where}: object arrays are not supported (dtype {text!r})")
    shape = None
    if options.HasField("shape"):
        dims = list(options.shape.dims)
        if len(dims) > _MAX_NDIM or any(d < -1 for d in dims):
            raise SchemaError(f"{where}: a shape has at most {_MAX_NDIM} sizes, each >= 0 or -1 for any; got {dims}")
        shape = tuple(None if d == -1 else int(d) for d in dims)
    return dtype, shape


def _check_json_names(message: descriptor_pb2.DescriptorProto, where: str) -> None:
    seen: dict[str, str] = {}
    for field in message.field:
        other = seen.setdefault(json_name(field.name), field.name)
        if other != field.name:
            raise SchemaError(f"{where}: fields {other!r} and {field.name!r} have the same JSON name, which proto3 refuses")


def _check_acyclic(messages: Mapping[str, ParsedMessage], top: str) -> None:
    def refs(ft: FieldType):
        while isinstance(ft, (Optional, ListOf, DictOf)):
            ft = ft.inner if isinstance(ft, Optional) else ft.item if isinstance(ft, ListOf) else ft.value
        if isinstance(ft, MessageRef):
            yield ft.full_name

    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if len(chain) >= _MAX_DEPTH:
            raise SchemaError(f"{name}: sample types are nested more than {_MAX_DEPTH} deep")
        if state.get(name) == 1:
            raise SchemaError(f"recursive messages cannot be sample classes: {' -> '.join((*chain, name))}")
        state[name] = 1
        for field in messages[name].fields:
            for target in refs(field.type):
                visit(target, (*chain, name))
        state[name] = 2

    visit(top, ())


def _type_word(kind: int) -> str:
    try:
        return _F.Type.Name(kind).removeprefix("TYPE_").lower()
    except ValueError:
        return f"type {kind}"
