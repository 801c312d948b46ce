"""A packable class as a proto3 file: one top-level message, every other type nested inside it.

Field numbers follow the class's fields (1, 2, 3...), except where the class
says otherwise: a field's ``protobuf_number`` metadata
(``dataclasses.field(metadata={"protobuf_number": 7})``), or the numbers a
class built from a protobuf schema remembers (so it writes its schema back
unchanged). Fields appear in the file in number order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import attrs
from google.protobuf import descriptor_pb2

from atdata_core.errors import SchemaError
from atdata_core.plugins import (
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

from atdata_schema_protobuf import _shim
from atdata_schema_protobuf._defaults import default_to_text
from atdata_schema_protobuf._names import (
    DEFAULT_PACKAGE,
    RESERVED_NUMBERS,
    check_field_name,
    check_message_name,
    check_number,
    json_name,
    map_entry_name,
)

__all__ = ["ORIGIN_ATTRIBUTE", "Origin", "dtype_text", "file_from_type", "origin_of"]

_F = descriptor_pb2.FieldDescriptorProto
#: Where a class built from a protobuf schema keeps what its schema said beyond its fields.
ORIGIN_ATTRIBUTE = "__atdata_protobuf__"
#: The dataclass field metadata key that fixes a field's number.
NUMBER_METADATA = "protobuf_number"

_SCALAR_TYPES = {
    str: _F.TYPE_STRING,
    int: _F.TYPE_INT64,
    float: _F.TYPE_DOUBLE,
    bool: _F.TYPE_BOOL,
    bytes: _F.TYPE_BYTES,
}
_SCALAR_PARTS = {str: "String", int: "Int64", float: "Double", bool: "Bool", bytes: "Bytes"}


@attrs.frozen
class Origin:
    """What a protobuf schema said about a message beyond its fields: numbers, reserved ones, and
    for the top-level message its file name, package and message name."""

    numbers: tuple[tuple[str, int], ...] = ()
    reserved_ranges: tuple[tuple[int, int], ...] = ()  # [start, end) as descriptors hold them
    reserved_names: tuple[str, ...] = ()
    file_name: str | None = None
    package: str | None = None
    message: str | None = None


def origin_of(cls: type) -> Origin | None:
    """The :class:`Origin` a class built by this format carries (never one inherited from a base)."""
    found = cls.__dict__.get(ORIGIN_ATTRIBUTE)
    return found if isinstance(found, Origin) else None


def dtype_text(dtype: Any) -> str:
    """How a schema names a dtype: numpy's name when it says it all (``float32``), else ``dtype.str``."""
    import numpy as np

    try:
        if np.dtype(dtype.name) == dtype:
            return str(dtype.name)
    except TypeError:
        pass
    return str(dtype.str)


def file_from_type(cls: type) -> tuple[descriptor_pb2.FileDescriptorProto, str]:
    """The proto3 file describing ``cls``, and the full name of its sample message."""
    return _Writer(cls).build()


