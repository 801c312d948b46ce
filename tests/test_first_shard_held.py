"""The first shard of a read, verified before use, is decoded while it is hashed: nothing of it may be
handed out before its checksum matched, and a shard that fails yields nothing, as before."""

import numpy as np
import pytest

from atdata_core import Dataset, _pipeline, packable
from atdata_core.errors import ChecksumError, SampleDecodeError

from .test_fetch_ahead import Row, _wait_for_no_threads, _write


def _tamper(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "sample":
        at = data.index(b"row-7")
        data[at : at + 5] = b"row-X"  # still a sample that decodes: only the checksum tells
    else:
        data[0] ^= 1  # the first member's header: the shard no longer scans either
    open(path, "wb").write(bytes(data))


def _read(infos, batched, **kwargs):
    """Every sample name the read hands out, into ``seen`` as they come."""
    seen = []
    ds = Dataset[Row](infos, **kwargs)
    if batched:
        for batch in ds.ordered(batch_size=16):
            seen.extend(row.name for row in batch)
    else:
        for row in ds:
            seen.append(row.name)
    return seen


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("how", ["sample", "header"])
def test_a_tampered_single_shard_yields_nothing_and_names_the_shard(tmp_path, batched, how):
    [info] = _write(tmp_path, shards=1)
    _tamper(info.url, how)
    seen = []
    ds = Dataset[Row]([info])
    with pytest.raises(ChecksumError) as caught:
        for item in ds.ordered(batch_size=16) if batched else ds:
            seen.append(item)
    assert info.url in str(caught.value)
    assert seen == []
    assert not _wait_for_no_threads()


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("how", ["sample", "header"])
def test_a_tampered_single_shard_is_skipped_whole(tmp_path, batched, how):
    [info] = _write(tmp_path, shards=1)
    _tamper(info.url, how)
    with pytest.warns(UserWarning, match="d-00.tar"):
        assert _read([info], batched, on_error="skip") == []
    assert not _wait_for_no_threads()


@pytest.mark.parametrize("batched", [False, True])
def test_a_tampered_first_shard_skipped_leaves_nothing_in_the_next_batches(tmp_path, batched):
    infos = _write(tmp_path, shards=3)
    _tamper(infos[0].url, "sample")
    with pytest.warns(UserWarning, match="d-00.tar"):
        names = _read(infos, batched, on_error="skip")
    assert names == [f"row-{i}" for i in range(50, 150)]


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("shards", [1, 3])
def test_a_good_first_shard_yields_every_sample(tmp_path, batched, shards):
    infos = _write(tmp_path, shards=shards)
    assert _read(infos, batched) == [f"row-{i}" for i in range(50 * shards)]
    ds = Dataset[Row](infos)
    assert [row.name for row in ds.ordered(epochs=2)] == [f"row-{i}" for i in range(50 * shards)] * 2
    batches = list(ds.ordered(batch_size=16, epochs=2))
    assert [row.name for batch in batches for row in batch] == [f"row-{i}" for i in range(50 * shards)] * 2
    assert not _wait_for_no_threads()


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("shards", [1, 3])
def test_a_reader_that_stops_in_the_first_shard_leaves_no_thread(tmp_path, batched, shards):
    infos = _write(tmp_path, shards=shards)
    ds = Dataset[Row](infos)
    pipe = iter(ds.ordered(batch_size=16) if batched else ds)
    next(pipe)
    pipe.close()
    assert not _wait_for_no_threads()


@packable
class Picky:
    values: np.ndarray
    name: str

    def __post_init__(self):
        if self.name == "row-7":
            raise ValueError("not this one")


def test_a_sample_of_the_first_shard_that_does_not_decode_is_reported_in_its_place(tmp_path):
    [info] = _write(tmp_path, shards=1)
    seen = []
    with pytest.raises(SampleDecodeError) as caught:
        for row in Dataset[Picky]([info]):
            seen.append(row.name)
    assert seen == [f"row-{i}" for i in range(7)]
    assert caught.value.shard == info.url and caught.value.member
    with pytest.warns(UserWarning, match="not this one"):
        names = [row.name for row in Dataset[Picky]([info], on_error="skip")]
    assert names == [f"row-{i}" for i in range(50) if i != 7]


def test_the_first_shard_is_the_one_held(tmp_path, monkeypatch):
    held = []
    real = _pipeline._held_samples

    def counted(members, decode, shard, on_error):
        held.append(shard)
        return real(members, decode, shard, on_error)

    monkeypatch.setattr(_pipeline, "_held_samples", counted)
    infos = _write(tmp_path, shards=3)
    assert len(list(Dataset[Row](infos))) == 150
    assert held == [infos[0].url]
