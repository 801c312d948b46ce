"""The sample wire codec: msgpack maps with NDArray values as compact binary.

A sample is one msgpack map from field name to value. A dense array travels as
a msgpack ``bin`` laid out as::

    u8      L                 length of the dtype string
    L bytes dtype string      numpy ``dtype.str``, ASCII ("<f4", "|u1", ">i8")
    u8      ndim
    ndim x  int64 LE          shape
    rest    raw data          C order

Readers also accept a ``bin`` that starts with the ``.npy`` magic (read without
pickle). Object arrays are refused both ways: they cannot be read back without
running code.

Decoding is zero-copy: the returned array is a read-only view over the bytes
it was decoded from. Call ``arr.copy()`` if you need to write to it, or to keep
it without those bytes.

Lifetime of those bytes: a member smaller than :data:`LARGE_MEMBER` is unpacked
by msgpack, which copies each binary value, so an array views its own bytes.
A larger member is unpacked by :func:`unpack_member` without copying its
arrays: each stays a view of the buffer the shard reader read the member into
(a ``bytes`` object of a few MiB, or of the member itself), which it keeps
alive. The reader never reuses or writes to a buffer once read, so such a
view stays valid and unchanged for as long as it lives.
"""

from __future__ import annotations

import ast
import struct
from typing import Any, Container

import msgpack
import numpy as np

from .errors import SampleDecodeError, SampleTypeError

__all__ = [
    "LARGE_MEMBER",
    "NPY_MAGIC",
    "encode_ndarray",
    "decode_ndarray",
    "looks_like_ndarray",
    "pack_map",
    "unpack_map",
    "unpack_member",
]

NPY_MAGIC = b"\x93NUMPY"

_dtype_cache: dict[bytes, np.dtype] = {}
_shape_structs = [struct.Struct(f"<{n}q") for n in range(33)]
# Compact headers already checked, by their exact bytes: (dtype, shape, length of the whole value).
# A header of the same bytes over a value of the same length passes the same checks.
_layout_cache: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}
_LAYOUT_CACHE_BOUND = 1024

#: Members of at least this many bytes are unpacked without copying their arrays (see :func:`unpack_member`).
LARGE_MEMBER = 512 << 10


def encode_ndarray(array: np.ndarray) -> bytes:
    """Encode a dense array in the compact NDArray layout.

    >>> decode_ndarray(encode_ndarray(np.arange(3, dtype="<i2"))).tolist()
    [0, 1, 2]
    """
    if not isinstance(array, np.ndarray):
        array = np.asarray(array)
    dtype = array.dtype
    if dtype.hasobject:
        raise SampleTypeError(
            f"cannot encode an array of dtype {dtype}: object arrays hold Python objects, "
            "which the wire format refuses; convert to a numeric or fixed-width string dtype"
        )
    if dtype.fields is not None:
        raise SampleTypeError(f"cannot encode a structured array (dtype {dtype}); use one field per column")
    ndim = array.ndim
    if ndim > 32:
        raise SampleTypeError(f"cannot encode an array with {ndim} dimensions; at most 32 are allowed")
    dstr = dtype.str.encode("ascii")
    header = bytes((len(dstr),)) + dstr + bytes((ndim,)) + _shape_structs[ndim].pack(*array.shape)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    # the data as bytes in one copy (a uint8 view exports a buffer for every dtype, datetimes too)
    return b"".join((header, array.reshape(-1).view(np.uint8).data))


def decode_ndarray(buf: bytes | bytearray | memoryview) -> np.ndarray:
    """Decode an array from the compact layout or from ``.npy`` bytes, without copying.

    Every number in the header is checked against the bytes that follow: a
    dtype must be a plain one of non-zero size (no objects, fields or
    sub-arrays), dimensions non-negative, and the payload exactly the size
    the shape says. Anything else raises :class:`SampleDecodeError`.
    """
    if buf[:6] == NPY_MAGIC:
        return _decode_npy(buf)
    try:
        n = buf[0]
        offset = 2 + n + 8 * buf[1 + n]
    except IndexError:
        offset = 0
    if offset:
        layout = _layout_cache.get(bytes(buf[:offset]))
        if layout is not None and layout[2] == len(buf):
            return np.ndarray(layout[1], layout[0], buf, offset)
    return _decode_compact(buf)


def _decode_compact(buf: bytes | bytearray | memoryview) -> np.ndarray:
    try:
        n = buf[0]
        dkey = bytes(buf[1 : 1 + n])
        dtype = _dtype_cache.get(dkey)
        if dtype is None:
            dtype = _parse_dtype(dkey)
        ndim = buf[1 + n]
    except IndexError as exc:
        raise SampleDecodeError(f"array header is truncated ({len(buf)} bytes)") from exc
    if ndim > 32:
        raise SampleDecodeError(f"array header says {ndim} dimensions; at most 32 are allowed")
    offset = 2 + n + 8 * ndim
    try:
        shape = _shape_structs[ndim].unpack_from(buf, 2 + n)
    except struct.error as exc:
        raise SampleDecodeError(f"array header is truncated ({len(buf)} bytes)") from exc
    count = _element_count(shape, dtype, len(buf) - offset, "array header")
    array = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
    if len(_layout_cache) >= _LAYOUT_CACHE_BOUND:
        _layout_cache.clear()
    _layout_cache[bytes(buf[:offset])] = (dtype, shape, len(buf))
    return array


