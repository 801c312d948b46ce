"""Tar shards: the writer's rollover, crash safety and checksums; the reader's errors."""

import hashlib
import io
import os
import tarfile
import warnings

import msgpack
import numpy as np
import pytest

import atdata_core
from atdata_core.errors import ChecksumError, SampleDecodeError, ShardError
from atdata_core.sample import DictSample
from atdata_core.shards import ShardWriter, iter_members, iter_samples, split_member_name


@atdata_core.packable
class Item:
    image: np.ndarray
    label: str
    value: float


def items(n, start=0):
    for i in range(start, start + n):
        yield Item(np.full((2, 3), i, dtype=np.int32), f"item-{i}", i / 2)


def read_all(path, **kwargs):
    with open(path, "rb") as f:
        return list(iter_samples(f, Item.from_map, shard=str(path), **kwargs))


def test_rollover_by_count_and_reported_shard_facts(tmp_path):
    with ShardWriter(tmp_path / "d-%04d.tar", maxcount=4) as sink:
        for item in items(10):
            sink.write(item)
    assert [s.count for s in sink.shards] == [4, 4, 2]
    assert [os.path.basename(s.url) for s in sink.shards] == ["d-0000.tar", "d-0001.tar", "d-0002.tar"]
    for info in sink.shards:
        data = open(info.url, "rb").read()
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
    labels = [s.label for info in sink.shards for s in read_all(info.url)]
    assert labels == [f"item-{i}" for i in range(10)]


def test_rollover_by_size(tmp_path):
    with ShardWriter(str(tmp_path / "d-{shard:03d}.tar"), maxcount=1000, maxsize=4096) as sink:
        for item in items(12):
            sink.write(item)
    assert len(sink.shards) > 1
    assert sum(s.count for s in sink.shards) == 12
    # only a shard holding a single oversized member may exceed maxsize; none here
    assert all(s.size <= 4096 + 10240 for s in sink.shards)


def test_standard_tools_read_our_shards(tmp_path):
    with ShardWriter(tmp_path / "d-%02d.tar") as sink:
        sink.write(next(items(1)), key="sample_a")
    with tarfile.open(sink.shards[0].url) as tar:
        assert tar.getnames() == ["sample_a.msgpack"]
        payload = tar.extractfile("sample_a.msgpack").read()
    assert msgpack.unpackb(payload)["label"] == "item-0"


def test_long_keys_use_a_pax_header(tmp_path):
    key = "deep/" + "k" * 150
    with ShardWriter(tmp_path / "d-%02d.tar") as sink:
        sink.write(next(items(1)), key=key)
    with tarfile.open(sink.shards[0].url) as tar:
        assert tar.getnames() == [key + ".msgpack"]
    with open(sink.shards[0].url, "rb") as f:
        assert [name for name, _ in iter_members(f)] == [key + ".msgpack"]


def test_keys_must_be_unique_and_dot_free(tmp_path):
    with ShardWriter(tmp_path / "d-%02d.tar") as sink:
        sink.write(next(items(1)), key="a")
        with pytest.raises(ValueError, match="duplicate sample key 'a'"):
            sink.write(next(items(1)), key="a")
        with pytest.raises(ValueError, match="contains '.'"):
            sink.write(next(items(1)), key="a.b")


def test_a_crash_leaves_no_half_shard_under_a_final_name(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "d-%02d.tar", maxcount=3) as sink:
            for i, item in enumerate(items(5)):
                sink.write(item)
                if i == 4:
                    raise RuntimeError("crash")
    assert sorted(os.listdir(tmp_path)) == ["d-00.tar"]
    assert len(read_all(tmp_path / "d-00.tar")) == 3


def test_pattern_without_a_number_refuses_to_overwrite(tmp_path):
    sink = ShardWriter(tmp_path / "single.tar", maxcount=2)
    sink.write(next(items(1)))
    sink.write(next(items(1, 1)))
    with pytest.raises(ValueError, match="no shard number"):
        sink.write(next(items(1, 2)))
    sink.close()
    assert len(read_all(tmp_path / "single.tar")) == 2


