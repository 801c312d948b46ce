"""Shards fetched ahead: the next shard is read (and hashed) on a thread of its own while the current
one decodes. What a user sees must not change: errors in their turn naming shard and member, nothing
of a shard that fails verification, memory bounded to the shard being decoded and one more, and no
thread left behind by a reader that stops."""

import functools
import io
import os
import shutil
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from atdata_core import Dataset, ShardWriter, _pipeline, packable
from atdata_core.errors import ChecksumError, ShardError
from atdata_core.shards import ShardLimits, _fetch_ahead, quick_switches


@packable
class Row:
    values: np.ndarray
    name: str


def _write(folder, shards=4, per_shard=50):
    with ShardWriter(folder / "d-%02d.tar", maxcount=per_shard) as sink:
        for i in range(shards * per_shard):
            sink.write(Row(np.full(256, i, dtype=np.int32), f"row-{i}"))
    return sink.shards


def _tamper(path):
    """Flip one bit of a shard file, in place, in its padding: every sample would still read."""
    with open(path, "r+b") as f:
        f.seek(-2000, os.SEEK_END)
        flipped = f.read(1)[0] ^ 1
        f.seek(-2000, os.SEEK_END)
        f.write(bytes([flipped]))


def _fetching_threads():
    return [t for t in threading.enumerate() if t.name.startswith("atdata-shard-")]


def _wait_for_no_threads(seconds=2.0):
    deadline = time.monotonic() + seconds
    while _fetching_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _fetching_threads()


@pytest.mark.parametrize("tampered", [0, 1])
@pytest.mark.parametrize("batched", [False, True])
def test_a_read_that_fails_verification_stops_its_threads_while_the_error_is_kept(tmp_path, tampered, batched):
    infos = _write(tmp_path)
    _tamper(infos[tampered].url)
    ds = Dataset[Row](infos)
    with pytest.raises(ChecksumError) as caught:
        if batched:
            [row.name for batch in ds.ordered(batch_size=16) for row in batch]
        else:
            [row.name for row in ds]
    # The error (and its traceback, through the reader's frames) is still held here, as a user's
    # `except ... as err` or an interactive session's last traceback would hold it.
    assert caught.value.__traceback__ is not None
    assert not _wait_for_no_threads()


def test_a_tampered_shard_fetched_ahead_fails_in_its_turn_and_yields_nothing(tmp_path):
    infos = _write(tmp_path)
    _tamper(infos[1].url)
    seen = []
    with pytest.raises(ChecksumError) as caught:
        for row in Dataset[Row](infos):
            seen.append(row.name)
    assert infos[1].url in str(caught.value)
    assert seen == [f"row-{i}" for i in range(50)]  # all of shard 0, nothing of shard 1
    assert not _wait_for_no_threads()
    with pytest.warns(UserWarning, match="d-01.tar"):
        names = [row.name for row in Dataset[Row](infos, on_error="skip")]
    assert names == [f"row-{i}" for i in range(50)] + [f"row-{i}" for i in range(100, 200)]


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_local_shards_hashed_two_at_a_time_are_used_in_order_and_fail_in_their_turn(tmp_path, monkeypatch, cores):
    monkeypatch.setattr(_pipeline, "_usable_cores", lambda: cores)
    infos = _write(tmp_path, shards=5)
    _tamper(infos[3].url)
    pipe = iter(Dataset[Row](infos))
    seen = [next(pipe).name]
    fetching = [t for t in threading.enumerate() if t.name == "atdata-shard-fetch"]
    assert len(fetching) == (2 if cores >= 2 else 1)
    with pytest.raises(ChecksumError, match="d-03.tar"):
        for row in pipe:
            seen.append(row.name)
    assert seen == [f"row-{i}" for i in range(150)]  # shards 0-2 whole, nothing of shard 3
    assert not _wait_for_no_threads()


@pytest.mark.parametrize(
    ("cores", "dataloader_workers", "at_once"), [(1, 1, 1), (2, 1, 2), (8, 1, 2), (8, 4, 2), (8, 8, 1), (3, 2, 1)]
)
def test_each_reader_hashes_two_local_shards_at_once_only_with_two_cores_of_its_own(
    monkeypatch, cores, dataloader_workers, at_once
):
    monkeypatch.setattr(_pipeline, "_usable_cores", lambda: cores)
    assert _pipeline._local_workers(dataloader_workers) == at_once


def test_a_missing_shard_fetched_ahead_is_reported_in_its_turn(tmp_path):
    infos = _write(tmp_path, shards=3)
    os.remove(infos[1].url)
    seen = []
    with pytest.raises(Exception, match="d-01.tar"):
        for row in Dataset[Row](infos):
            seen.append(row.name)
    assert seen == [f"row-{i}" for i in range(50)]


class _LoggingHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requested.append(self.path)
        super().do_GET()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # readers that stop early close connections mid-shard