def _element_count(shape: tuple[Any, ...], dtype: np.dtype, actual: int, what: str) -> int:
    """The number of elements of ``shape``, checked to fill exactly ``actual`` bytes of ``dtype``."""
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise SampleDecodeError(f"{what} has an invalid dimension {dim!r}: shape {shape!r}")
        count *= dim
    expected = count * dtype.itemsize
    if actual != expected:
        raise SampleDecodeError(
            f"{what} says shape {shape} of {dtype.str} ({expected} bytes) but the payload holds {actual} bytes"
        )
    if count == 0:
        # an empty array still needs a shape numpy can hold: a zero dimension beside huge ones is refused
        extent = dtype.itemsize
        for dim in shape:
            extent *= max(dim, 1)
        if extent >= 1 << 63:
            raise SampleDecodeError(f"{what} has an impossible shape {shape} for {dtype.str}")
    return count


def _check_dtype(dtype: np.dtype, text: Any) -> np.dtype:
    if dtype.hasobject:
        raise SampleDecodeError(f"refusing an object array (dtype {text!r}): it cannot be read without pickle")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise SampleDecodeError(f"refusing dtype {text!r}: structured and sub-array dtypes are not in the wire format")
    if dtype.itemsize == 0:
        raise SampleDecodeError(f"refusing dtype {text!r}: its elements have no size")
    return dtype


def _parse_dtype(dkey: bytes) -> np.dtype:
    try:
        text = dkey.decode("ascii")
        dtype = np.dtype(text)
    except Exception as exc:  # numpy raises TypeError, ValueError, SyntaxError... for strings it cannot read
        raise SampleDecodeError(f"array header names an unknown dtype {dkey!r}") from exc
    _check_dtype(dtype, text)
    if len(_dtype_cache) < 1024:
        _dtype_cache[dkey] = dtype
    return dtype


# numpy refuses .npy headers longer than this unless told otherwise; so do we.
_NPY_MAX_HEADER = 10_000


def _decode_npy(buf: bytes | bytearray | memoryview) -> np.ndarray:
    # The .npy header is a Python dict literal; parse it with literal_eval (never pickle).
    try:
        major = buf[6]
        if major == 1:
            (hlen,) = struct.unpack_from("<H", buf, 8)
            start = 10
        elif major in (2, 3):
            (hlen,) = struct.unpack_from("<I", buf, 8)
            start = 12
        else:
            raise SampleDecodeError(f".npy version {major} is not supported")
        if hlen > _NPY_MAX_HEADER or start + hlen > len(buf):
            raise SampleDecodeError(f".npy header claims {hlen} bytes ({len(buf)} in the value)")
        header = ast.literal_eval(bytes(buf[start : start + hlen]).decode("latin1" if major < 3 else "utf8"))
        if not isinstance(header, dict):
            raise SampleDecodeError(f".npy header is a {type(header).__name__}, not a dict")
        descr = header["descr"]
        fortran = header["fortran_order"]
        shape = header["shape"]
        if not isinstance(fortran, bool) or not isinstance(shape, tuple):
            raise SampleDecodeError(f".npy header has fortran_order {fortran!r} and shape {shape!r}")
        dtype = np.dtype(descr)
    except SampleDecodeError:
        raise
    except Exception as exc:  # malformed header of any kind
        raise SampleDecodeError(f"malformed .npy header: {type(exc).__name__}: {exc}") from exc
    _check_dtype(dtype, descr)
    offset = start + hlen
    count = _element_count(shape, dtype, len(buf) - offset, ".npy header")
    arr = np.frombuffer(buf, dtype=dtype, count=count, offset=offset)
    return arr.reshape(shape, order="F" if fortran else "C")


def looks_like_ndarray(value: Any) -> bool:
    """True if ``value`` is bytes that parse as an NDArray (used when no schema says so)."""
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) < 3:
        return False
    if value[:6] == NPY_MAGIC:
        return True
    n = value[0]
    if not 2 <= n <= 16 or len(value) < 2 + n:
        return False
    dstr = bytes(value[1 : 1 + n])
    if dstr[:1] not in (b"<", b">", b"|", b"="):
        return False
    dtype = _dtype_cache.get(dstr)
    if dtype is None:
        try:
            dtype = _parse_dtype(dstr)
        except SampleDecodeError:
            return False
    ndim = value[1 + n]
    offset = 2 + n + 8 * ndim
    if ndim > 32 or len(value) < offset:
        return False
    shape = _shape_structs[ndim].unpack_from(value, 2 + n)
    try:
        _element_count(shape, dtype, len(value) - offset, "array header")
    except SampleDecodeError:
        return False
    return True


