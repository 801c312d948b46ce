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

import sys
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
        # A batch decodes into columns when every sample is its fields and nothing more: no
        # __post_init__, and no nested class (its objects would be built, and its author's code
        # run, while the columns fill). Nothing of its author's then runs until a sample is asked
        # for, which lets a read decode a shard into columns before the shard is verified.
        self.batchable = getattr(cls, "__post_init__", None) is None and not any(
            _nests(f.type) for f in fields
        )
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


def _nests(ft: FieldType) -> bool:
    """Whether a field's values hold objects of a nested packable class."""
    if isinstance(ft, Nested):
        return True
    if isinstance(ft, Optional):
        return _nests(ft.inner)
    if isinstance(ft, ListOf):
        return _nests(ft.item)
    if isinstance(ft, DictOf):
        return _nests(ft.value)
    return False


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
    for i, ((name, kind, dec), field) in enumerate(zip(codec._dec, codec.fields, strict=True)):
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


def _unheld_count() -> int:
    """What ``sys.getrefcount(spares[i])`` says of an array that only the list ``spares`` holds."""
    spares = [np.empty(1, np.uint8)]
    return sys.getrefcount(spares[0])


_UNHELD = _unheld_count()
_SPARE_COLUMNS = 4


_COLUMN_CODE: dict[str, Any] = {}  # the source of a ColumnBatch.add, compiled