def test_dicts_and_dict_samples_can_be_written(tmp_path):
    with ShardWriter(tmp_path / "d-%02d.tar") as sink:
        sink.write({"a": 1, "arr": np.arange(3)})
        sink.write(DictSample(a=2))
    with open(sink.shards[0].url, "rb") as f:
        out = list(iter_samples(f))
    assert out[0].a == 1 and out[0].arr.tolist() == [0, 1, 2] and out[1].a == 2


def test_other_members_of_a_key_are_ignored(tmp_path):
    path = tmp_path / "mixed.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in [("k1.msgpack", next(items(1)).to_bytes()), ("k1.jpg", b"jpeg"), ("dir/k2.txt", b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert [s.label for s in read_all(path)] == ["item-0"]


def test_split_member_name():
    assert split_member_name("a/b/key.seg.msgpack") == ("a/b/key", "seg.msgpack")
    assert split_member_name("x.y/key") == ("x.y/key", "")


@pytest.fixture
def shard(tmp_path):
    with ShardWriter(tmp_path / "d-%02d.tar") as sink:
        for item in items(5):
            sink.write(item)
    return sink.shards[0]


def test_checksum_is_verified_while_streaming(shard):
    assert len(read_all(shard.url, checksum=shard.sha256)) == 5
    with pytest.raises(ChecksumError, match=r"shard .*d-00\.tar: sha256 mismatch"):
        read_all(shard.url, checksum="0" * 64)


def test_truncated_shard_names_shard_and_member(shard):
    data = open(shard.url, "rb").read()
    cut = shard.url + ".cut"
    open(cut, "wb").write(data[:2000])
    with pytest.raises(ShardError, match=r"d-00\.tar\.cut, member 0000000001\.msgpack: truncated"):
        read_all(cut)


def test_missing_end_marker_is_truncation(shard):
    data = open(shard.url, "rb").read()
    cut = shard.url + ".cut"
    # keep exactly two whole members: 512 header + 512 payload block each
    open(cut, "wb").write(data[:2048])
    with pytest.raises(ShardError, match="end-of-archive"):
        read_all(cut)


def test_corrupt_header_is_detected(shard):
    data = bytearray(open(shard.url, "rb").read())
    data[1024 + 130] ^= 0x07  # a size digit of the second header
    bad = shard.url + ".bad"
    open(bad, "wb").write(bytes(data))
    with pytest.raises(ShardError, match="corrupt tar header at byte 1024"):
        read_all(bad)


