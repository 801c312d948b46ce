"""Typed samples: ``@packable`` classes and the schema-less :class:`DictSample`.

A sample type is an annotated class turned into a dataclass by :func:`packable`::

    @packable
    class ImageSample:
        image: NDArray[np.uint8]
        label: str
        score: float = 0.0

    blob = ImageSample(image=img, label="cat").to_bytes()
    ImageSample.from_bytes(blob)

Field types: ``str``, ``int``, ``float``, ``bool``, ``bytes``, ``list[T]``,
``dict[str, T]``, ``Optional[T]``, nested packable classes, and arrays annotated
``NDArray``, ``NDArray[np.float32]`` or ``np.ndarray``. :func:`sample_fields`
exposes the parsed field types; the schema layer reads them.
"""

from __future__ import annotations

import copyreg
import dataclasses
import sys
import types
import typing
from typing import Any, Callable, ClassVar, Iterator

import numpy as np

from .codec import decode_ndarray, encode_ndarray, looks_like_ndarray, pack_map, unpack_map
from .errors import SampleDecodeError, SampleTypeError

__all__ = [
    "packable",
    "is_packable",
    "sample_fields",
    "make_sample_type",
    "Field",
    "FieldType",
    "Scalar",
    "Array",
    "ListOf",
    "DictOf",
    "Optional",
    "Nested",
    "AnyValue",
    "DictSample",
]

_FIELDS_ATTR = "__atdata_fields__"
_CODEC_ATTR = "__atdata_codec__"


# --------------------------------------------------------------------------- field types


class FieldType:
    """A parsed field annotation. Subclasses are frozen dataclasses."""


@dataclasses.dataclass(frozen=True)
class Scalar(FieldType):
    """``str``, ``int``, ``float``, ``bool`` or ``bytes``."""

    type: type


@dataclasses.dataclass(frozen=True)
class Array(FieldType):
    """A dense NDArray; ``dtype`` and ``shape`` when the annotation gives them."""

    dtype: np.dtype | None = None
    shape: tuple[int | None, ...] | None = None


@dataclasses.dataclass(frozen=True)
class ListOf(FieldType):
    item: FieldType


@dataclasses.dataclass(frozen=True)
class DictOf(FieldType):
    """``dict[str, T]``."""

    value: FieldType


@dataclasses.dataclass(frozen=True)
class Optional(FieldType):
    inner: FieldType


@dataclasses.dataclass(frozen=True)
class Nested(FieldType):
    """A nested packable class, encoded as a nested map."""

    cls: type


@dataclasses.dataclass(frozen=True)
class AnyValue(FieldType):
    """``typing.Any``: passed through as msgpack decodes it."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a sample type."""

    name: str
    type: FieldType
    required: bool
    default: Any = None  # used only when not required
    description: str | None = None


_SCALARS = (str, int, float, bool, bytes)