class ColumnBatch:
    """Members decoded straight into columns while they share one layout.

    :meth:`add` takes a member's bytes and returns False, leaving the batch as
    it was, unless the member unpacks to a map holding every field, each
    value passing the field's checks, and every array having byte for byte
    the same header (dtype and shape) and length as the batch's (the first
    array of a layout is checked in full). Array payloads are copied once,
    into one column per field, when :meth:`take` ends the batch; the samples
    themselves are built from the columns only if asked for
    (:attr:`SampleBatch.samples`). Nothing of the batch holds on to the read
    buffers, and a column's memory is reused once nothing holds the column.

    Members that begin alike are not even unpacked whole: once a member whose
    map starts with an array field has been added, the bytes up to that
    array's payload (map header, key, binary header, array header) are the
    template. A member starting with exactly those bytes has that array, of
    that length, as its first value: msgpack unpacks only the rest (the
    other fields, as a map of one fewer entry, which must hold nothing more),
    and the payload goes to the column without the copy msgpack would make.
    """

    def __init__(self, codec: SampleCodec):
        self.codec = codec
        self._added: list[None] = []  # one entry per member added since the last take
        self._arrays = [i for i, f in enumerate(codec.fields) if isinstance(f.type, Array)]
        # per field: the layout of its arrays, (header, header length, value length, dtype, shape)
        self._layouts: list[tuple[bytes, int, int, np.dtype, tuple[int, ...]] | None] = [None] * len(codec._dec)
        # [template or None, whether one was looked for since the layouts last changed]; a template is
        # (leading bytes, their length, end of the array, map header of the rest, start of the array value)
        self._template: list[Any] = [None, False]
        self._columns: list[list[Any]] = [[] for _ in codec._dec]
        self._spares: list[np.ndarray] = []  # memory of columns handed out, reused once no one holds it
        self._next_spare = 0
        self.add = self._compile()

    def __len__(self) -> int:
        return len(self._added)

    def _compile(self) -> Callable[[Any], bool]:
        codec = self.codec
        env: dict[str, Any] = {
            "_unpackb": msgpack.unpackb,
            "_unpack_member": unpack_member,
            "_LARGE": LARGE_MEMBER,
            "_views": codec._views,
            "_batch": self._added,
            "_added": self._added.append,
            "_first": self._first_layout,
            "_learn": self._learn_template,
            "_layouts": self._layouts,
            "_template": self._template,
            "_join": b"".join,
            "bytes": bytes,
            "memoryview": memoryview,
            "dict": dict,
            "type": type,
            "len": len,
            "Exception": Exception,
        }
        arrays = set(self._arrays)

        def checks(indent: str, skip: int | None) -> tuple[list[str], list[str]]:
            lines, appends = [], []
            for i, (name, kind, dec) in enumerate(codec._dec):
                if i == skip:
                    appends.append(f"    _c{i}(p{i})")
                    continue
                lines.append(f"{indent}v{i} = data[{name!r}]")
                if i in arrays:
                    # the header (dtype and shape) and the length are the batch's, byte for byte
                    lines += [
                        f"{indent}lay = _layouts[{i}]",
                        f"{indent}if type(v{i}) is bytes:",
                        f"{indent}    if lay is None or len(v{i}) != lay[2] or not v{i}.startswith(lay[0]):",
                        f"{indent}        if _batch:",
                        f"{indent}            return False",
                        f"{indent}        lay = _first({i}, v{i})",
                        f"{indent}    p{i} = memoryview(v{i})[lay[1]:]",
                        f"{indent}else:",
                        f"{indent}    if lay is None or len(v{i}) != lay[2] or v{i}[:lay[1]] != lay[0]:",
                        f"{indent}        if _batch:",
                        f"{indent}            return False",
                        f"{indent}        lay = _first({i}, v{i})",
                        f"{indent}    p{i} = v{i}[lay[1]:]",
                    ]
                    appends.append(f"    _c{i}(p{i})")
                    continue
                env[f"_k{i}"] = kind
                env[f"_d{i}"] = dec
                if dec is not None:
                    if kind is None:
                        lines.append(f"{indent}v{i} = _d{i}(v{i})")
                    else:
                        lines += [f"{indent}if type(v{i}) is not _k{i}:", f"{indent}    v{i} = _d{i}(v{i})"]
                appends.append(f"    _c{i}(v{i})")
            return lines, appends

        for i in range(len(codec._dec)):
            env[f"_c{i}"] = self._columns[i].append
        source = ["def add(member):"]
        if self._arrays:  # members that begin alike: only the rest is unpacked (see the class's doc)
            source += ["    t = _template[0]", "    if t is not None and member[:t[1]] == t[0]:"]
        for j in self._arrays:
            name = codec._dec[j][0]
            lines, appends = checks("            ", j)
            source += [
                f"        if t[5] == {j}:",
                "            if len(member) < t[2]:",
                "                return False",
                "            try:",
                "                data = _unpackb(_join((t[3], member[t[2]:])), raw=False, strict_map_key=False)",
                f"                if type(data) is not dict or {name!r} in data:",
                "                    return False",
                *["    " + line for line in lines],
                "            except Exception:",
                "                return False",
                f"            p{j} = member[t[1]:t[2]]",
                *["        " + line for line in appends],
                "            _added(None)",
                "            return True",
            ]
        lines, appends = checks("        ", None)
        source += [
            "    try:",
            "        if len(member) < _LARGE:",
            "            data = _unpackb(member, raw=False, strict_map_key=False)",
            "            if type(data) is not dict:",
            "                return False",
            "        else:",
            "            data = _unpack_member(member, _views)",
            *lines,
            "    except Exception:",
            "        return False",
            *appends,
            "    _added(None)",
            "    if not _template[1]:",
            "        _learn(member)",
            "    return True",
        ]
        text = "\n".join(source)
        code = _COLUMN_CODE.get(text)
        if code is None:  # compiled once per layout of fields: a read of one shard makes a batch anew
            code = compile(text, f"<atdata columns of {codec.cls.__qualname__}>", "exec")
            if len(_COLUMN_CODE) < 256:
                _COLUMN_CODE[text] = code
        exec(code, env)
        return env["add"]

    def _first_layout(self, i: int, value: Any) -> tuple[bytes, int, int, np.dtype, tuple[int, ...]]:
        """The layout of the arrays of field ``i`` from now on: this value's, checked in full."""
        if type(value) not in (bytes, memoryview) or value[:6] == NPY_MAGIC:
            raise SampleDecodeError("not a compact array")  # the sample-by-sample path decides
        array = decode_ndarray(value)
        offset = len(value) - array.nbytes
        layout = (bytes(value[:offset]), offset, len(value), array.dtype, array.shape)
        self._layouts[i] = layout
        self._template[0], self._template[1] = None, False
        return layout

    def _learn_template(self, member: Any) -> None:
        """Keep the leading bytes of a member just added, if its map starts with an array field."""
        self._template[1] = True
        view = memoryview(member)
        first = view[0]
        if 0x81 <= first <= 0x8F:
            count, pos = first & 0x0F, 1
        elif first == 0xDE:
            count, pos = int.from_bytes(view[1:3], "big"), 3
        else:
            return
        kind = view[pos]
        if not 0xA0 <= kind <= 0xBF:
            return
        key_end = pos + 1 + (kind & 0x1F)
        key = bytes(view[pos + 1 : key_end])
        for j in self._arrays:
            name = self.codec._dec[j][0]
            layout = self._layouts[j]
            if layout is None or key != name.encode("utf-8"):
                continue
            kind = view[key_end]
            width = {0xC4: 1, 0xC5: 2, 0xC6: 4}.get(kind)
            if width is None or int.from_bytes(view[key_end + 1 : key_end + 1 + width], "big") != layout[2]:
                return
            value_start = key_end + 1 + width
            lead = value_start + layout[1]
            end = value_start + layout[2]
            rest = count - 1
            header = bytes((0x80 | rest,)) if rest < 16 else b"\xde" + rest.to_bytes(2, "big")
            self._template[0] = (bytes(view[:lead]), lead, end, header, value_start, j)
            return

    def take(self, sample_type: type | None = None) -> Any:
        """The batch so far as a :class:`~atdata_core.SampleBatch`, and an empty batch again."""
        from ._batch import SampleBatch

        codec = self.codec
        size = len(self._added)
        columns: dict[str, Any] = {}
        values: dict[str, list[Any]] = {}
        for i, (name, _, _) in enumerate(codec._dec):
            column = self._columns[i]
            layout = self._layouts[i]
            if layout is not None:
                data = self._buffer(sum(map(len, column)))
                view = memoryview(data)
                start = 0
                for payload in column:
                    end = start + len(payload)
                    view[start:end] = payload
                    start = end
                view.release()
                columns[name] = data.view(layout[3]).reshape((size, *layout[4]))
            else:
                values[name] = column[:]
            column.clear()
        self._added.clear()
        arrays, fields, from_map = dict(columns), dict(values), codec.from_map

        def build() -> list[Any]:
            # the samples from the columns: arrays as read-only copies of their rows
            out = []
            for k in range(size):
                data = {name: vals[k] for name, vals in fields.items()}
                for name, column in arrays.items():
                    row = column[k].copy()
                    row.flags.writeable = False
                    data[name] = row
                out.append(from_map(data))
            return out

        return SampleBatch._from_columns(size, sample_type or codec.cls, columns, values, build)

    def _buffer(self, nbytes: int) -> np.ndarray:
        """Memory for a column of ``nbytes``: one handed out before that nothing holds any more, or new.

        A column is a view of one of these; while anything holds the column (or
        a view of it, a tensor made from it, the batch), the buffer's reference
        count says so, and the buffer is not reused. Reusing one spares the
        page faults of fresh memory (on a virtual machine, a few microseconds
        per 4 KiB page, more than the copy into it).
        """
        spares = self._spares
        for i in range(len(spares)):
            if spares[i].nbytes == nbytes and sys.getrefcount(spares[i]) == _UNHELD:
                return spares[i]
        buffer = np.empty(nbytes, np.uint8)
        if len(spares) < _SPARE_COLUMNS:
            spares.append(buffer)
        else:
            spares[self._next_spare] = buffer
            self._next_spare = (self._next_spare + 1) % _SPARE_COLUMNS
        return buffer

    def samples(self) -> list[Any]:
        """The samples added so far, one by one (they all decode), and an empty batch again."""
        codec = self.codec
        samples = []
        for k in range(len(self._added)):
            data = {}
            for i, (name, _, _) in enumerate(codec._dec):
                value = self._columns[i][k]
                layout = self._layouts[i]
                if layout is not None:  # an array's payload: its own bytes, as msgpack would have given
                    value = np.frombuffer(bytes(value), dtype=layout[3]).reshape(layout[4])
                data[name] = value
            samples.append(codec.from_map(data))
        self._added.clear()
        for column in self._columns:
            column.clear()
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