class _Writer:
    def __init__(self, cls: type):
        origin = origin_of(cls)
        self.cls = cls
        self.package = (origin and origin.package) or DEFAULT_PACKAGE
        where = cls.__name__
        self.message = check_message_name((origin and origin.message) or cls.__name__, where)
        self.file_name = (origin and origin.file_name) or f"{self.package.replace('.', '/')}/{self.message}.proto"
        self.scope = f".{self.package}.{self.message}"
        self.nested: list[descriptor_pb2.DescriptorProto] = []
        self.taken: set[str] = set()
        self.by_class: dict[type, str] = {}
        self.wrappers: dict[FieldType, str] = {}
        self.building: list[type] = []
        self.imports: set[str] = set()

    def build(self) -> tuple[descriptor_pb2.FileDescriptorProto, str]:
        top = descriptor_pb2.DescriptorProto(name=self.message)
        fields = _numbered(self.cls)
        # Names in the top message's scope: its fields and map entries come first; nested
        # messages (classes and wrappers) take what is left.
        for field, _ in fields:
            self.taken.add(field.name)
            if isinstance(_strip_optional(field.type), DictOf):
                self.taken.add(map_entry_name(field.name))
        self.taken.add(self.message)
        self.building.append(self.cls)
        self._fill(top, self.scope, self.cls, fields)
        top.nested_type.extend(self.nested)
        f = descriptor_pb2.FileDescriptorProto(name=self.file_name, package=self.package, syntax="proto3")
        for dependency in (_shim.SHIM_FILE, _shim.STRUCT_FILE):
            if dependency in self.imports:
                f.dependency.append(dependency)
        f.message_type.append(top)
        return f, f"{self.package}.{self.message}"

    # --- messages -----------------------------------------------------------

    def _fill(self, msg: descriptor_pb2.DescriptorProto, full_name: str, cls: type, fields: list) -> None:
        origin = origin_of(cls)
        if origin is not None:
            for start, end in origin.reserved_ranges:
                msg.reserved_range.add(start=start, end=end)
            msg.reserved_name.extend(origin.reserved_names)
        own: set[str] = set()
        for field, number in fields:
            where = f"{cls.__name__}.{field.name}"
            check_field_name(field.name, where)
            for name in (field.name, *((map_entry_name(field.name),) if isinstance(_strip_optional(field.type), DictOf) else ())):
                if name in own:
                    raise SchemaError(
                        f"{where}: protobuf derives the name {name!r} twice in message {msg.name} (a map field "
                        "'x' declares a message 'XEntry'); rename one field"
                    )
                own.add(name)
            self._field(msg, full_name, field.name, number, field.type, _field_options(field, where), where)
        _check_json_names([f.name for f, _ in fields], cls.__name__)

    def _class_message(self, cls: type, where: str) -> str:
        """The full name of the nested message for a nested sample class, declared on first use."""
        if cls in self.building:
            chain = " -> ".join(c.__name__ for c in (*self.building, cls))
            raise SchemaError(f"{where}: recursive sample types cannot be written as protobuf messages: {chain}")
        name = self.by_class.get(cls)
        if name is None:
            name = self._allocate(check_message_name(cls.__name__, where))
            self.by_class[cls] = name
            msg = descriptor_pb2.DescriptorProto(name=name)
            self.nested.append(msg)
            self.building.append(cls)
            try:
                self._fill(msg, f"{self.scope}.{name}", cls, _numbered(cls))
            finally:
                self.building.pop()
        return f"{self.scope}.{name}"

    def _wrapper(self, ft: FieldType, where: str) -> str:
        """The full name of the message that holds one ``ft`` where protobuf cannot (a list element, a map value)."""
        name = self.wrappers.get(ft)
        if name is None:
            part = self._part(ft, where)
            name = self._allocate(part)
            self.wrappers[ft] = name
            msg = descriptor_pb2.DescriptorProto(name=name)
            _shim.with_message_options(msg, wrapper=True)
            self.imports.add(_shim.SHIM_FILE)
            self.nested.append(msg)
            self._field(msg, f"{self.scope}.{name}", "value", 1, ft, {}, f"{where}[wrapper]")
        return f"{self.scope}.{name}"

    def _part(self, ft: FieldType, where: str) -> str:
        if isinstance(ft, Scalar):
            return _SCALAR_PARTS[ft.type]
        if isinstance(ft, Array):
            return "NDArray"
        if isinstance(ft, AnyValue):
            return "Value"
        if isinstance(ft, Nested):
            return self._class_message(ft.cls, where).rsplit(".", 1)[1]
        if isinstance(ft, ListOf):
            return "ListOf" + self._part(ft.item, where)
        if isinstance(ft, DictOf):
            return "MapOf" + self._part(ft.value, where)
        if isinstance(ft, Optional):
            return "Optional" + self._part(ft.inner, where)
        raise SchemaError(f"{where}: the protobuf format cannot express {ft!r}")

    def _allocate(self, base: str) -> str:
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}{n}"
        self.taken.add(name)
        return name

    # --- fields -------------------------------------------------------------

    def _field(
        self,
        msg: descriptor_pb2.DescriptorProto,
        msg_name: str,
        name: str,
        number: int,
        ft: FieldType,
        options: dict[str, Any],
        where: str,
    ) -> None:
        field = msg.field.add(name=name, number=number, json_name=json_name(name))
        nullable = isinstance(ft, Optional)
        inner = ft.inner if nullable else ft
        if isinstance(inner, Optional):
            raise SchemaError(f"{where}: Optional[Optional[...]] has no protobuf form; use Optional once")
        if isinstance(inner, ListOf):
            field.label = _F.LABEL_REPEATED
            self._element(field, inner.item, options, where)
            if nullable:
                options["nullable"] = True
        elif isinstance(inner, DictOf):
            field.label = _F.LABEL_REPEATED
            field.type = _F.TYPE_MESSAGE
            entry = descriptor_pb2.DescriptorProto(name=map_entry_name(name))
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=_F.LABEL_OPTIONAL, type=_F.TYPE_STRING, json_name="key")
            value = entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL, json_name="value")
            self._element(value, inner.value, options, where)
            # protoc declares map entries where the map field is: before the messages declared after the fields.
            msg.nested_type.append(entry)
            field.type_name = f"{msg_name}.{entry.name}"
            if nullable:
                options["nullable"] = True
        else:
            field.label = _F.LABEL_OPTIONAL
            self._element(field, inner, options, where)
            if nullable:
                field.proto3_optional = True
                field.oneof_index = len(msg.oneof_decl)
                msg.oneof_decl.add(name=f"_{name}")
        if options:
            self.imports.add(_shim.SHIM_FILE)  # the options are declared there
        _shim.with_field_options(field, options)

    def _element(self, field: Any, ft: FieldType, options: dict[str, Any], where: str) -> None:
        """Give ``field`` the type of one ``ft`` value (a wrapper message where protobuf has no direct form)."""
        if isinstance(ft, Scalar):
            field.type = _SCALAR_TYPES[ft.type]
            return
        field.type = _F.TYPE_MESSAGE
        if isinstance(ft, Array):
            self.imports.add(_shim.SHIM_FILE)
            field.type_name = _shim.NDARRAY_TYPE
            if ft.dtype is not None:
                options["dtype"] = dtype_text(ft.dtype)
            if ft.shape is not None:
                options["shape"] = [-1 if d is None else int(d) for d in ft.shape]
        elif isinstance(ft, AnyValue):
            self.imports.add(_shim.STRUCT_FILE)
            field.type_name = _shim.VALUE_TYPE
        elif isinstance(ft, Nested):
            field.type_name = self._class_message(ft.cls, where)
        elif isinstance(ft, (ListOf, DictOf, Optional)):
            field.type_name = self._wrapper(ft, where)
        else:
            raise SchemaError(f"{where}: the protobuf format cannot express {ft!r}")