def parse_annotation(annotation: Any, *, owner: str = "?", field: str = "?") -> FieldType:
    """Turn a type annotation into a :class:`FieldType`, or raise :class:`SampleTypeError`."""
    if annotation in _SCALARS:
        return Scalar(annotation)
    if annotation is np.ndarray:
        return Array()
    if annotation is Any:
        return AnyValue()
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = parse_annotation(args[0], owner=owner, field=field)
        for extra in args[1:]:
            if isinstance(inner, Array) and isinstance(extra, dict) and ("shape" in extra or "dtype" in extra):
                shape = extra.get("shape", inner.shape)
                dtype = np.dtype(extra["dtype"]) if extra.get("dtype") is not None else inner.dtype
                inner = Array(dtype, tuple(shape) if shape is not None else None)
        return inner
    if origin is np.ndarray:
        dtype = None
        if len(args) == 2:
            dtype_arg = typing.get_args(args[1])
            if dtype_arg and isinstance(dtype_arg[0], type) and issubclass(dtype_arg[0], np.generic):
                dtype = np.dtype(dtype_arg[0])
        return Array(dtype)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1 and len(args) == 2:
            return Optional(parse_annotation(non_none[0], owner=owner, field=field))
        raise SampleTypeError(
            f"{owner}.{field}: unions other than Optional[T] are not supported ({annotation!r}); "
            "use one type per field"
        )
    if origin in (list, typing.List, tuple) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise SampleTypeError(f"{owner}.{field}: only tuple[T, ...] is supported, got {annotation!r}")
        return ListOf(parse_annotation(args[0], owner=owner, field=field))
    if origin in (dict, typing.Dict) and args:
        if args[0] is not str:
            raise SampleTypeError(f"{owner}.{field}: dict keys must be str, got {annotation!r}")
        return DictOf(parse_annotation(args[1], owner=owner, field=field))
    if annotation in (list, dict):
        return ListOf(AnyValue()) if annotation is list else DictOf(AnyValue())
    if isinstance(annotation, type) and is_packable(annotation):
        return Nested(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        raise SampleTypeError(
            f"{owner}.{field}: nested class {annotation.__name__} must itself be decorated with @packable"
        )
    raise SampleTypeError(
        f"{owner}.{field}: unsupported annotation {annotation!r}. Use str, int, float, bool, bytes, "
        "list[T], dict[str, T], Optional[T], a @packable class or NDArray"
    )


# --------------------------------------------------------------------------- encoders / decoders


def _array_encoder(ft: Array, where: str) -> Callable[[Any], bytes]:
    want = ft.dtype

    def encode(value: Any) -> bytes:
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if want is not None and value.dtype != want:
            raise SampleTypeError(
                f"{where}: declared dtype {want} but got an array of dtype {value.dtype}; "
                f"convert it explicitly, e.g. arr.astype(np.{want.name})"
            )
        return encode_ndarray(value)

    return encode


def _encoder(ft: FieldType, where: str) -> Callable[[Any], Any] | None:
    """A function that turns a field value into msgpack-native data (None: as is)."""
    if isinstance(ft, Array):
        return _array_encoder(ft, where)
    if isinstance(ft, Scalar):
        # numpy scalars become native numbers in pack_map; ints in float fields are sent as floats
        return _to_float if ft.type is float else None
    if isinstance(ft, Nested):
        return lambda value: _codec(ft.cls).to_map(value)
    if isinstance(ft, Optional):
        inner = _encoder(ft.inner, where)
        if inner is None:
            return None
        return lambda value: None if value is None else inner(value)
    if isinstance(ft, ListOf):
        inner = _encoder(ft.item, where)
        if inner is None:
            return list
        return lambda value: [inner(v) for v in value]
    if isinstance(ft, DictOf):
        inner = _encoder(ft.value, where)
        if inner is None:
            return None
        return lambda value: {k: inner(v) for k, v in value.items()}
    return None


def _decoder(ft: FieldType, where: str) -> Callable[[Any], Any] | None:
    """A function that turns msgpack-decoded data into the field's value (None: as is)."""
    if isinstance(ft, Array):
        return _decode_array_value
    if isinstance(ft, Scalar):
        if ft.type is float:
            return _to_float
        if ft.type is bytes:
            return _to_bytes
        return None
    if isinstance(ft, Nested):
        return lambda value: _codec(ft.cls).from_map(value)
    if isinstance(ft, Optional):
        inner = _decoder(ft.inner, where)
        if inner is None:
            return None
        return lambda value: None if value is None else inner(value)
    if isinstance(ft, ListOf):
        inner = _decoder(ft.item, where)
        if inner is None:
            return None
        return lambda value: [inner(v) for v in value]
    if isinstance(ft, DictOf):
        inner = _decoder(ft.value, where)
        if inner is None:
            return None
        return lambda value: {k: inner(v) for k, v in value.items()}
    return None


def _decode_array_value(value: Any) -> np.ndarray:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return decode_ndarray(value)
    if isinstance(value, np.ndarray):
        return value
    raise SampleDecodeError(f"expected NDArray bytes, found {type(value).__name__}")


def _to_float(value: Any) -> Any:
    return float(value) if type(value) is int else value


def _to_bytes(value: Any) -> Any:
    return bytes(value) if isinstance(value, (bytearray, memoryview)) else value


class _Codec:
    """Per-class compiled encoder/decoder (built once, on first use)."""

    __slots__ = ("cls", "fields", "_enc", "_dec", "_required", "_defaults", "_slots")

    def __init__(self, cls: type, fields: tuple[Field, ...]):
        self.cls = cls
        self.fields = fields
        owner = cls.__name__
        self._enc = [(f.name, _encoder(f.type, f"{owner}.{f.name}")) for f in fields]
        self._dec = [(f.name, _decoder(f.type, f"{owner}.{f.name}")) for f in fields]
        self._required = [f.name for f in fields if f.required]
        self._defaults = {}
        for f in fields:
            if not f.required:
                self._defaults[f.name] = f.default
        self._slots = not hasattr(cls, "__dict__") or "__slots__" in cls.__dict__

    def to_map(self, obj: Any) -> dict[str, Any]:
        out = {}
        for name, enc in self._enc:
            value = getattr(obj, name)
            out[name] = value if enc is None else enc(value)
        return out

    def to_bytes(self, obj: Any) -> bytes:
        return pack_map(self.to_map(obj))

    def from_map(self, data: dict[str, Any]) -> Any:
        if not isinstance(data, dict):
            raise SampleDecodeError(f"{self.cls.__name__}: expected a map, found {type(data).__name__}")
        values = {}
        name = ""
        try:
            for name, dec in self._dec:
                if name in data:
                    value = data[name]
                    values[name] = value if dec is None else dec(value)
                elif name in self._defaults:
                    values[name] = _fresh(self._defaults[name])
                else:
                    raise SampleDecodeError(
                        f"{self.cls.__name__}: missing required field {name!r} "
                        f"(sample has {sorted(data)})"
                    )
        except SampleDecodeError as exc:
            if name and "field" not in exc.reason:
                raise SampleDecodeError(f"{self.cls.__name__}.{name}: {exc.reason}") from exc
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise SampleDecodeError(f"{self.cls.__name__}.{name}: cannot decode value: {exc}") from exc
        obj = self.cls.__new__(self.cls)
        if self._slots:
            for key, value in values.items():
                object.__setattr__(obj, key, value)
        else:
            obj.__dict__.update(values)
        post = getattr(obj, "__post_init__", None)
        if post is not None:
            post()
        return obj

    def from_bytes(self, data: bytes) -> Any:
        return self.from_map(unpack_map(data))


def _fresh(default: Any) -> Any:
    # dataclass default_factory values are stored as _Factory wrappers
    return default.factory() if isinstance(default, _Factory) else default


@dataclasses.dataclass(frozen=True)
class _Factory:
    factory: Callable[[], Any]


def _codec(cls: type) -> _Codec:
    codec = cls.__dict__.get(_CODEC_ATTR)
    if codec is None:
        codec = _Codec(cls, sample_fields(cls))
        setattr(cls, _CODEC_ATTR, codec)
    return codec


# --------------------------------------------------------------------------- the decorator


def packable(cls: type | None = None, /, **dataclass_kwargs: Any) -> Any:
    """Make an annotated class a sample type (a dataclass with a wire codec).

    Adds ``obj.to_bytes()``, ``cls.from_bytes(data)``, ``obj.to_map()`` and
    ``cls.from_map(mapping)``. Annotations are resolved on first use, so
    ``from __future__ import annotations`` and forward references work.
    """

    def wrap(klass: type) -> type:
        if not dataclasses.is_dataclass(klass):
            klass = dataclasses.dataclass(klass, **dataclass_kwargs)
        klass.__atdata_packable__ = True
        if klass.__dict__.get("__eq__") is not None and getattr(klass, "__dataclass_params__").eq:
            # the generated __eq__ compares field tuples, which fails on arrays
            klass.__eq__ = _sample_eq
        klass.to_bytes = _to_bytes_method
        klass.to_map = _to_map_method
        klass.from_bytes = classmethod(_from_bytes_method)
        klass.from_map = classmethod(_from_map_method)
        return klass

    return wrap if cls is None else wrap(cls)


def _sample_eq(self: Any, other: Any) -> bool:
    if type(other) is not type(self):
        return NotImplemented
    return all(
        _values_equal(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
    )


def _to_bytes_method(self: Any) -> bytes:
    """Encode this sample as one msgpack member."""
    return _codec(type(self)).to_bytes(self)


def _to_map_method(self: Any) -> dict[str, Any]:
    """This sample as a msgpack-ready map (arrays as NDArray bytes)."""
    return _codec(type(self)).to_map(self)


def _from_bytes_method(cls: type, data: bytes) -> Any:
    """Decode a sample of this type from one msgpack member."""
    return _codec(cls).from_bytes(data)


def _from_map_method(cls: type, data: dict[str, Any]) -> Any:
    """Build a sample of this type from a decoded msgpack map."""
    return _codec(cls).from_map(data)


def is_packable(cls: Any) -> bool:
    """True for classes made with :func:`packable` (or :func:`make_sample_type`)."""
    return isinstance(cls, type) and bool(getattr(cls, "__atdata_packable__", False))


def sample_fields(cls: type) -> tuple[Field, ...]:
    """The parsed fields of a sample type, in declaration order."""
    cached = cls.__dict__.get(_FIELDS_ATTR)
    if cached is not None:
        return cached
    if not is_packable(cls):
        raise SampleTypeError(f"{cls!r} is not a sample type; decorate it with @atdata_core.packable")
    module = sys.modules.get(cls.__module__)
    try:
        hints = typing.get_type_hints(cls, globalns=vars(module) if module else None, include_extras=True)
    except NameError as exc:
        raise SampleTypeError(f"{cls.__name__}: cannot resolve an annotation ({exc})") from exc
    out = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or typing.get_origin(hints.get(f.name)) is ClassVar:
            continue
        ft = parse_annotation(hints[f.name], owner=cls.__name__, field=f.name)
        if f.default is not dataclasses.MISSING:
            default, required = f.default, False
        elif f.default_factory is not dataclasses.MISSING:
            default, required = _Factory(f.default_factory), False
        elif isinstance(ft, Optional):
            default, required = None, False
        else:
            default, required = None, True
        out.append(Field(f.name, ft, required, default, f.metadata.get("description")))
    result = tuple(out)
    setattr(cls, _FIELDS_ATTR, result)
    return result


def annotation_of(ft: FieldType) -> Any:
    """A Python annotation equivalent to ``ft`` (for classes built at run time)."""
    if isinstance(ft, Scalar):
        return ft.type
    if isinstance(ft, Array):
        return np.ndarray
    if isinstance(ft, ListOf):
        return list[annotation_of(ft.item)]
    if isinstance(ft, DictOf):
        return dict[str, annotation_of(ft.value)]
    if isinstance(ft, Optional):
        return typing.Optional[annotation_of(ft.inner)]
    if isinstance(ft, Nested):
        return ft.cls
    return Any


class _BuiltAtRunTime(type):
    """Metaclass of sample classes built at run time.

    Such a class lives in no importable module, so pickle (a spawned DataLoader
    worker, say) cannot find it by name. When the code that built it leaves a
    recipe with :func:`set_rebuild_recipe`, the class pickles as that recipe
    and is rebuilt on the other side.
    """


def _reduce_built_class(cls: type) -> Any:
    recipe = cls.__dict__.get("__atdata_rebuild__")
    if recipe is None:
        return cls.__qualname__  # plain lookup by name; fails clearly if absent
    return recipe


copyreg.pickle(_BuiltAtRunTime, _reduce_built_class)


class _RunTimeBase(metaclass=_BuiltAtRunTime):
    __slots__ = ()


def set_rebuild_recipe(cls: type, rebuild: Callable[..., type], *args: Any) -> None:
    """Make a class from :func:`make_sample_type` picklable as ``rebuild(*args)``.

    Other classes are left alone: they live in a module and pickle by name.
    """
    if not isinstance(cls, _BuiltAtRunTime):
        return
    type.__setattr__(cls, "__atdata_rebuild__", (rebuild, args))


def make_sample_type(
    name: str, fields: list[Field] | tuple[Field, ...], *, module: str = "atdata_core.generated", doc: str | None = None
) -> type:
    """Build a sample class at run time from parsed fields (used by schema formats).

    Required fields come first in the generated ``__init__``; the parsed types
    (including array dtypes and shapes) are kept exactly. See
    :func:`set_rebuild_recipe` to make the class picklable.
    """
    ordered = [f for f in fields if f.required] + [f for f in fields if not f.required]
    spec = []
    for f in ordered:
        if f.required:
            spec.append((f.name, annotation_of(f.type)))
        elif isinstance(f.default, _Factory):
            spec.append((f.name, annotation_of(f.type), dataclasses.field(default_factory=f.default.factory)))
        elif isinstance(f.default, (list, dict, set)):
            value = f.default
            spec.append((f.name, annotation_of(f.type), dataclasses.field(default_factory=lambda v=value: type(v)(v))))
        else:
            default = f.default
            spec.append((f.name, annotation_of(f.type), dataclasses.field(default=default)))
    cls = dataclasses.make_dataclass(
        name, spec, bases=(_RunTimeBase,), namespace={"__module__": module, "__doc__": doc or f"{name} sample"}
    )
    cls = packable(cls)
    setattr(cls, _FIELDS_ATTR, tuple(
        Field(f.name, f.type, f.required, _Factory(f.default.factory) if isinstance(f.default, _Factory) else f.default, f.description)
        for f in ordered
    ))
    return cls


# --------------------------------------------------------------------------- DictSample


class DictSample:
    """A sample read without a class: attribute and item access over the decoded map.

    Byte values that parse as NDArrays are decoded to arrays; everything else is
    as msgpack decoded it.

    >>> s = DictSample({"label": "cat"})
    >>> s.label, s["label"]
    ('cat', 'cat')
    """

    __slots__ = ("_data",)
    __atdata_packable__ = False

    def __init__(self, data: dict[str, Any] | None = None, **fields: Any):
        merged = dict(data or {})
        merged.update(fields)
        object.__setattr__(self, "_data", merged)

    @classmethod
    def from_map(cls, data: dict[str, Any]) -> "DictSample":
        decoded = {}
        for key, value in data.items():
            decoded[key] = _decode_untyped(value)
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_data", decoded)
        return obj

    @classmethod
    def from_bytes(cls, data: bytes) -> "DictSample":
        return cls.from_map(unpack_map(data))

    def to_map(self) -> dict[str, Any]:
        return {k: _encode_untyped(v) for k, v in self._data.items()}

    def to_bytes(self) -> bytes:
        return pack_map(self.to_map())

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def keys(self) -> Any:
        return self._data.keys()

    def items(self) -> Any:
        return self._data.items()

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"sample has no field {name!r}; fields are {sorted(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DictSample):
            return NotImplemented
        if self._data.keys() != other._data.keys():
            return False
        return all(_values_equal(self._data[k], other._data[k]) for k in self._data)

    def __repr__(self) -> str:
        parts = []
        for key, value in self._data.items():
            if isinstance(value, np.ndarray):
                parts.append(f"{key}=ndarray({value.dtype}, shape={value.shape})")
            else:
                parts.append(f"{key}={value!r:.60}")
        return f"DictSample({', '.join(parts)})"


def _decode_untyped(value: Any) -> Any:
    if isinstance(value, bytes) and looks_like_ndarray(value):
        return decode_ndarray(value)
    if isinstance(value, dict):
        return {k: _decode_untyped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_untyped(v) for v in value]
    return value


def _encode_untyped(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_ndarray(value)
    if isinstance(value, DictSample):
        return value.to_map()
    if isinstance(value, dict):
        return {k: _encode_untyped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_untyped(v) for v in value]
    if is_packable(type(value)):
        return value.to_map()
    return value


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def sample_codec(cls: type) -> _Codec | None:
    """The compiled codec of a sample type (None for DictSample)."""
    if cls is DictSample:
        return None
    return _codec(cls)


def decoder_for(cls: type | None) -> Callable[[dict[str, Any]], Any]:
    """A function from a decoded msgpack map to a sample of ``cls`` (DictSample if None)."""
    if cls is None or cls is DictSample:
        return DictSample.from_map
    if not is_packable(cls):
        raise SampleTypeError(f"{cls!r} is not a sample type; decorate it with @atdata_core.packable")
    return _codec(cls).from_map
