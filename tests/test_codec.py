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


# --------------------------------------------------------------------------- large members, unpacked without copies


def _plain(value):
    """A decoded map with views made bytes, to compare with what msgpack gives."""
    return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in value.items()}


def test_a_large_member_keeps_its_arrays_as_views_of_the_member():
    import atdata_core.codec as codec

    image = np.arange(1 << 18, dtype="<f4").reshape(512, 512)  # 1 MiB
    data = pack_map({"image": image, "label": "x", "blob": b"abc", "n": -3, "f": 0.5, "none": None, "ok": True})
    assert len(data) >= codec.LARGE_MEMBER
    value = codec.unpack_member(data, views={"image"})
    assert isinstance(value["image"], memoryview) and value["image"].readonly
    assert type(value["blob"]) is bytes  # not an array field: a copy, as msgpack gives it
    assert _plain(value) == unpack_map(data)
    array = decode_ndarray(value["image"])
    assert np.array_equal(array, image) and not array.flags.writeable
    assert np.shares_memory(array, np.frombuffer(data, np.uint8))  # a view of the member's bytes, no copy


def test_property_unpack_member_agrees_with_msgpack_on_any_bytes(monkeypatch):
    """With every member counted as large, the view-keeping unpacker gives msgpack's map or its error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    import atdata_core.codec as codec

    monkeypatch.setattr(codec, "LARGE_MEMBER", 0)
    floats = st.floats(allow_nan=False, width=32)  # packed as float32 or float64 alike
    flat = st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | floats | st.text(max_size=40) | st.binary(max_size=300)
    value = flat | st.lists(flat, max_size=3) | st.dictionaries(st.text(max_size=5), flat, max_size=3)
    maps = st.builds(
        lambda m, single: msgpack.packb(m, use_bin_type=True, use_single_float=single),
        st.dictionaries(st.text(max_size=12) | st.integers(-5, 5), value, max_size=6),
        st.booleans(),
    )
    mutated = st.tuples(maps, st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4), st.integers(0, 400)).map(
        lambda t: _mutate(*t)
    )

    @settings(max_examples=400, deadline=None, database=None)
    @given(st.one_of(maps, mutated, st.binary(max_size=200)))
    def check(data):
        try:
            expected = unpack_map(data)
        except SampleDecodeError:
            with pytest.raises(SampleDecodeError):
                codec.unpack_member(data, views={"a", "b", ""})
            return
        got = codec.unpack_member(data, views={"a", "b", ""})
        # compared as msgpack bytes: a NaN in both is not equal to itself
        assert msgpack.packb(_plain(got), use_bin_type=True) == msgpack.packb(expected, use_bin_type=True)

    check()


def _mutate(data, changes, cut):
    data = bytearray(data)
    for pos, byte in changes:
        if pos < len(data):
            data[pos] = byte
    return bytes(data[: max(cut, 1)] if cut < len(data) else data)


def test_compact_headers_checked_once_still_refuse_a_wrong_length():
    first = encode_ndarray(np.zeros((4, 4), dtype="<f4"))
    decode_ndarray(first)  # the header is now known
    with pytest.raises(SampleDecodeError, match="payload holds"):
        decode_ndarray(first[:-4])
    with pytest.raises(SampleDecodeError, match="payload holds"):
        decode_ndarray(first + b"\0\0\0\0")
    assert decode_ndarray(first).shape == (4, 4)


def test_property_large_members_decode_like_small_ones(monkeypatch):
    """A sample class reading every member as large (arrays as views) decodes and refuses as one reading none so."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    import atdata_core
    import atdata_core._codec_compiler as compiler

    def make():
        @atdata_core.packable
        class Item:
            image: np.ndarray
            label: str
            value: float
            blob: bytes | None = None

        Item.from_bytes(pack_map({"image": np.zeros(1), "label": "", "value": 0.0}))  # compiles its codec now
        return Item

    small = make()
    monkeypatch.setattr(compiler, "LARGE_MEMBER", 0)
    large = make()
    arrays = st.sampled_from([np.zeros((2, 3), "<f4"), np.arange(5, dtype=">i8"), np.zeros(0, "|u1")]).map(encode_ndarray)
    values = st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=False) | st.text(max_size=5) | st.binary(max_size=20) | arrays
    maps = st.dictionaries(st.sampled_from(["image", "label", "value", "blob", "other"]), values, max_size=5).map(pack_map)

    def outcome(cls, data):
        try:
            sample = cls.from_bytes(data)
        except SampleDecodeError as exc:
            return ("error", str(exc).replace("large", "").replace("small", ""))
        image = sample.image
        return ("ok", image.dtype.str, image.shape, image.tobytes(), sample.label, sample.value, sample.blob)

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.one_of(maps, st.binary(max_size=60)))
    def check(data):
        assert outcome(small, data) == outcome(large, data)

    check()