def test_not_a_tar_at_all(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(b"hello" * 200)
    with pytest.raises(ShardError, match="x.tar"):
        read_all(path)


def write_raw_members(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_samples_raise_with_location_or_are_skipped(tmp_path):
    good = [next(items(1, i)).to_bytes() for i in range(3)]
    path = tmp_path / "bad.tar"
    write_raw_members(
        path,
        [
            ("a.msgpack", good[0]),
            ("b.msgpack", b"\xc1 not msgpack"),
            ("c.msgpack", msgpack.packb({"label": "no image"})),
            ("d.msgpack", good[2]),
        ],
    )
    with pytest.raises(SampleDecodeError, match=r"bad\.tar, member b\.msgpack: not valid msgpack"):
        read_all(path)
    with pytest.warns(UserWarning) as caught:
        out = read_all(path, on_error="skip")
    assert [s.label for s in out] == ["item-0", "item-2"]
    messages = [str(w.message) for w in caught]
    assert any("b.msgpack" in m for m in messages)
    assert any("c.msgpack" in m and "missing required field 'image'" in m for m in messages)
    seen = []
    out = read_all(path, on_error=seen.append)
    assert len(out) == 2 and [e.member for e in seen] == ["b.msgpack", "c.msgpack"]


def test_skip_policy_also_covers_a_truncated_shard(shard):
    data = open(shard.url, "rb").read()
    cut = shard.url + ".cut"
    open(cut, "wb").write(data[:3000])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read_all(cut, on_error="skip")
    assert [s.label for s in out] == ["item-0", "item-1"]
    assert "truncated" in str(caught[0].message)


class _FailingStore:
    """A storage backend whose uploads fail: a fault no real store shows on demand."""

    def put(self, local_path, url):
        raise OSError("bucket is read-only")


class _FailingPlugin:
    from atdata_core.plugins import hookimpl

    @hookimpl
    def atdata_storage_backends(self):
        from atdata_core.plugins import StorageBackendSpec

        return [StorageBackendSpec(name="failing", schemes=("failing",), factory=lambda config: _FailingStore())]


def test_a_failed_upload_keeps_the_shard_bytes_and_says_where(tmp_path):
    from atdata_core.plugins import plugin_registered

    with plugin_registered(_FailingPlugin(), name="failing-store"):
        sink = ShardWriter("failing://bucket/d-%02d.tar")
        sink.write(next(items(1)))
        with pytest.raises(ShardError, match=r"bucket is read-only.*kept at (\S+\.tar)") as caught:
            sink.close()
    kept = caught.value.reason.rsplit("kept at ", 1)[1]
    try:
        with open(kept, "rb") as f:
            assert [s.label for s in iter_samples(f, Item.from_map)] == ["item-0"]
    finally:
        os.unlink(kept)


# -- shards served from another URL -------------------------------------------


def test_base_url_names_shards_by_the_url_they_will_be_served_from(tmp_path):
    folder = tmp_path / "site root"
    with ShardWriter(folder / "d-%04d.tar", maxcount=4, base_url="https://data.example.org/sets/") as sink:
        for item in items(6):
            sink.write(item)
    assert [s.url for s in sink.shards] == [
        "https://data.example.org/sets/d-0000.tar",
        "https://data.example.org/sets/d-0001.tar",
    ]
    # The bytes are where the pattern said, and what the ShardInfo describes.
    assert [s.path for s in sink.shards] == [str(folder / "d-0000.tar"), str(folder / "d-0001.tar")]
    for info in sink.shards:
        data = open(info.path, "rb").read()
        assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert [s.label for s in read_all(sink.shards[1].path)] == ["item-4", "item-5"]


def test_base_url_percent_encodes_local_file_names(tmp_path):
    from urllib.parse import quote

    pattern = f"file://{quote(str(tmp_path))}/with%20space-{{shard:02d}}.tar"
    with ShardWriter(pattern, base_url="https://host/x") as sink:
        sink.write(next(items(1)))
    [info] = sink.shards
    assert info.url == "https://host/x/with%20space-00.tar"
    assert info.path == str(tmp_path / "with space-00.tar")  # a file:// pattern is a local path, decoded
    assert os.path.isfile(info.path)


def test_without_base_url_the_url_is_where_the_shard_was_written(tmp_path):
    with ShardWriter(tmp_path / "d-%02d.tar") as sink:
        sink.write(next(items(1)))
    assert sink.shards[0].url == sink.shards[0].path == str(tmp_path / "d-00.tar")


def test_base_url_must_be_a_url(tmp_path):
    for wrong in ["served/data", "/var/www/data", "https://", "https://host/data?sig=1"]:
        with pytest.raises(ValueError, match="base_url"):
            ShardWriter(tmp_path / "d-%02d.tar", base_url=wrong)


def test_shards_written_with_base_url_publish_with_their_public_urls(tmp_path):
    from atdata_core.storage import storage_record_for

    with ShardWriter(tmp_path / "d-%02d.tar", base_url="https://host/data") as sink:
        sink.write(next(items(1)))
    record = storage_record_for(sink.shards)
    assert record["shards"] == [
        {"url": "https://host/data/d-00.tar", "checksum": {"algorithm": "sha256", "digest": sink.shards[0].sha256}}
    ]


def test_shard_limits_default_to_the_configuration_defaults():
    import dataclasses

    from atdata_core.config import DEFAULTS, Config
    from atdata_core.shards import ShardLimits

    assert DEFAULTS["shards"] == dataclasses.asdict(ShardLimits())
    assert ShardLimits.from_config(Config({})) == ShardLimits()
    assert ShardLimits.from_config(Config({"shards": {"verify_buffer_bytes": 0}})).verify_buffer_bytes == 0
    with pytest.raises(ValueError, match="max_member_bytes"):
        ShardLimits(max_member_bytes=-1)


def test_a_checksummed_shard_is_verified_before_its_first_sample(shard):
    from atdata_core.shards import ShardLimits

    data = bytearray(open(shard.url, "rb").read())
    data[-3000] ^= 1  # in the archive's padding: every sample still reads
    seen = []
    with pytest.raises(ChecksumError):
        for sample in iter_samples(io.BytesIO(bytes(data)), Item.from_map, checksum=shard.sha256):
            seen.append(sample)
    assert seen == []
    # streamed (verify_buffer_bytes=0), the samples come first and the error names them
    limits = ShardLimits(verify_buffer_bytes=0)
    with pytest.raises(ChecksumError, match="5 of its samples were yielded"):
        for sample in iter_samples(
            io.BytesIO(bytes(data)), Item.from_map, checksum=shard.sha256, on_error="skip", limits=limits
        ):
            seen.append(sample)
    assert len(seen) == 5


# -- reading: buffers, threads, large members -----------------------------------------


def _reading_threads():
    import threading

    return [t for t in threading.enumerate() if t.name in ("atdata-shard-read", "atdata-shard-sha256", "atdata-shard-fetch")]


def test_http_shards_are_read_ahead_and_a_reader_that_stops_leaves_no_thread(tmp_path, shard_server):
    import shutil

    from atdata_core import Dataset

    folder, base = shard_server
    with ShardWriter(tmp_path / "d-%02d.tar", maxcount=500) as sink:  # two shards of 20 MB
        for i in range(1000):
            sink.write(Item(np.full((100, 100), i, dtype=np.int32), f"item-{i}", i / 2))
    for info in sink.shards:
        shutil.copy(info.url, folder / os.path.basename(info.url))
    urls = [f"{base}/{os.path.basename(info.url)}" for info in sink.shards]
    assert [s.label for s in Dataset[Item](urls)] == [f"item-{i}" for i in range(1000)]
    pipe = iter(Dataset[Item](urls))
    assert next(pipe).label == "item-0" and _reading_threads()  # the download goes on beside the decoding
    pipe.close()
    assert not _reading_threads()
    # verified: read whole and hashed (on the hashing thread) before any sample
    verified = Dataset[Item](shards=[(url, info.sha256) for url, info in zip(urls, sink.shards)])
    assert len(list(verified)) == 1000 and not _reading_threads()


def test_a_large_members_array_is_a_read_only_view_that_outlives_the_reader(tmp_path):
    from atdata_core import Dataset
    from atdata_core.codec import LARGE_MEMBER

    big = np.arange(LARGE_MEMBER // 4 + 1000, dtype="<f4")
    with ShardWriter(tmp_path / "big-%02d.tar") as sink:
        for i in range(3):
            sink.write(Item(big + i, f"big-{i}", float(i)))
    kept = list(Dataset[Item](sink.shards))  # verified, then decoded without copying the arrays
    for i, sample in enumerate(kept):
        assert not sample.image.flags.writeable and not sample.image.flags.owndata
        assert np.array_equal(sample.image, big + i)
    with open(sink.shards[0].url, "rb") as f:
        streamed = [s.image for s in iter_samples(f, Item.from_map)]
    assert all(np.array_equal(a, big + i) for i, a in enumerate(streamed))
    with pytest.raises(ValueError):
        streamed[0][0] = 1  # read-only: a view of the bytes read for its member, which nothing rewrites
