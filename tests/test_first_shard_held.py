"""A batched read decodes its first shard into columns while the shard is read and hashed, and holds
every batch of it back until the checksum matched: nothing of a shard that fails is handed out, and
no code of the sample's author runs on bytes not yet verified."""

import dataclasses
import hashlib

import numpy as np
import pytest

from atdata_core import Dataset, ShardWriter, packable, shards
from atdata_core.errors import ChecksumError, ShardError

from .test_fetch_ahead import Row, _wait_for_no_threads, _write


def _tamper(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "sample":
        at = data.index(b"row-7")
        data[at : at + 5] = b"row-X"  # still a sample that decodes: only the checksum tells
    elif how == "header":
        data[0] ^= 1  # the first member's header: the shard no longer scans either
    else:  # truncated: the recorded size and checksum no longer match the file
        del data[len(data) // 2 :]
    open(path, "wb").write(bytes(data))


def _names(infos, cls=Row, **kwargs):
    """Every sample name a batched read hands out, in order."""
    return [row.name for batch in Dataset[cls](infos, **kwargs).ordered(batch_size=16) for row in batch]


@pytest.mark.parametrize("how", ["sample", "header", "truncated"])
def test_a_tampered_single_shard_yields_no_batch_and_names_the_shard(tmp_path, how):
    [info] = _write(tmp_path, shards=1)
    _tamper(info.url, how)
    seen = []
    with pytest.raises(ChecksumError) as caught:
        for batch in Dataset[Row]([info]).ordered(batch_size=16):
            seen.append(batch)
    assert info.url in str(caught.value)
    assert seen == []
    assert not _wait_for_no_threads()


@pytest.mark.parametrize("how", ["sample", "header"])
def test_a_tampered_first_shard_is_skipped_whole_and_the_next_ones_are_read(tmp_path, how):
    infos = _write(tmp_path, shards=3)
    _tamper(infos[0].url, how)
    with pytest.warns(UserWarning, match="d-00.tar"):
        names = _names(infos, on_error="skip")
    assert names == [f"row-{i}" for i in range(50, 150)]


@pytest.mark.parametrize("count", [1, 3])
def test_a_good_first_shard_yields_every_sample_every_epoch(tmp_path, count):
    infos = _write(tmp_path, shards=count)
    expected = [f"row-{i}" for i in range(50 * count)]
    assert _names(infos) == expected
    batches = list(Dataset[Row](infos).ordered(batch_size=16, epochs=2))
    assert [len(batch) for batch in batches[:3]] == [16, 16, 16]  # batches run on across shards
    assert [row.name for batch in batches for row in batch] == expected * 2
    assert batches[0].values.shape == (16, 256)
    assert not _wait_for_no_threads()


def test_a_reader_that_stops_in_the_first_shard_leaves_no_thread(tmp_path):
    infos = _write(tmp_path, shards=3)
    pipe = iter(Dataset[Row](infos).ordered(batch_size=16))
    next(pipe)
    pipe.close()
    assert not _wait_for_no_threads()


def test_the_publishers_malformed_shard_yields_what_precedes_the_fault_then_says_so(tmp_path):
    [info] = _write(tmp_path, shards=1)
    data = bytearray(open(info.url, "rb").read())
    at = data.index(b"row-20")  # into the payload of member 20
    at = data.rindex(b"ustar", 0, at) - 257  # ...its header
    data[at + 148 : at + 156] = b"0000000\0"  # a wrong header checksum
    open(info.url, "wb").write(bytes(data))
    published = dataclasses.replace(info, sha256=hashlib.sha256(bytes(data)).hexdigest())
    errors = []
    names = _names([published], on_error=errors.append)
    assert names == [f"row-{i}" for i in range(20)]
    assert len(errors) == 1 and isinstance(errors[0], ShardError) and not isinstance(errors[0], ChecksumError)
    assert errors[0].shard == info.url


SEEN_BY_AUTHOR: list[str] = []


@packable
class Watched:
    values: np.ndarray
    name: str

    def __post_init__(self):
        SEEN_BY_AUTHOR.append(self.name)


@packable
class Inner:
    name: str

    def __post_init__(self):
        SEEN_BY_AUTHOR.append(self.name)


@packable
class Outer:
    inner: Inner
    name: str


def _write_outer(folder):
    with ShardWriter(folder / "o-%02d.tar", maxcount=50) as sink:
        for i in range(100):
            sink.write(Outer(Inner(f"row-{i}"), f"row-{i}"))
    return sink.shards


@pytest.mark.parametrize("cls", [Watched, Outer])
def test_no_code_of_the_samples_author_runs_on_a_shard_that_fails_its_checksum(tmp_path, cls):
    infos = _write(tmp_path, shards=2) if cls is Watched else _write_outer(tmp_path)
    SEEN_BY_AUTHOR.clear()
    _tamper(infos[0].url, "sample")
    with pytest.warns(UserWarning, match=infos[0].url.rsplit("/", 1)[-1]):
        names = _names(infos, cls, on_error="skip")
    assert names == [f"row-{i}" for i in range(50, 100)]
    assert "row-X" not in SEEN_BY_AUTHOR
    assert SEEN_BY_AUTHOR[0] == "row-50"


def test_only_the_first_shard_of_a_batched_read_of_plain_fields_is_held(tmp_path, monkeypatch):
    held = []
    real = shards._members_while_hashed

    def counted(stream, shard, *args):
        held.append(shard)
        return real(stream, shard, *args)

    monkeypatch.setattr(shards, "_members_while_hashed", counted)
    infos = _write(tmp_path, shards=3)
    assert len(_names(infos)) == 150
    assert held == [infos[0].url]
    held.clear()
    assert len([row for row in Dataset[Row](infos)]) == 150  # one sample at a time: verified before use
    assert len(_names(infos, Watched)) == 150  # built sample by sample: verified before use
    assert held == []