@pytest.fixture
def logging_server(tmp_path, allow_hosts):
    folder = tmp_path / "served"
    folder.mkdir()
    server = _Server(("127.0.0.1", 0), functools.partial(_LoggingHandler, directory=str(folder)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    allow_hosts(f"127.0.0.1:{server.server_address[1]}")
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", server.requested
    finally:
        server.shutdown()
        server.server_close()


def _serve(infos, folder, base):
    for info in infos:
        shutil.copy(info.url, folder / os.path.basename(info.url))
    return [f"{base}/{os.path.basename(info.url)}" for info in infos]


@pytest.mark.parametrize("verified", [False, True])
def test_at_most_two_remote_shards_are_in_flight_beside_the_one_being_read(tmp_path, logging_server, verified):
    folder, base, requested = logging_server
    infos = _write(tmp_path, shards=5)
    urls = _serve(infos, folder, base)
    source = [(url, info.sha256) for url, info in zip(urls, infos)] if verified else urls
    pipe = iter(Dataset[Row](source) if not verified else Dataset[Row](shards=source))

    def settled(count):
        deadline = time.monotonic() + 5
        while len(requested) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # time enough to fetch more, if it would
        return sorted(path.rsplit("/", 1)[-1] for path in requested)  # two threads: either may ask first

    assert next(pipe).name == "row-0"
    assert settled(3) == ["d-00.tar", "d-01.tar", "d-02.tar"]  # the one being read, and the next two
    for _ in range(50):
        next(pipe)  # the rest of shard 0 and the first of shard 1
    assert settled(4) == ["d-00.tar", "d-01.tar", "d-02.tar", "d-03.tar"]
    pipe.close()
    assert not _wait_for_no_threads()


def test_a_corrupt_shard_fetched_ahead_names_shard_and_member(tmp_path, logging_server):
    folder, base, _ = logging_server
    infos = _write(tmp_path, shards=3)
    urls = _serve(infos, folder, base)
    served = folder / os.path.basename(infos[1].url)
    served.write_bytes(served.read_bytes()[:20_000])  # cut inside a member: the body ends there too
    seen = []
    with pytest.raises(ShardError) as caught:
        for row in Dataset[Row](urls):
            seen.append(row.name)
    assert caught.value.shard == urls[1] and caught.value.member and caught.value.member.endswith(".msgpack")
    assert "truncated" in str(caught.value)
    assert seen[:50] == [f"row-{i}" for i in range(50)]


@pytest.fixture
def switch_interval():
    """The interpreter's switch interval set to 4 ms for the test (what a user might have set)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    yield 0.004
    sys.setswitchinterval(before)


@pytest.mark.parametrize("remote", [False, True])
def test_a_reader_that_stops_leaves_no_fetching_thread(tmp_path, logging_server, remote, switch_interval):
    folder, base, _ = logging_server
    infos = _write(tmp_path, shards=4)
    if remote:
        urls = _serve(infos, folder, base)
        infos = [(url, info.sha256) for url, info in zip(urls, infos)]
    pipe = iter(Dataset[Row](shards=infos))
    assert next(pipe).name == "row-0" and _fetching_threads()
    pipe.close()
    assert not _wait_for_no_threads()
    batches = iter(Dataset[Row](shards=infos).ordered(batch_size=16))
    assert len(next(batches)) == 16
    batches.close()
    assert not _wait_for_no_threads()
    assert sys.getswitchinterval() == pytest.approx(switch_interval)  # as the user left it


def test_the_switch_interval_is_lowered_while_any_helper_thread_works_and_put_back_after(switch_interval):
    assert sys.getswitchinterval() == pytest.approx(switch_interval)
    with quick_switches:
        assert sys.getswitchinterval() == pytest.approx(quick_switches.INTERVAL)
        other = threading.Thread(target=lambda: quick_switches.__enter__())  # a second helper, still working
        other.start()
        other.join()
    assert sys.getswitchinterval() == pytest.approx(quick_switches.INTERVAL)  # the second still works
    quick_switches.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(switch_interval)
    with quick_switches:
        sys.setswitchinterval(0.002)  # changed meanwhile by someone else: kept
    assert sys.getswitchinterval() == pytest.approx(0.002)
    sys.setswitchinterval(0.0005)  # already lower: left alone
    with quick_switches:
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == pytest.approx(0.0005)


class _SelfChecking(io.BytesIO):
    """A stream that says it verifies a sha256 itself (as a PDS blob checked against its CID does)."""

    def __init__(self, data, digest):
        super().__init__(data)
        self.verifies_sha256 = digest


def test_a_stream_that_verifies_itself_is_trusted_only_for_the_bytes_it_checked(tmp_path):
    [info] = _write(tmp_path, shards=1)
    data = open(info.url, "rb").read()
    limits = ShardLimits()
    never = lambda: False  # noqa: E731
    # read to its end: its own check covered these bytes
    head = _fetch_ahead(_SelfChecking(data, info.sha256), info.sha256, len(data), limits, never)
    assert head.hasher.hexdigest() == info.sha256 and b"".join(head.chunks) == data
    # longer than the recorded size: the stream's check covers other bytes, so the reader hashes what it uses
    head = _fetch_ahead(_SelfChecking(data + b"more", info.sha256), info.sha256, len(data), limits, never)
    assert head.hasher.hexdigest() == info.sha256
    tampered = bytearray(data)
    tampered[-2000] ^= 1
    head = _fetch_ahead(_SelfChecking(bytes(tampered) + b"x", info.sha256), info.sha256, len(data), limits, never)
    assert head.hasher.hexdigest() != info.sha256
    # a stream that claims another digest than the recorded one changes nothing
    head = _fetch_ahead(_SelfChecking(bytes(tampered), "0" * 64), info.sha256, len(data), limits, never)
    assert head.hasher.hexdigest() != info.sha256
