"""The NDArray wire layout and msgpack maps (DESIGN section 4)."""

import io
import struct

import msgpack
import numpy as np
import pytest

from atdata_core.codec import decode_ndarray, encode_ndarray, looks_like_ndarray, pack_map, unpack_map
from atdata_core.errors import SampleDecodeError, SampleTypeError


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype="<f4").reshape(3, 4),
        np.arange(6, dtype=">i8").reshape(2, 3),
        np.zeros((3, 64, 64), dtype=np.uint8),
        np.array(3.5),  # 0-d
        np.zeros((0, 5), dtype=np.int16),
        np.array([True, False]),
        np.array(["ab", "cde"]),  # fixed-width unicode
        np.arange(4, dtype=np.complex64),
    ],
)
def test_round_trip_keeps_dtype_shape_and_values(array):
    back = decode_ndarray(encode_ndarray(array))
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_layout_is_exactly_the_documented_one():
    array = np.array([[1, 2, 3]], dtype="<i2")
    data = encode_ndarray(array)
    assert data[0] == 3 and data[1:4] == b"<i2"
    assert data[4] == 2
    assert struct.unpack("<2q", data[5:21]) == (1, 3)
    assert data[21:] == array.tobytes()


def test_non_contiguous_arrays_are_written_in_c_order():
    array = np.arange(12, dtype=np.int32).reshape(3, 4).T
    back = decode_ndarray(encode_ndarray(array))
    np.testing.assert_array_equal(back, array)


def test_decoding_does_not_copy_the_payload():
    data = encode_ndarray(np.arange(1000, dtype=np.float64))
    array = decode_ndarray(data)
    assert not array.flags.owndata
    assert array.base is not None
    assert not array.flags.writeable  # a view over immutable bytes


def test_npy_bytes_are_accepted_without_pickle():
    array = np.arange(6, dtype="<f8").reshape(2, 3)
    buf = io.BytesIO()
    np.save(buf, array)
    back = decode_ndarray(buf.getvalue())
    np.testing.assert_array_equal(back, array)
    fortran = np.asfortranarray(array)
    buf = io.BytesIO()
    np.save(buf, fortran)
    np.testing.assert_array_equal(decode_ndarray(buf.getvalue()), array)


def test_object_arrays_are_refused_both_ways():
    with pytest.raises(SampleTypeError, match="object"):
        encode_ndarray(np.array([{"a": 1}], dtype=object))
    forged = bytes([3]) + b"|O8" + bytes([1]) + struct.pack("<q", 1) + bytes(8)
    with pytest.raises(SampleDecodeError, match="object"):
        decode_ndarray(forged)
    buf = io.BytesIO()
    np.save(buf, np.array([1, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(SampleDecodeError, match="pickle"):
        decode_ndarray(buf.getvalue())


def test_header_disagreeing_with_length_is_an_error_with_both_sizes():
    data = encode_ndarray(np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(SampleDecodeError, match=r"shape \(4, 4\).*64 bytes.*60 bytes"):
        decode_ndarray(data[:-4])
    with pytest.raises(SampleDecodeError, match="truncated"):
        decode_ndarray(data[:6])


def test_unknown_dtype_is_named():
    bad = bytes([3]) + b"<q9" + bytes([0])
    with pytest.raises(SampleDecodeError, match="unknown dtype"):
        decode_ndarray(bad)


def test_looks_like_ndarray_tells_arrays_from_plain_bytes():
    assert looks_like_ndarray(encode_ndarray(np.arange(3)))
    assert not looks_like_ndarray(b"hello world")
    assert not looks_like_ndarray(b"\x03<i2\x01")  # header says 1 dim but no shape
    assert not looks_like_ndarray("text")


def test_pack_map_converts_numpy_scalars_and_arrays():
    data = pack_map({"a": np.float32(1.5), "b": np.int64(7), "c": np.arange(3, dtype=np.int8), "d": None})
    raw = msgpack.unpackb(data)
    assert raw["a"] == 1.5 and type(raw["b"]) is int and raw["d"] is None
    np.testing.assert_array_equal(decode_ndarray(raw["c"]), np.arange(3, dtype=np.int8))


def test_unpack_map_refuses_non_maps_and_garbage():
    with pytest.raises(SampleDecodeError, match="must be a msgpack map"):
        unpack_map(msgpack.packb([1, 2]))
    with pytest.raises(SampleDecodeError, match="not valid msgpack"):
        unpack_map(b"\xc1\xc1\xc1")
    with pytest.raises(SampleDecodeError, match="not valid msgpack"):
        unpack_map(msgpack.packb({"a": "b" * 100})[:-10])
