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
msgpack produced. Call ``arr.copy()`` if you need to write to it.
"""

from __future__ import annotations

import ast
import struct
from typing import Any

import msgpack
import numpy as np

from .errors import SampleDecodeError, SampleTypeError

__all__ = [
    "NPY_MAGIC",
    "encode_ndarray",
    "decode_ndarray",
    "looks_like_ndarray",
    "pack_map",
    "unpack_map",
]

NPY_MAGIC = b"\x93NUMPY"

_dtype_cache: dict[bytes, np.dtype] = {}
_shape_structs = [struct.Struct(f"<{n}q") for n in range(33)]


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
    return header + array.tobytes()


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
    return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)


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


def unpack_map(data: bytes) -> dict[str, Any]:
    """msgpack-decode one member into a map, or raise :class:`SampleDecodeError`."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise SampleDecodeError(f"not valid msgpack ({type(exc).__name__}: {exc})") from exc
    if not isinstance(value, dict):
        raise SampleDecodeError(f"a sample must be a msgpack map, found {type(value).__name__}")
    return value