def _strip_optional(ft: FieldType) -> FieldType:
    return ft.inner if isinstance(ft, Optional) else ft


def _field_options(field: Field, where: str) -> dict[str, Any]:
    """The (atdata.v1.field) values a field needs beyond its type: description, default, required."""
    options: dict[str, Any] = {}
    if field.description:
        options["description"] = field.description
    nullable = isinstance(field.type, Optional)
    if field.required:
        if nullable:
            options["required"] = True
    else:
        default = field.default.factory() if isinstance(field.default, DefaultFactory) else field.default
        if not (nullable and default is None):
            options["default"] = default_to_text(default, field.type, where)
    return options


def _numbered(cls: type) -> list[tuple[Field, int]]:
    """The fields of ``cls`` with their numbers, in number order."""
    fields = list(sample_fields(cls))
    origin = origin_of(cls)
    explicit: dict[str, int] = dict(origin.numbers) if origin else {}
    if dataclasses.is_dataclass(cls):
        for item in dataclasses.fields(cls):
            number = item.metadata.get(NUMBER_METADATA) if item.metadata else None
            if number is not None:
                explicit[item.name] = check_number(number, f"{cls.__name__}.{item.name}")
    reserved = [range(start, end) for start, end in (origin.reserved_ranges if origin else ())]
    used: dict[int, str] = {}
    for field in fields:
        number = explicit.get(field.name)
        if number is None:
            continue
        if number in used:
            raise SchemaError(f"{cls.__name__}: fields {used[number]!r} and {field.name!r} both have number {number}")
        if any(number in r for r in reserved):
            raise SchemaError(f"{cls.__name__}.{field.name}: field number {number} is reserved")
        used[number] = field.name
    numbered = []
    following = 1
    for field in fields:
        number = explicit.get(field.name)
        if number is None:
            while following in used or following in RESERVED_NUMBERS or any(following in r for r in reserved):
                following += 1
            number = check_number(following, f"{cls.__name__}.{field.name}")
            used[number] = field.name
        numbered.append((field, number))
    return sorted(numbered, key=lambda pair: pair[1])


def _check_json_names(names: list[str], owner: str) -> None:
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(json_name(name), name)
        if other != name:
            raise SchemaError(
                f"{owner}: fields {other!r} and {name!r} have the same JSON name {json_name(name)!r}, which proto3 "
                "refuses; rename one"
            )