def _default(obj: Any) -> Any:
    # Called by msgpack for values it has no native encoding for.
    if isinstance(obj, np.ndarray):
        return encode_ndarray(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise SampleTypeError(f"cannot encode a value of type {type(obj).__name__}: {obj!r:.80}")


def pack_map(mapping: dict[str, Any]) -> bytes:
    """msgpack-encode a sample map (numpy arrays and scalars handled)."""
    return msgpack.packb(mapping, use_bin_type=True, default=_default)


def unpack_map(data: bytes | memoryview) -> dict[str, Any]:
    """msgpack-decode one member into a map, or raise :class:`SampleDecodeError`."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise SampleDecodeError(f"not valid msgpack ({type(exc).__name__}: {exc})") from exc
    if not isinstance(value, dict):
        raise SampleDecodeError(f"a sample must be a msgpack map, found {type(value).__name__}")
    return value


def unpack_member(data: bytes | memoryview, views: Container[str] = ()) -> dict[str, Any]:
    """msgpack-decode one member into a map, as :func:`unpack_map` does, or raise :class:`SampleDecodeError`.

    In a member of at least :data:`LARGE_MEMBER` bytes whose map holds only
    strings, numbers, booleans, nil and binary values, the binary values of
    the keys in ``views`` stay read-only views of ``data`` instead of being
    copied (the others are ``bytes``, as msgpack gives them). Any other member
    is unpacked by msgpack, as is every member that is not such a map, so
    every error is msgpack's own.
    """
    if len(data) >= LARGE_MEMBER:
        value = _unpack_flat_map(memoryview(data), views)
        if value is not None:
            return value
    return unpack_map(data)


_FLOAT64 = struct.Struct(">d")
_FLOAT32 = struct.Struct(">f")


def _unpack_flat_map(view: memoryview, views: Container[str]) -> dict[str, Any] | None:
    """A msgpack map of flat values with binary values as views; None for anything else (msgpack decides)."""
    try:
        first = view[0]
        if 0x80 <= first <= 0x8F:
            count, pos = first & 0x0F, 1
        elif first == 0xDE:
            count, pos = int.from_bytes(view[1:3], "big"), 3
        elif first == 0xDF:
            count, pos = int.from_bytes(view[1:5], "big"), 5
        else:
            return None
        if count > 256:
            return None  # samples have a few fields; a long map is msgpack's work
        end = len(view)
        out: dict[str, Any] = {}
        for _ in range(count):
            kind = view[pos]
            if 0xA0 <= kind <= 0xBF:
                start, stop = pos + 1, pos + 1 + (kind & 0x1F)
            elif kind == 0xD9:
                start = pos + 2
                stop = start + view[pos + 1]
            elif kind == 0xDA:
                start = pos + 3
                stop = start + int.from_bytes(view[pos + 1 : start], "big")
            elif kind == 0xDB:
                start = pos + 5
                stop = start + int.from_bytes(view[pos + 1 : start], "big")
            else:
                return None  # a key that is not a string
            if stop > end:
                return None
            key = str(view[start:stop], "utf-8")
            pos = stop
            kind = view[pos]
            if 0xC4 <= kind <= 0xC6 or 0xA0 <= kind <= 0xBF or 0xD9 <= kind <= 0xDB:  # bin or str
                if kind <= 0xBF:
                    start, length = pos + 1, kind & 0x1F
                else:
                    width = 1 << ((kind - 0xC4) if kind <= 0xC6 else (kind - 0xD9))
                    start = pos + 1 + width
                    length = int.from_bytes(view[pos + 1 : start], "big")
                stop = start + length
                if stop > end:
                    return None
                if kind <= 0xBF or kind >= 0xD9:
                    out[key] = str(view[start:stop], "utf-8")
                elif key in views:
                    out[key] = view[start:stop].toreadonly()
                else:
                    out[key] = bytes(view[start:stop])
                pos = stop
            elif kind <= 0x7F:
                out[key] = kind
                pos += 1
            elif kind >= 0xE0:
                out[key] = kind - 0x100
                pos += 1
            elif kind == 0xCB:
                out[key] = _FLOAT64.unpack_from(view, pos + 1)[0]
                pos += 9
            elif kind == 0xCA:
                out[key] = _FLOAT32.unpack_from(view, pos + 1)[0]
                pos += 5
            elif kind == 0xC0 or kind == 0xC2 or kind == 0xC3:
                out[key] = None if kind == 0xC0 else kind == 0xC3
                pos += 1
            elif 0xCC <= kind <= 0xD3:  # unsigned and signed integers of 1 to 8 bytes
                width = 1 << ((kind - 0xCC) & 3)
                stop = pos + 1 + width
                if stop > end:
                    return None
                out[key] = int.from_bytes(view[pos + 1 : stop], "big", signed=kind >= 0xD0)
                pos = stop
            else:
                return None  # arrays, maps, extensions: msgpack reads the member
        if pos != end:
            return None  # trailing bytes: msgpack's error
        return out
    except (IndexError, ValueError, struct.error):  # truncated, or not UTF-8: msgpack's error
        return None
