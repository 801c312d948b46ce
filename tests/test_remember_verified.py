"""A local shard file whose checksum matched is not hashed again while it is unchanged; any change
to it (or another checksum) is verified again, and a file that failed is never remembered."""

import os

import pytest
from click.testing import CliRunner

from atdata_core import Dataset, _verified, shards
from atdata_core.cli import cli
from atdata_core.errors import ChecksumError

from .test_fetch_ahead import Row, _fetching_threads, _write


@pytest.fixture
def hashed(monkeypatch):
    """The shards hashed so far: each entry is one _Hasher made for a read (none: nothing hashed)."""
    made = []
    real = shards._Hasher

    class Counted(real):
        __slots__ = ()

        def __init__(self):
            made.append(self)
            super().__init__()

    monkeypatch.setattr(shards, "_Hasher", Counted)
    return made


@pytest.fixture
def settled(monkeypatch):
    """Files written by the test count as settled at once (by default, a file changed in the last
    two seconds is verified but not remembered: its timestamps may not show a write just after)."""
    monkeypatch.setattr(_verified, "_SETTLED_NS", 0)


def _names(infos, batched=False, **kwargs):
    ds = Dataset[Row](infos, **kwargs)
    if batched:
        return [row.name for batch in ds.ordered(batch_size=16) for row in batch]
    return [row.name for row in ds]


ALL = [f"row-{i}" for i in range(100)]


@pytest.mark.parametrize("batched", [False, True])
def test_a_verified_file_is_not_hashed_again_while_unchanged(tmp_path, hashed, settled, batched):
    infos = _write(tmp_path, shards=2)
    hashed.clear()  # (the writer hashes what it writes)
    assert _names(infos, batched) == ALL
    assert len(hashed) == 2
    assert _names(infos, batched) == ALL
    assert _names(infos, not batched) == ALL
    assert len(hashed) == 2  # the later reads hashed nothing


def test_a_file_changed_after_it_was_verified_is_verified_again(tmp_path, hashed, settled):
    infos = _write(tmp_path, shards=2)
    assert _names(infos) == ALL
    data = bytearray(open(infos[0].url, "rb").read())
    at = data.index(b"row-7")
    data[at : at + 5] = b"row-X"  # same size, still decodes: only the checksum tells
    with open(infos[0].url, "r+b") as f:  # written in place: the same inode
        f.write(bytes(data))
    with pytest.raises(ChecksumError, match="d-00.tar"):
        _names(infos)
    with pytest.raises(ChecksumError):  # and again: a file that failed is never remembered
        _names(infos, batched=True)


def test_files_remembered_as_verified_are_read_without_a_fetching_thread(tmp_path, hashed, settled):
    infos = _write(tmp_path, shards=3)
    assert _names(infos) == [f"row-{i}" for i in range(150)]
    hashed.clear()
    earlier = set(_fetching_threads())  # (an earlier test's may still be ending)
    seen, started = [], set()
    for row in Dataset[Row](infos):
        seen.append(row.name)
        started.update(set(_fetching_threads()) - earlier)
    assert seen == [f"row-{i}" for i in range(150)]
    assert not started and not hashed


@pytest.mark.parametrize("batched", [False, True])
def test_a_file_changed_after_remembered_ones_is_verified_before_its_samples_are_used(
    tmp_path, hashed, settled, batched
):
    infos = _write(tmp_path, shards=3)
    assert _names(infos) == [f"row-{i}" for i in range(150)]
    with open(infos[1].url, "r+b") as f:  # in place: the same inode
        data = bytearray(f.read())
        data[-2000] ^= 1  # in the padding: every sample would still read
        f.seek(0)
        f.write(data)
    # A write within the file system's timestamp granularity of the first read may leave the
    # times as they were: the modification time is moved on, as a later write would have it.
    info = os.stat(infos[1].url)
    os.utime(infos[1].url, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    ds = Dataset[Row](infos)
    seen = []
    with pytest.raises(ChecksumError, match="d-01.tar"):
        if batched:
            for batch in ds.ordered(batch_size=16):
                seen.extend(row.name for row in batch)
        else:
            for row in ds:
                seen.append(row.name)
    # shard 0, remembered, is read; nothing of shard 1 (a batch of 16 rows holds 48 of shard 0's 50)
    assert seen == [f"row-{i}" for i in range(48 if batched else 50)]


def test_a_file_replaced_by_another_is_verified_again(tmp_path, hashed, settled):
    infos = _write(tmp_path, shards=2)
    assert _names(infos) == ALL
    other = _write(tmp_path / "other", shards=2)
    os.replace(other[1].url, infos[0].url)  # a valid shard, but not the one recorded
    with pytest.raises(ChecksumError, match="d-00.tar"):
        _names(infos)


def test_a_file_is_remembered_per_checksum(tmp_path, hashed, settled):
    infos = _write(tmp_path, shards=1)
    assert _names(infos) == ALL[:50]
    wrong = [infos[0].__class__(**{**infos[0].__dict__, "sha256": "0" * 64})]
    with pytest.raises(ChecksumError):
        _names(wrong)


def _identity(path):
    with open(path, "rb") as f:
        return _verified.identity_of(f)


@pytest.mark.parametrize("why", ["just written", "remembering off"])
def test_a_file_not_to_remember_is_hashed_on_every_read(tmp_path, hashed, monkeypatch, why):
    if why == "remembering off":
        monkeypatch.setattr(_verified, "_SETTLED_NS", 0)
        monkeypatch.setenv("ATDATA_SHARDS_REMEMBER_VERIFIED", "false")
    # just written: changed less than two seconds ago, its timestamps may not show a write just after
    infos = _write(tmp_path, shards=1)
    hashed.clear()  # (the writer hashes what it writes)
    assert _names(infos) == ALL[:50]
    assert _names(infos) == ALL[:50]
    assert len(hashed) == 2
    assert not _verified.is_remembered(_identity(infos[0].url), infos[0].sha256)


def test_cache_clear_forgets_the_verified_files(tmp_path, hashed, settled):
    infos = _write(tmp_path, shards=2)
    hashed.clear()  # (the writer hashes what it writes)
    assert _names(infos) == ALL
    runner = CliRunner()
    info = runner.invoke(cli, ["cache", "info"])
    assert info.exit_code == 0 and "verified shard file(s) remembered" in info.output
    assert int(info.output.split(": ")[-1].split()[0]) >= 2
    cleared = runner.invoke(cli, ["cache", "clear"])
    assert cleared.exit_code == 0 and "forgot" in cleared.output
    assert _names(infos) == ALL
    assert len(hashed) == 4  # hashed again after the cache was cleared
