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

The decoder itself is generated Python source (one assignment and one type
test per field, the object filled without going through ``__init__``):
the checks are the same as the general loop's, which still runs whenever
the generated one meets anything it does not expect, so that every error
message comes from one place. A member's bytes are unpacked and decoded in
one call (:meth:`SampleCodec.from_member`), and members that share a layout
decode a batch at a time into columns (:class:`ColumnBatch`).
"""

from __future__ import annotations

from typing import Any, Callable

import msgpack
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
from .codec import LARGE_MEMBER, NPY_MAGIC, decode_ndarray, encode_ndarray, pack_map, unpack_map, unpack_member
from .errors import SampleDecodeError, SampleTypeError

__all__ = ["ColumnBatch", "SampleCodec", "codec_of", "sample_codec", "decoder_for", "member_decoder"]

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
    """The compiled encoder/decoder of one sample class (built once, on first use).

    ``from_map(data)`` builds a sample from a decoded map; ``from_member(data)``
    from a member's msgpack bytes (see :func:`~atdata_core.codec.unpack_member`).
    Both raise :class:`SampleDecodeError` naming the field for a value the
    field does not take.
    """

    __slots__ = (
        "cls", "fields", "_enc", "_dec", "_required", "_defaults", "_slots", "_views", "from_map", "from_member",
        "batchable",
    )

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
        # fields whose binary values may stay views of a large member: arrays, which are views anyway
        self._views = frozenset(f.name for f in fields if _is_array(f.type))
        # a batch decodes into columns when every sample is its fields and nothing more
        self.batchable = getattr(cls, "__post_init__", None) is None
        self.from_map, self.from_member = _compile(self)

    def to_map(self, obj: Any) -> dict[str, Any]:
        out = {}
        for name, enc in self._enc:
            value = getattr(obj, name)
            out[name] = value if enc is None else enc(value)
        return out

    def to_bytes(self, obj: Any) -> bytes:
        return pack_map(self.to_map(obj))

    def from_map_checked(self, data: dict[str, Any]) -> Any:
        """``from_map`` as a plain loop over the fields: where defaults and errors are handled."""
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
        return self.from_member(data)

    def columns(self) -> "ColumnBatch":
        """An empty :class:`ColumnBatch` for samples of this class."""
        return ColumnBatch(self)


def _is_array(ft: FieldType) -> bool:
    return isinstance(ft, Array) or (isinstance(ft, Optional) and isinstance(ft.inner, Array))


def _compile(codec: SampleCodec) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """``(from_map, from_member)`` of a codec as generated functions.

    Each field is one lookup and, unless the value has exactly the type the
    field usually holds, one call to its converter. Anything unexpected (a
    missing field, a value the converter refuses, not a map at all) hands the
    map to :meth:`SampleCodec.from_map_checked`, which applies defaults or
    raises the error naming the field.
    """
    cls = codec.cls
    env: dict[str, Any] = {
        "_cls": cls,
        "_make": object.__new__ if cls.__new__ is object.__new__ else cls.__new__,
        "_checked": codec.from_map_checked,
        "_unpackb": msgpack.unpackb,
        "_unpack_map": unpack_map,
        "_unpack_member": unpack_member,
        "_LARGE": LARGE_MEMBER,
        "_views": codec._views,
        "_setattr": object.__setattr__,
        "_ndarray": np.ndarray,
        "dict": dict,
        "type": type,
        "len": len,
        "bytes": bytes,
    }
    fields = []
    for i, ((name, kind, dec), field) in enumerate(zip(codec._dec, codec.fields)):
        env[f"_k{i}"] = kind
        env[f"_d{i}"] = dec
        fields.append(f"        v{i} = data[{name!r}]")
        if isinstance(field.type, Array):
            # The last compact header this field decoded, (header, its length, value length, shape,
            # dtype), swapped whole: a value with the same header and length passes the same checks.
            layout = [(b"", 0, -1, (), None)]
            env[f"_A{i}"] = layout
            env[f"_d{i}"] = _array_learner(layout)
            fields.append(
                f"        a = _A{i}[0]\n"
                f"        if type(v{i}) is bytes and len(v{i}) == a[2] and v{i}.startswith(a[0]):\n"
                f"            v{i} = _ndarray(a[3], a[4], v{i}, a[1])\n"
                f"        else:\n"
                f"            v{i} = _d{i}(v{i})"
            )
        elif dec is not None:
            if kind is None:
                fields.append(f"        v{i} = _d{i}(v{i})")
            else:
                fields.append(f"        if type(v{i}) is not _k{i}:\n            v{i} = _d{i}(v{i})")
    if codec._slots:
        build = [f"    _setattr(obj, {name!r}, v{i})" for i, (name, _, _) in enumerate(codec._dec)]
    elif codec._dec:
        build = ["    d = obj.__dict__", *(f"    d[{name!r}] = v{i}" for i, (name, _, _) in enumerate(codec._dec))]
    else:
        build = []
    post = ["    obj.__post_init__()"] if getattr(cls, "__post_init__", None) is not None else []
    decode = [
        "    if type(data) is not dict:",
        "        return _checked(data)",
        "    try:",
        *(fields or ["        pass"]),
        "    except Exception:",
        "        return _checked(data)",
        "    obj = _make(_cls)",
        *build,
        *post,
        "    return obj",
    ]
    source = "\n".join(
        [
            "def from_map(data):",
            *decode,
            "",
            "def from_member(member):",
            "    if len(member) < _LARGE:",
            "        try:",
            "            data = _unpackb(member, raw=False, strict_map_key=False)",
            "        except Exception:",
            "            data = None",
            "        if type(data) is not dict:",
            "            data = _unpack_map(member)",
            "    else:",
            "        data = _unpack_member(member, _views)",
            *decode,
        ]
    )
    exec(compile(source, f"<atdata codec of {cls.__qualname__}>", "exec"), env)
    env["from_map"].__atdata_codec__ = codec
    return env["from_map"], env["from_member"]


def _array_learner(layout: list[Any]) -> Callable[[Any], np.ndarray]:
    """Decode an array value in full, and keep its compact header in ``layout`` for the next one."""

    def decode(value: Any) -> np.ndarray:
        array = _decode_array_value(value)
        if type(value) is bytes and value[:6] != NPY_MAGIC:
            offset = len(value) - array.nbytes
            layout[0] = (value[:offset], offset, len(value), array.shape, array.dtype)
        return array

    return decode


class ColumnBatch:
    """Members decoded straight into columns while they share one layout.

    :meth:`add` takes a member's bytes and returns False, leaving the batch as
    it was, unless the member unpacks to a map holding every field, each
    value passing the field's checks, and every array having byte for byte
    the same header (dtype and shape) and length as the batch's first. Array
    payloads are then copied once, into one column per field, when
    :meth:`take` ends the batch; the samples themselves are built only if
    asked for (:attr:`SampleBatch.samples`).
    """

    def __init__(self, codec: SampleCodec):
        self.codec = codec
        self._maps: list[dict[str, Any]] = []
        arrays = [i for i, f in enumerate(codec.fields) if isinstance(f.type, Array)]
        self._arrays = arrays
        self._layouts: list[tuple[bytes, int, int, np.dtype, tuple[int, ...]] | None] = [None] * len(arrays)
        self._columns: list[list[Any]] = [[] for _ in codec._dec]
        self.add = self._compile()

    def __len__(self) -> int:
        return len(self._maps)

    def _compile(self) -> Callable[[Any], bool]:
        codec = self.codec
        env: dict[str, Any] = {
            "_unpackb": msgpack.unpackb,
            "_unpack_member": unpack_member,
            "_LARGE": LARGE_MEMBER,
            "_views": codec._views,
            "_maps": self._maps.append,
            "_first": self._first_layout,
            "_layouts": self._layouts,
            "bytes": bytes,
            "memoryview": memoryview,
            "dict": dict,
            "type": type,
            "len": len,
            "Exception": Exception,
        }
        lines = [
            "def add(member):",
            "    try:",
            "        if len(member) < _LARGE:",
            "            data = _unpackb(member, raw=False, strict_map_key=False)",
            "            if type(data) is not dict:",
            "                return False",
            "        else:",
            "            data = _unpack_member(member, _views)",
        ]
        appends = []
        slot = {index: n for n, index in enumerate(self._arrays)}
        for i, (name, kind, dec) in enumerate(codec._dec):
            env[f"_c{i}"] = self._columns[i].append
            lines.append(f"        v{i} = data[{name!r}]")
            if i in slot:
                n = slot[i]
                # the header (dtype and shape) is the first member's, byte for byte, and so is the length
                lines += [
                    f"        lay = _layouts[{n}]",
                    f"        if lay is None:",
                    f"            lay = _first({n}, v{i})",
                    f"        if len(v{i}) != lay[2]:",
                    "            return False",
                    f"        if type(v{i}) is bytes:",
                    f"            if not v{i}.startswith(lay[0]):",
                    "                return False",
                    f"            p{i} = memoryview(v{i})[lay[1]:]",
                    f"        elif type(v{i}) is memoryview and v{i}[:lay[1]] == lay[0]:",
                    f"            p{i} = v{i}[lay[1]:]",
                    "        else:",
                    "            return False",
                ]
                appends.append(f"    _c{i}(p{i})")
                continue
            env[f"_k{i}"] = kind
            env[f"_d{i}"] = dec
            if dec is not None:
                if kind is None:
                    lines.append(f"        v{i} = _d{i}(v{i})")
                else:
                    lines.append(f"        if type(v{i}) is not _k{i}:\n            v{i} = _d{i}(v{i})")
            appends.append(f"    _c{i}(v{i})")
        lines += ["    except Exception:", "        return False", *appends, "    _maps(data)", "    return True"]
        exec(compile("\n".join(lines), f"<atdata columns of {codec.cls.__qualname__}>", "exec"), env)
        return env["add"]

    def _first_layout(self, n: int, value: Any) -> tuple[bytes, int, int, np.dtype, tuple[int, ...]]:
        """The layout of the batch's first array in field ``n``: checked in full, then the template."""
        if type(value) not in (bytes, memoryview) or value[:6] == NPY_MAGIC:
            raise SampleDecodeError("not a compact array")  # the sample-by-sample path decides
        array = decode_ndarray(value)
        offset = len(value) - array.nbytes
        layout = (bytes(value[:offset]), offset, len(value), array.dtype, array.shape)
        self._layouts[n] = layout
        return layout

    def take(self, sample_type: type | None = None) -> Any:
        """The batch so far as a :class:`~atdata_core.SampleBatch`, and an empty batch again."""
        from ._batch import SampleBatch

        codec = self.codec
        size = len(self._maps)
        columns: dict[str, Any] = {}
        values: dict[str, list[Any]] = {}
        arrays = set(self._arrays)
        for i, (name, _, _) in enumerate(codec._dec):
            column = self._columns[i]
            if i in arrays:
                layout = self._layouts[self._arrays.index(i)]
                data = bytearray().join(column)
                columns[name] = np.frombuffer(data, dtype=layout[3]).reshape((size, *layout[4]))
            else:
                values[name] = column[:]
            column.clear()
        maps = self._maps[:]
        self._maps.clear()
        for n in range(len(self._layouts)):
            self._layouts[n] = None
        from_map = codec.from_map
        return SampleBatch._from_columns(
            size, sample_type or codec.cls, columns, values, lambda: [from_map(m) for m in maps]
        )

    def samples(self) -> list[Any]:
        """The samples added so far, one by one (they all decode), and an empty batch again."""
        from_map = self.codec.from_map
        samples = [from_map(m) for m in self._maps]
        self._maps.clear()
        for column in self._columns:
            column.clear()
        for n in range(len(self._layouts)):
            self._layouts[n] = None
        return samples


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


def member_decoder(decode: Callable[[dict[str, Any]], Any]) -> Callable[[Any], Any]:
    """A function from a member's msgpack bytes to a sample, for a function from a decoded map to one.

    The ``from_map`` of a sample class (or of its codec) gives the class's
    :meth:`SampleCodec.from_member`, which unpacks and decodes in one call;
    any other ``decode`` is called on :func:`~atdata_core.codec.unpack_map`'s map.
    """
    codec = _codec_behind(decode)
    if codec is not None:
        return codec.from_member

    def from_member(data: Any) -> Any:
        return decode(unpack_map(data))

    return from_member


def _codec_behind(decode: Any) -> SampleCodec | None:
    """The codec whose ``from_map`` ``decode`` is: a codec's own, or a sample class's ``from_map``."""
    codec = getattr(decode, "__atdata_codec__", None)
    if isinstance(codec, SampleCodec):
        return codec
    owner = getattr(decode, "__self__", None)
    func = getattr(decode, "__func__", None)
    if (
        func is not None
        and func.__name__ == "_from_map_method"
        and func.__module__ == "atdata_core.sample"
        and isinstance(owner, type)
        and is_packable(owner)
    ):
        return codec_of(owner)
    return None
