"""Hostile shards and sample bytes: every malformed input ends in an atdata error, in bounded time.

Each read runs in a thread with a deadline (:func:`bounded`), so a reader that
loops forever fails its test instead of stalling the suite. Nothing here times
performance: the deadline is only a hang detector.
"""

import io
import os
import struct
import threading
import tracemalloc
import warnings

import msgpack
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atdata_core
from atdata_core import Dataset
from atdata_core.cli import cli
from atdata_core.codec import decode_ndarray, encode_ndarray, looks_like_ndarray, pack_map
from atdata_core.config import Config
from atdata_core.errors import AtdataError, ChecksumError, ConfigError, SampleDecodeError, ShardError
from atdata_core.sample import DictSample
from atdata_core.shards import HashingReader, ShardLimits, ShardWriter, iter_members, iter_samples

DEADLINE = 10.0  # seconds: far above any honest read here, far below a stalled suite


@atdata_core.packable
class Item:
    image: np.ndarray
    label: str
    value: float


@atdata_core.packable
class Typed:
    text: str
    count: int
    flag: bool
    ratio: float
    blob: bytes
    words: list[str]
    scores: dict[str, int]
    maybe: str | None = None


def bounded(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread; fail the test if it has not finished within DEADLINE."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed back to the test thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name=f"bounded-{getattr(fn, '__name__', 'read')}")
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not finish within {DEADLINE} s: the reader hangs")
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- building hostile tars


def header(name=b"0000000000.msgpack", size=0, kind=b"0", *, size_field=None, checksum=None, magic=b"ustar\x0000"):
    """One 512-byte tar header; every field can be made wrong on purpose."""
    h = bytearray(512)
    h[: len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field if size_field is not None else b"%011o\0" % size
    h[136:148] = b"%011o\0" % 0
    h[156:157] = kind
    h[257:265] = magic
    h[148:156] = b"        "
    h[148:156] = checksum if checksum is not None else b"%06o\0 " % sum(h)
    return bytes(h)


def member(name, data, kind=b"0", **fields):
    return header(name, len(data), kind, **fields) + data + bytes(-len(data) % 512)


def pax_record(key: bytes, value: bytes) -> bytes:
    """``"%d %s=%s\n"`` with its length counted right."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


END = bytes(1024)


def good_sample(i):
    return Item(np.full((2, 3), i, dtype=np.int32), f"item-{i}", i / 2)


def good_member(i):
    return member(b"%010d.msgpack" % i, good_sample(i).to_bytes())


def read(data, decode=Item.from_map, **kwargs):
    """Every sample of ``data`` (bytes) as iter_samples hands them out, within the deadline."""
    return bounded(lambda: list(iter_samples(io.BytesIO(data), decode, shard="hostile.tar", **kwargs)))


def read_members(data, **kwargs):
    return bounded(lambda: list(iter_members(io.BytesIO(data), shard="hostile.tar", **kwargs)))


def assert_skipped_around(bad_member: bytes):
    """Between two good samples, ``bad_member`` goes to on_error and the good ones are read."""
    errors = []
    data = good_member(0) + bad_member + good_member(2) + END
    got = read(data, on_error=errors.append)
    assert [s.label for s in got] == ["item-0", "item-2"]
    assert len(errors) == 1 and isinstance(errors[0], SampleDecodeError)
    assert "hostile.tar" in str(errors[0]) and "0000000001.msgpack" in str(errors[0])
    return errors[0]


class Endless:
    """``head``, then ``fill`` forever: a server that never ends its body, or /dev/zero."""

    def __init__(self, head=b"", fill=b"\0"):
        self._head = io.BytesIO(head)
        self._fill = fill
        self.consumed = 0

    def read(self, n=-1):
        if n is None or n < 0:
            raise AssertionError("read() to the end of an endless stream")
        data = self._head.read(n)
        if len(data) < n:
            more = n - len(data)
            data += (self._fill * (more // len(self._fill) + 1))[:more]
        self.consumed += len(data)
        return data

    def close(self):
        pass


# --------------------------------------------------------------------------- tar headers


@pytest.mark.parametrize(
    "pax",
    [
        b"0 ",  # a zero-length record: the parse once stood still here forever
        b"0 path=x\n",
        b"1 path=x\n",
        b"3 a\n",
        b"-5 path=x\n",
        b"+9 path=x\n",
        b"abc path=x\n",
        b"99 path=x\n",  # longer than the header
        b"12 pathx\n\n\n",  # no '='
        b"10 path=xy",  # not ended by a newline
        b"path=x\n",  # no length at all
        b"1" * 400 + b" path=x\n",  # a length of 400 digits
    ],
)
def test_malformed_pax_records_are_shard_errors(pax):
    data = member(b"././@PaxHeader", pax, b"x") + good_member(0) + END
    with pytest.raises(ShardError, match="hostile.tar.*pax"):
        read(data)


def test_pax_path_that_is_not_utf8_is_a_shard_error():
    pax = pax_record(b"path", b"\xff\xfe.msgpack")
    data = member(b"././@PaxHeader", pax, b"x") + good_member(0) + END
    with pytest.raises(ShardError, match="not UTF-8"):
        read(data)


@pytest.mark.parametrize("value", [b"12abc", b"-1", b"1e9", b"0x10", b" 12"])
def test_pax_size_that_is_not_a_decimal_number_is_a_shard_error(value):
    pax = pax_record(b"size", value)
    data = member(b"././@PaxHeader", pax, b"x") + good_member(0) + END
    with pytest.raises(ShardError, match="pax size"):
        read(data)


def test_pax_headers_of_other_writers_are_read():
    # tarfile writes pax records we do not use (mtime with a fraction, a non-ASCII comment)
    import tarfile

    buf = io.BytesIO()
    payload = good_sample(0).to_bytes()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("deep/" + "d" * 120 + "/0000000000.msgpack")
        info.size = len(payload)
        info.mtime = 1.5
        info.pax_headers = {"comment": "é ✓"}
        archive.addfile(info, io.BytesIO(payload))
    members = read_members(buf.getvalue())
    assert [name for name, _ in members] == ["deep/" + "d" * 120 + "/0000000000.msgpack"]


def test_gnu_long_names_are_read():
    import tarfile

    buf = io.BytesIO()
    payload = good_sample(0).to_bytes()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("g" * 150 + ".msgpack")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    assert [name for name, _ in read_members(buf.getvalue())] == ["g" * 150 + ".msgpack"]


@pytest.mark.parametrize(
    "size_field",
    [b"12abc\0\0\0\0\0\0\0", b"-0000000001\0", b"+0000000001\0", b"0000_000001\0", b"00000000008\0", b"\x81" + bytes(11)],
)
def test_a_size_field_that_is_not_octal_is_a_shard_error(size_field):
    data = header(size_field=size_field) + bytes(512) + END
    with pytest.raises(ShardError, match=r"hostile\.tar.*size field"):
        read_members(data)


def test_a_negative_binary_size_is_a_shard_error():
    data = header(size_field=b"\xff" * 12) + END
    with pytest.raises(ShardError, match="negative"):
        read_members(data)


@pytest.mark.parametrize(
    "size_field",
    [
        b"\x80" + (64 << 30).to_bytes(11, "big"),  # 64 GiB, binary-encoded
        b"\x80" + b"\xff" * 11,  # about 2**88 bytes
    ],
)
def test_a_member_claiming_more_than_the_limit_is_refused_before_reading(size_field):
    data = header(size_field=size_field) + bytes(512) + END
    with pytest.raises(ShardError, match=r"hostile\.tar, member 0000000000\.msgpack: .*max_member_bytes"):
        read_members(data)


def test_a_pax_size_claiming_64_gib_is_refused():
    pax = pax_record(b"size", b"%d" % (64 << 30))
    data = member(b"././@PaxHeader", pax, b"x") + header(size=0) + END
    with pytest.raises(ShardError, match="max_member_bytes"):
        read_members(data)


def test_a_pax_header_claiming_megabytes_is_refused():
    data = header(b"././@PaxHeader", 2 << 20, b"x") + bytes(4096)
    with pytest.raises(ShardError, match="metadata member"):
        read_members(data)


def test_a_claimed_size_under_the_limit_allocates_only_what_arrives(tmp_path):
    # 3 GiB claimed (under the 4 GiB default), 600 bytes present: a truncation error, and
    # memory never follows the claim
    path = tmp_path / "claim.tar"
    path.write_bytes(header(size=3 << 30) + bytes(600))
    tracemalloc.start()
    try:
        with open(path, "rb") as f:
            with pytest.raises(ShardError, match="truncated"):
                bounded(lambda: list(iter_members(f, shard=str(path))))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_the_member_limit_is_configurable(monkeypatch, tmp_path):
    data = good_member(0) + END
    with pytest.raises(ShardError, match="more than the 10 allowed"):
        read(data, limits=ShardLimits(max_member_bytes=10))
    assert ShardLimits.from_config(Config({"shards": {"max_member_bytes": 10}})).max_member_bytes == 10
    monkeypatch.setenv("ATDATA_SHARDS_MAX_MEMBER_BYTES", "nope")
    with pytest.raises(ConfigError, match="ATDATA_SHARDS_MAX_MEMBER_BYTES"):
        ShardLimits.from_config()
    monkeypatch.setenv("ATDATA_SHARDS_MAX_MEMBER_BYTES", "-1")
    with pytest.raises(ConfigError, match="ATDATA_SHARDS_MAX_MEMBER_BYTES"):
        ShardLimits.from_config()
    monkeypatch.setenv("ATDATA_SHARDS_MAX_MEMBER_BYTES", "10")
    path = tmp_path / "one.tar"
    path.write_bytes(data)
    with pytest.raises(ShardError, match=r"one\.tar.*max_member_bytes"):
        bounded(lambda: list(Dataset[Item](str(path))))


@pytest.mark.parametrize("checksum", [b"12abc\0  ", b"-0000001", b"\xff" * 8])
def test_a_header_checksum_that_is_not_octal_is_a_shard_error(checksum):
    data = header(checksum=checksum) + END
    with pytest.raises(ShardError, match="checksum"):
        read_members(data)


def test_a_header_summed_as_signed_bytes_is_accepted():
    # old tar writers summed the header as signed chars; tarfile accepts both sums
    h = bytearray(header(b"\xe9t\xe9.msgpack", 0))
    h[148:156] = b"        "
    signed = sum(struct.unpack("512b", bytes(h)))
    assert signed != sum(h)
    h[148:156] = b"%06o\0 " % (signed & 0o777777)
    assert [name for name, _ in read_members(bytes(h) + END)] == ["\xe9t\xe9.msgpack".encode("latin1").decode("utf-8", "surrogateescape")]


def test_directories_and_links_carry_no_data_whatever_their_size_says():
    huge = b"\x80" + (1 << 40).to_bytes(11, "big")
    data = header(b"dir/", kind=b"5", size_field=huge) + header(b"link", size=7, kind=b"1") + good_member(0) + END
    assert [s.label for s in read(data)] == ["item-0"]


@pytest.mark.parametrize("cut", [10, 512, 700, 1024 + 100])
def test_a_truncated_shard_is_a_shard_error(cut):
    data = (good_member(0) + good_member(1) + END)[:cut]
    with pytest.raises(ShardError, match="truncated"):
        read(data)


# --------------------------------------------------------------------------- endless input


def test_a_shard_followed_by_endless_zeros_ends_without_a_checksum():
    stream = Endless(good_member(0) + END)
    got = bounded(lambda: list(iter_samples(stream, Item.from_map, shard="endless.tar")))
    assert [s.label for s in got] == ["item-0"]
    assert stream.consumed == len(good_member(0)) + 512  # nothing read past the end-of-archive marker


def test_a_shard_followed_by_endless_zeros_ends_with_a_checksum():
    import hashlib

    shard = good_member(0) + END
    digest = hashlib.sha256(shard).hexdigest()
    # the recorded size bounds the read: the shard verifies and its sample is read
    stream = Endless(shard)
    got = bounded(lambda: list(iter_samples(stream, Item.from_map, shard="endless.tar", checksum=digest, size=len(shard))))
    assert [s.label for s in got] == ["item-0"] and stream.consumed == len(shard)
    # without a size: at most the verify buffer plus 1 MiB past the archive's end, then an error
    stream = Endless(shard)
    with pytest.raises(ShardError, match=r"endless\.tar.*follow the end-of-archive marker.*1 of its samples were yielded"):
        bounded(lambda: list(iter_samples(stream, Item.from_map, shard="endless.tar", checksum=digest)))
    assert stream.consumed <= ShardLimits().verify_buffer_bytes + (2 << 20)


def test_endless_random_bytes_are_a_shard_error():
    rng = np.random.default_rng(7)
    stream = Endless(b"", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ShardError, match="corrupt tar header"):
        bounded(lambda: list(iter_samples(stream, shard="noise.tar")))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_as_a_shard_ends():
    assert bounded(lambda: list(Dataset("/dev/zero"))) == []
    with pytest.raises(ShardError, match="end-of-archive"):
        bounded(lambda: list(Dataset("/dev/zero", checksums={"/dev/zero": "0" * 64})))
    errors = []
    assert bounded(lambda: list(Dataset("/dev/zero", checksums={"/dev/zero": "0" * 64}, on_error=errors.append))) == []
    assert len(errors) == 1


# --------------------------------------------------------------------------- checksum policy


@pytest.fixture
def three_shards(tmp_path):
    with ShardWriter(tmp_path / "s-%03d.tar", maxcount=5) as sink:
        for i in range(15):
            sink.write(good_sample(i))
    return sink.shards


def damage(path):
    data = bytearray(open(path, "rb").read())
    pos = data.rfind(b"item-")
    data[pos : pos + 5] = b"itex-"  # still a readable tar, different bytes
    open(path, "wb").write(bytes(data))


def labels(samples):
    return [int(s.label.split("-")[1]) for s in samples]


def test_a_small_shard_that_fails_verification_yields_nothing(three_shards):
    damage(three_shards[1].url)
    with pytest.raises(ChecksumError, match="s-001.tar"):
        bounded(lambda: list(Dataset[Item](three_shards)))
    pipe = iter(Dataset[Item](three_shards[1:]))
    with pytest.raises(ChecksumError):
        next(pipe)  # before its first sample
    with pytest.warns(UserWarning, match=r"s-001\.tar.*sha256 mismatch"):
        got = bounded(lambda: list(Dataset[Item](three_shards, on_error="skip")))
    assert labels(got) == list(range(5)) + list(range(10, 15))
    errors = []
    got = bounded(lambda: list(Dataset[Item](three_shards, on_error=errors.append)))
    assert labels(got) == list(range(5)) + list(range(10, 15))
    assert len(errors) == 1 and isinstance(errors[0], ChecksumError) and errors[0].shard == three_shards[1].url


def test_a_small_shard_without_a_recorded_size_is_verified_first_too(three_shards):
    damage(three_shards[0].url)
    ds = Dataset[Item]([s.url for s in three_shards], checksums={s.url: s.sha256 for s in three_shards}, on_error="skip")
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        assert labels(bounded(lambda: list(ds))) == list(range(5, 15))


def test_a_large_shard_that_fails_verification_raises_even_under_skip(three_shards, monkeypatch):
    monkeypatch.setenv("ATDATA_SHARDS_VERIFY_BUFFER_BYTES", "1000")  # every shard streams
    damage(three_shards[1].url)
    got = []

    def consume():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not a warning: an error
            for sample in Dataset[Item](three_shards, on_error="skip"):
                got.append(sample)

    with pytest.raises(ChecksumError, match=r"s-001\.tar.*5 of its samples were yielded.*verify_buffer_bytes"):
        bounded(consume)
    assert labels(got) == list(range(10))
    # an intact large shard streams and verifies
    assert labels(bounded(lambda: list(Dataset[Item](three_shards[2:])))) == list(range(10, 15))


def test_trailing_bytes_within_the_limit_are_verified(tmp_path, three_shards):
    import hashlib

    path = three_shards[0].url
    data = open(path, "rb").read() + bytes(300_000)  # a writer padding generously
    open(path, "wb").write(data)
    digest = hashlib.sha256(data).hexdigest()
    for buffered in (64 << 20, 0):  # read whole, and streamed
        limits = ShardLimits(verify_buffer_bytes=buffered)
        with open(path, "rb") as f:
            got = bounded(lambda: list(iter_samples(f, Item.from_map, shard=path, checksum=digest, limits=limits)))
        assert labels(got) == list(range(5))


def test_hashing_reader_drain_is_bounded():
    reader = HashingReader(Endless())
    with pytest.raises(ShardError, match="end-of-archive"):
        bounded(reader.verify, "0" * 64, shard="endless.tar")


# --------------------------------------------------------------------------- sample bytes


def array_bytes(dtype: bytes, shape, payload=b""):
    return bytes((len(dtype),)) + dtype + bytes((len(shape),)) + struct.pack(f"<{len(shape)}q", *shape) + payload


def npy_bytes(header_text: bytes, payload=b"", version=1):
    text = header_text + b" " * (-(len(header_text) + 11) % 64) + b"\n"
    if version == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text + payload


HOSTILE_ARRAYS = {
    "V0 with a huge shape": array_bytes(b"|V0", (1 << 62, 1 << 62)),
    "S0 with a huge shape": array_bytes(b"|S0", (1 << 40,)),
    "U0": array_bytes(b"<U0", (5,)),
    "object dtype": array_bytes(b"|O", (1,), bytes(8)),
    "structured dtype": array_bytes(b"<i4,<i4", (1,), bytes(8)),
    "sub-array dtype": array_bytes(b"(3,)<i4", (1,), bytes(12)),
    "unknown dtype": array_bytes(b"<q9", (1,), bytes(8)),
    "non-ASCII dtype": array_bytes(b"<f\xff", (1,), bytes(4)),
    "negative dimension": array_bytes(b"<f4", (-1,), bytes(4)),
    "overflowing shape": array_bytes(b"|u1", (1 << 62, 1 << 62, 4)),
    "zero beside huge dimensions": array_bytes(b"<f8", (0, 1 << 62, 1 << 62)),
    "data shorter than the shape": array_bytes(b"<f4", (4,), bytes(12)),
    "data longer than the shape": array_bytes(b"<f4", (2,), bytes(12)),
    "too many dimensions": bytes((3,)) + b"<f4" + bytes((200,)) + bytes(64),
    "truncated header": bytes((3,)) + b"<f4" + bytes((2,)) + bytes(5),
    "empty": b"",
    "npy negative shape": npy_bytes(b"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", bytes(4)),
    "npy float shape": npy_bytes(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }", bytes(4)),
    "npy bool shape": npy_bytes(b"{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }", bytes(4)),
    "npy list shape": npy_bytes(b"{'descr': '<f4', 'fortran_order': False, 'shape': [1], }", bytes(4)),
    "npy object dtype": npy_bytes(b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", bytes(8)),
    "npy structured dtype": npy_bytes(b"{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }", bytes(4)),
    "npy V0 huge shape": npy_bytes(b"{'descr': '|V0', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }"),
    "npy not a dict": npy_bytes(b"[1, 2, 3]"),
    "npy missing keys": npy_bytes(b"{'descr': '<f4'}"),
    "npy fortran_order not a bool": npy_bytes(b"{'descr': '<f4', 'fortran_order': 'yes', 'shape': (1,), }", bytes(4)),
    "npy code in the header": npy_bytes(b"__import__('os').system('true')"),
    "npy header deeply nested": npy_bytes(b"(" * 5000 + b")" * 5000, version=2),
    "npy header length beyond the value": b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 31) + b"{}",
    "npy unknown version": b"\x93NUMPY\x09\x00" + bytes(20),
    "npy data short": npy_bytes(b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", bytes(4)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ARRAYS))
def test_hostile_array_bytes_are_sample_decode_errors(case):
    value = HOSTILE_ARRAYS[case]
    with pytest.raises(SampleDecodeError):
        bounded(decode_ndarray, value)
    bounded(looks_like_ndarray, value)  # never raises
    payload = pack_map({"image": value, "label": "x", "value": 1.0})
    error = assert_skipped_around(member(b"0000000001.msgpack", payload))
    assert "Item.image" in str(error)
    # read without a class, bytes that look like an array are decoded or refused, never a traceback
    got = read(good_member(0) + member(b"0000000001.msgpack", payload) + END, DictSample.from_map, on_error=lambda e: None)
    assert len(got) in (1, 2)


HOSTILE_PAYLOADS = {
    "not msgpack": b"\xc1",
    "truncated map": b"\x82\xa1a",
    "a list": msgpack.packb([1, 2, 3]),
    "an int": msgpack.packb(5),
    "a string": msgpack.packb("label"),
    "nil": msgpack.packb(None),
    "empty": b"",
    "trailing bytes": pack_map({"label": "x"}) + b"\x00",
    "huge declared length": b"\xdb\xff\xff\xff\xff",
    "huge declared map": b"\xdf\xff\xff\xff\xff",
    "unhashable key": b"\x81\x91\x01\x01",
    "bad timestamp extension": b"\x81\xa5label\xd6\xff\x00",
    "invalid utf-8 string": b"\x81\xa5label\xa2\xff\xfe",
    "non-string keys": msgpack.packb({1: "a", 2: "b"}),
    "deeply nested": b"\x81\xa5label" + b"\x91" * 5000 + b"\xc0",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PAYLOADS))
def test_hostile_payloads_are_sample_decode_errors(case):
    bad = member(b"0000000001.msgpack", HOSTILE_PAYLOADS[case])
    error = assert_skipped_around(bad)
    assert isinstance(error, SampleDecodeError)
    # under "raise" the same error names shard and member
    with pytest.raises(SampleDecodeError, match=r"hostile\.tar, member 0000000001\.msgpack"):
        read(bad + END)
    # without a class: decoded or refused, never another exception
    got = read(bad + END, DictSample.from_map, on_error=lambda e: None)
    assert len(got) <= 1


@pytest.mark.parametrize("depth", [900, 1000, 5000])
def test_deep_nesting_read_without_a_class_is_a_sample_decode_error(depth):
    # msgpack refuses more than 1024 levels; below that, Python's own stack may end first
    payload = b"\x81\xa5label" + b"\x91" * depth + b"\xc0"
    try:
        bounded(DictSample.from_bytes, payload)
    except SampleDecodeError as exc:
        assert "nested too deeply" in str(exc) or "msgpack" in str(exc)


def test_hostile_payloads_are_skipped_with_a_warning():
    data = good_member(0) + member(b"0000000001.msgpack", b"\xc1") + good_member(2) + END
    with pytest.warns(UserWarning, match=r"skipping: .*hostile\.tar, member 0000000001\.msgpack"):
        got = read(data, on_error="skip")
    assert [s.label for s in got] == ["item-0", "item-2"]


def typed_map(**changes):
    base = {
        "text": "a",
        "count": 1,
        "flag": True,
        "ratio": 0.5,
        "blob": b"x",
        "words": ["a", "b"],
        "scores": {"a": 1},
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("text", 12345, "Typed.text: expected str, found int 12345"),
        ("text", b"bytes", "Typed.text: expected str, found bytes"),
        ("count", "12", "Typed.count: expected int, found str"),
        ("count", True, "Typed.count: expected int, found bool"),
        ("count", 1.0, "Typed.count: expected int, found float"),
        ("flag", 1, "Typed.flag: expected bool, found int"),
        ("ratio", True, r"Typed.ratio: expected float \(or int\), found bool"),
        ("ratio", "0.5", "Typed.ratio: expected float"),
        ("blob", "x", "Typed.blob: expected bytes, found str"),
        ("words", "ab", "Typed.words: expected a list, found str"),
        ("words", ["a", 2], "Typed.words: item 1: expected str, found int"),
        ("scores", [1], "Typed.scores: expected a map, found list"),
        ("scores", {"a": "1"}, "Typed.scores: key 'a': expected int, found str"),
        ("scores", {1: 1}, "Typed.scores: map keys must be strings"),
        ("maybe", 5, "Typed.maybe: expected str, found int"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_field(field, value, message):
    payload = pack_map(typed_map(**{field: value}))
    with pytest.raises(SampleDecodeError, match=message):
        Typed.from_bytes(payload)
    with pytest.raises(SampleDecodeError, match=r"hostile\.tar, member 0000000000\.msgpack: " + message):
        read(member(b"0000000000.msgpack", payload) + END, Typed.from_map)


def test_documented_coercions_are_accepted():
    sample = Typed.from_bytes(pack_map(typed_map(ratio=2, maybe=None)))
    assert sample.ratio == 2.0 and type(sample.ratio) is float and sample.maybe is None
    # maps built in Python may hold numpy scalars
    sample = Typed.from_map(typed_map(count=np.int64(3), ratio=np.float32(0.5), flag=np.bool_(False), text=np.str_("t")))
    assert (sample.count, sample.ratio, sample.flag, sample.text) == (3, 0.5, False, "t")
    assert type(sample.count) is int and type(sample.flag) is bool


def test_a_nested_sample_that_is_not_a_map_names_its_path():
    @atdata_core.packable
    class Inner:
        name: str

    @atdata_core.packable
    class Outer:
        inner: Inner

    with pytest.raises(SampleDecodeError, match="Outer.inner: Inner: expected a map, found int"):
        Outer.from_bytes(pack_map({"inner": 5}))
    with pytest.raises(SampleDecodeError, match="Outer.inner: Inner.name: expected str, found int"):
        Outer.from_bytes(pack_map({"inner": {"name": 5}}))


def test_a_post_init_that_refuses_a_value_is_a_sample_decode_error():
    @atdata_core.packable
    class Checked:
        label: str

        def __post_init__(self):
            if not self.label:
                raise ValueError("label must not be empty")

    data = member(b"0000000000.msgpack", pack_map({"label": ""})) + END
    with pytest.raises(SampleDecodeError, match="label must not be empty"):
        read(data, Checked.from_map)


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "shard",
    [
        member(b"././@PaxHeader", b"0 ", b"x") + good_member(0) + END,
        header(size_field=b"\x80" + (64 << 30).to_bytes(11, "big")) + END,
        member(b"0000000000.msgpack", pack_map({"image": HOSTILE_ARRAYS["V0 with a huge shape"], "label": "x", "value": 1.0})) + END,
        member(b"0000000000.msgpack", pack_map({"image": HOSTILE_ARRAYS["npy float shape"], "label": "x", "value": 1.0})) + END,
        member(b"0000000000.msgpack", b"\xc1") + END,
        member(b"0000000000.msgpack", b"\x81\xa5label" + b"\x91" * 5000 + b"\xc0") + END,
    ],
    ids=["pax", "64GiB", "V0", "npy", "msgpack", "nested"],
)
@pytest.mark.parametrize("command", ["inspect", "preview"])
def test_the_cli_reports_a_hostile_shard_in_one_line(tmp_path, shard, command, request):
    shard_kind = request.node.callspec.id.split("-")[-1]
    path = tmp_path / "bad.tar"
    path.write_bytes(shard)
    result = bounded(CliRunner().invoke, cli, [command, str(path)])
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        # read without a class, bytes that are no valid array stay bytes: nothing to refuse
        assert shard_kind in ("V0", "nested"), result.output
        return
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "bad.tar" in lines[0], result.output


# --------------------------------------------------------------------------- properties


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _valid_shard():
    buf = bytearray()
    for i in range(3):
        buf += good_member(i)
    buf += member(b"././@PaxHeader", pax_record(b"path", b"%010d.msgpack" % 3), b"x")
    buf += good_member(3)
    return bytes(buf + END)


VALID_SHARD = _valid_shard()


def _read_all_members(data):
    try:
        for _name, _data in iter_members(io.BytesIO(data), shard="fuzz.tar", max_member_bytes=1 << 20):
            pass
    except AtdataError:
        pass


def _read_all_samples(data):
    for decode in (Item.from_map, DictSample.from_map):
        try:
            list(iter_samples(io.BytesIO(data), decode, shard="fuzz.tar"))
        except AtdataError:
            pass


def _with_header_checksum(block: bytes) -> bytes:
    h = bytearray(block.ljust(512, b"\0")[:512])
    h[148:156] = b"        "
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


mutations = st.lists(st.tuples(st.integers(0, len(VALID_SHARD) - 1), st.integers(0, 255)), max_size=8)


@st.composite
def tar_like(draw):
    """Bytes a tar reader meets: a valid shard with bytes changed, cut or extended, headers re-summed."""
    data = bytearray(VALID_SHARD)
    for pos, value in draw(mutations):
        data[pos] = value
    if draw(st.booleans()):
        for start in range(0, len(data) - 511, 512):
            if data[start + 257 : start + 262] == b"ustar" or draw(st.integers(0, 9)) == 0:
                data[start : start + 512] = _with_header_checksum(bytes(data[start : start + 512]))
    cut = draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))
    tail = draw(st.binary(max_size=600))
    return bytes(data[:cut]) + tail


@st.composite
def hostile_headers(draw):
    """A header whose fields are random but whose checksum is right, then random member bytes."""
    kind = draw(st.sampled_from([b"0", b"\0", b"x", b"g", b"L", b"K", b"5", b"1", b"7", b"S", b"Z"]))
    size_field = draw(st.one_of(st.binary(min_size=12, max_size=12), st.integers(0, 4096).map(lambda n: b"%011o\0" % n)))
    h = header(draw(st.binary(max_size=100)), kind=kind, size_field=size_field)
    if kind == b"x":
        body = draw(st.one_of(st.binary(max_size=300), st.from_regex(rb"\A([0-9]{1,3} [a-z]{0,5}=[\x00-\xff]{0,20}\n){1,4}\Z")))
    else:
        body = draw(st.binary(max_size=1200))
    return h + body + draw(st.sampled_from([b"", END, good_member(9) + END]))


@pytest.mark.parametrize("strategy", [st.binary(max_size=3000), tar_like(), hostile_headers()], ids=["bytes", "mutated", "headers"])
def test_property_any_bytes_read_as_members_or_an_atdata_error(strategy):
    @PROPERTY_SETTINGS
    @given(strategy)
    def check(data):
        _read_all_members(data)
        _read_all_samples(data)

    bounded(check)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.floats() | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def array_like(draw):
    """Bytes shaped like an NDArray value: a dtype string, dimensions and a payload, each possibly wrong."""
    dtype = draw(st.one_of(
        st.sampled_from([b"<f4", b"|u1", b">i8", b"|V0", b"|S0", b"<U2", b"|O", b"<i4,<i4", b"(2,)<f4", b"|b1", b"<M8[s]", b"|V3"]),
        st.binary(max_size=12),
    ))
    dims = draw(st.lists(st.one_of(st.integers(0, 4), st.integers(-(1 << 63), (1 << 63) - 1)), max_size=4))
    payload = draw(st.binary(max_size=64))
    return array_bytes(dtype, dims, payload)


@st.composite
def npy_like(draw):
    descr = draw(st.sampled_from(["'<f4'", "'|O'", "'|V0'", "[('a', '<i4')]", "'<U0'", "1", "'x'"]))
    shape = draw(st.lists(st.one_of(st.integers(-3, 1 << 62), st.floats(allow_nan=False), st.booleans()), max_size=3))
    fortran = draw(st.sampled_from(["False", "True", "0", "'x'"]))
    text = "{'descr': %s, 'fortran_order': %s, 'shape': (%s), }" % (descr, fortran, "".join(f"{d!r}, " for d in shape))
    return npy_bytes(text.encode(), draw(st.binary(max_size=64)), version=draw(st.sampled_from([1, 2])))


def _decode_all_ways(payload: bytes) -> None:
    for decode in (Item.from_bytes, Typed.from_bytes, DictSample.from_bytes):
        try:
            decode(payload)
        except SampleDecodeError:
            pass


@pytest.mark.parametrize(
    "strategy",
    [
        st.binary(max_size=200),
        st.dictionaries(st.sampled_from(["image", "label", "value", "text", "count", "flag", "ratio", "blob", "words", "scores"]), msgpack_values).map(pack_map),
        st.builds(lambda image, label, value: pack_map({"image": image, "label": label, "value": value}), st.one_of(array_like(), npy_like()), msgpack_values, msgpack_values),
    ],
    ids=["bytes", "maps", "arrays"],
)
def test_property_any_sample_bytes_decode_or_raise_sample_decode_error(strategy):
    @PROPERTY_SETTINGS
    @given(strategy)
    def check(payload):
        _decode_all_ways(payload)

    bounded(check)


def test_property_array_values_decode_or_raise_sample_decode_error():
    @PROPERTY_SETTINGS
    @given(st.one_of(array_like(), npy_like(), st.binary(max_size=80)))
    def check(value):
        try:
            array = decode_ndarray(value)
        except SampleDecodeError:
            assert not looks_like_ndarray(value) or value[:6] == b"\x93NUMPY"
            return
        assert isinstance(array, np.ndarray) and not array.dtype.hasobject
        assert np.array_equal(decode_ndarray(encode_ndarray(array)), array, equal_nan=array.dtype.kind in "fc")

    bounded(check)
