"""The codec compiler: per-class encoders and decoders built from a sample type's fields.

A sample class's fields are turned, once, into a list of small functions that
convert each value to msgpack-native data and back (``None`` where a value
passes as it is), so encoding a sample is one loop with no type dispatch.

Decoding checks every value against its field, because the bytes come from
strangers. A field compiles to the exact type its values usually have (one
``type(value) is kind`` test) and a function for everything else, which
converts what the wire format allows and raises
:class:`~atdata_core.errors.SampleDecodeError` naming the field for the rest:

- ``str`` takes msgpack strings only, ``bytes`` msgpack binary only;
- ``int`` takes integers, not booleans (msgpack has a boolean type, and
  ``True`` in an int field is a writer's mistake) and not floats;
- ``bool`` takes booleans only, not 0 or 1;
- ``float`` takes floats and integers, which become floats: the wire
  format's one coercion, since writers send ``1`` for ``1.0``;
- lists, maps and nested samples are checked item by item.

Maps built in Python (``Sample.from_map(...)``) may also hold numpy scalars,
which convert to the field's type by the same rules.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._dict_sample import DictSample
from ._fields import (
    Array,
    DefaultFactory,
    DictOf,
    Field,
    FieldType,
    ListOf,
    Nested,
    Optional,
    Scalar,
    is_packable,
    sample_fields,
)
from .codec import decode_ndarray, encode_ndarray, pack_map, unpack_map
from .errors import SampleDecodeError, SampleTypeError

__all__ = ["SampleCodec", "codec_of", "sample_codec", "decoder_for"]

_CODEC_ATTR = "__atdata_codec__"


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
        return lambda value: codec_of(ft.cls).to_map(value)
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


def _decoder(ft: FieldType) -> tuple[type | None, Callable[[Any], Any] | None]:
    """``(kind, convert)`` for a field: a value of exactly type ``kind`` is kept as it is; any
    other goes through ``convert``, which returns the field's value or raises
    :class:`SampleDecodeError`. ``convert`` is None when every value is kept (``Any``)."""
    if isinstance(ft, Array):
        return None, _decode_array_value
    if isinstance(ft, Scalar):
        return ft.type, _SCALAR_CONVERTERS[ft.type]
    if isinstance(ft, Nested):
        return None, lambda value: codec_of(ft.cls).from_map(value)
    if isinstance(ft, Optional):
        kind, inner = _decoder(ft.inner)
        if inner is None:
            return None, None
        return kind, lambda value: None if value is None else inner(value)
    if isinstance(ft, ListOf):
        return None, _list_decoder(*_decoder(ft.item))
    if isinstance(ft, DictOf):
        return None, _dict_decoder(*_decoder(ft.value))
    return None, None


def _list_decoder(kind: type | None, inner: Callable[[Any], Any] | None) -> Callable[[Any], list[Any]]:
    def decode(value: Any) -> list[Any]:
        if type(value) is not list:
            if not isinstance(value, (list, tuple)):
                raise SampleDecodeError(f"expected a list, found {_describe(value)}")
            value = list(value)
        if inner is None:
            return value
        out = []
        for i, item in enumerate(value):
            if type(item) is kind:
                out.append(item)
                continue
            try:
                out.append(inner(item))
            except SampleDecodeError as exc:
                raise SampleDecodeError(f"item {i}: {exc.reason}") from exc
        return out

    return decode


def _dict_decoder(kind: type | None, inner: Callable[[Any], Any] | None) -> Callable[[Any], dict[str, Any]]:
    def decode(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise SampleDecodeError(f"expected a map, found {_describe(value)}")
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise SampleDecodeError(f"map keys must be strings, found {_describe(key)}")
            if inner is not None and type(item) is not kind:
                try:
                    item = inner(item)
                except SampleDecodeError as exc:
                    raise SampleDecodeError(f"key {key[:80]!r}: {exc.reason}") from exc
            out[key] = item
        return out

    return decode


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _decode_array_value(value: Any) -> np.ndarray:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return decode_ndarray(value)
    if isinstance(value, np.ndarray):
        return value
    raise SampleDecodeError(f"expected NDArray bytes, found {_describe(value)}")


def _to_float(value: Any) -> Any:
    # encoding: ints in float fields are sent as floats
    return float(value) if type(value) is int else value


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (maps built in Python may carry them)."""
    return value.item() if isinstance(value, np.generic) else value


def _decode_str(value: Any) -> str:
    value = _scalar(value)
    if isinstance(value, str):
        return str(value)
    raise SampleDecodeError(f"expected str, found {_describe(value)}")


def _decode_int(value: Any) -> int:
    value = _scalar(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise SampleDecodeError(f"expected int, found {_describe(value)}")


def _decode_float(value: Any) -> float:
    value = _scalar(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise SampleDecodeError(f"expected float (or int), found {_describe(value)}")


def _decode_bool(value: Any) -> bool:
    value = _scalar(value)
    if isinstance(value, bool):
        return value
    raise SampleDecodeError(f"expected bool, found {_describe(value)}")


def _decode_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise SampleDecodeError(f"expected bytes, found {_describe(value)}")


_SCALAR_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    str: _decode_str,
    int: _decode_int,
    float: _decode_float,
    bool: _decode_bool,
    bytes: _decode_bytes,
}


class SampleCodec:
    """The compiled encoder/decoder of one sample class (built once, on first use)."""

    __slots__ = ("cls", "fields", "_enc", "_dec", "_required", "_defaults", "_slots")

    def __init__(self, cls: type, fields: tuple[Field, ...]):
        self.cls = cls
        self.fields = fields
        owner = cls.__name__
        self._enc = [(f.name, _encoder(f.type, f"{owner}.{f.name}")) for f in fields]
        self._dec = [(f.name, *_decoder(f.type)) for f in fields]
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
            for name, kind, dec in self._dec:
                if name in data:
                    value = data[name]
                    if dec is not None and type(value) is not kind:
                        value = dec(value)
                    values[name] = value
                elif name in self._defaults:
                    values[name] = _fresh(self._defaults[name])
                else:
                    missing, name = name, ""
                    raise SampleDecodeError(
                        f"{self.cls.__name__}: missing required field {missing!r} "
                        f"(sample has {sorted(data, key=repr)})"
                    )
        except SampleDecodeError as exc:
            if name:
                raise SampleDecodeError(f"{self.cls.__name__}.{name}: {exc.reason}") from exc
            raise
        except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
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
    return default.factory() if isinstance(default, DefaultFactory) else default


def codec_of(cls: type) -> SampleCodec:
    """The compiled codec of a packable class, built on first use and kept on the class."""
    codec = cls.__dict__.get(_CODEC_ATTR)
    if codec is None:
        codec = SampleCodec(cls, sample_fields(cls))
        setattr(cls, _CODEC_ATTR, codec)
    return codec


def sample_codec(cls: type) -> SampleCodec | None:
    """The compiled codec of a sample type (None for DictSample)."""
    if cls is DictSample:
        return None
    return codec_of(cls)


def decoder_for(cls: type | None) -> Callable[[dict[str, Any]], Any]:
    """A function from a decoded msgpack map to a sample of ``cls`` (DictSample if None)."""
    if cls is None or cls is DictSample:
        return DictSample.from_map
    if not is_packable(cls):
        raise SampleTypeError(f"{cls!r} is not a sample type; decorate it with @atdata_core.packable")
    return codec_of(cls).from_map
