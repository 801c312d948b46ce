"""How shards are read: one GET per shard opened, two shards of a dataset in flight while it is
read, and connections kept for the next request when the service allows it."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from typing import ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core.errors import StorageNotFound
from atdata_core.plugins import RetryPolicy, ShardRef, storage_backend
from atdata_storage_s3.settings import S3Settings
from atdata_storage_s3.storage import S3Storage

PROXIED = "atdata-proxied"  # reached through the cutting proxy, which sees every request


def payload(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def read_all(stream) -> bytes:
    chunks = []
    with stream:
        while chunk := stream.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def eventually(condition, what: str, within: float = 20.0) -> None:
    """Wait for something done on another thread (a generous bound, not a measure of speed)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still not so after {within} s: {what}")
        time.sleep(0.01)


def gets(proxy) -> list[str]:
    """The shard names the proxy saw GET requests for, in order."""
    out = []
    for head in proxy.requests:
        match = re.match(r"GET /\S*/(data-\d+\.tar)", head)
        if match:
            out.append(match.group(1))
    return out


def no_fetching_thread() -> bool:
    return not any(thread.name == "atdata-shard-fetch" for thread in threading.enumerate())


@pytest.fixture
def entry(s3_config, cutting_proxy, tmp_path, prefix):
    """Four shards in the proxied bucket, as an entry's storageS3 record maps them: ``(backend, refs, datas)``."""
    backend = storage_backend("s3://x/y")
    datas = [payload(200_000 + 1000 * index, index) for index in range(4)]
    refs = []
    for index, data in enumerate(datas):
        local = tmp_path / f"data-{index:06d}.tar"
        local.write_bytes(data)
        url = backend.put(local, f"s3://{PROXIED}/{prefix}/data-{index:06d}.tar")
        refs.append(ShardRef(url, hashlib.sha256(data).hexdigest()))
    mapped = backend.from_storage_record(backend.to_storage_record(refs))
    cutting_proxy.arm(cut_after=1 << 40, times=0)  # nothing cut: only the requests are recorded
    yield backend, mapped, datas
    eventually(no_fetching_thread, "the dataset's fetching threads are gone")


def test_each_shard_opened_is_one_get_in_any_order(entry, cutting_proxy):
    backend, refs, datas = entry
    for index in (0, 1, 2, 3, 2, 0):
        assert read_all(backend.open(refs[index].url)) == datas[index]
    assert gets(cutting_proxy) == [f"data-{index:06d}.tar" for index in (0, 1, 2, 3, 2, 0)]


@atdata_core.packable
class Note:
    text: str
    values: NDArray[np.int64]


@pytest.fixture
def notes(s3_config, cutting_proxy, prefix):
    """Five shards of 100 notes each in the proxied bucket, as their entry maps them."""
    with atdata_core.ShardWriter(f"s3://{PROXIED}/{prefix}/data-%06d.tar", maxcount=100) as sink:
        for index in range(500):
            sink.write(Note(f"note {index:05d}", np.arange(index, index + 50)))
    backend = storage_backend("s3://x/y")
    cutting_proxy.arm(cut_after=1 << 40, times=0)  # nothing cut: only the requests are recorded
    yield backend.from_storage_record(backend.to_storage_record(sink.shards))
    eventually(no_fetching_thread, "the dataset's fetching threads are gone")


def test_a_dataset_read_from_s3_has_two_shards_in_flight_and_no_more(notes, cutting_proxy):
    def settled(count):
        eventually(lambda: len(gets(cutting_proxy)) >= count, f"{count} shards requested")
        time.sleep(0.2)  # time enough to ask for more, if it would
        return sorted(gets(cutting_proxy))  # two threads: either may ask first

    rows = iter(atdata_core.Dataset(shards=notes, sample_type=Note))
    assert next(rows).text == "note 00000"
    # the shard being read and two in flight: a fourth only once the reader moves on
    assert settled(3) == ["data-000000.tar", "data-000001.tar", "data-000002.tar"]
    for _ in range(100):
        next(rows)  # the rest of the first shard and the first note of the second
    assert settled(4) == [f"data-{index:06d}.tar" for index in range(4)]
    assert [note.text for note in rows] == [f"note {index:05d}" for index in range(101, 500)]
    assert sorted(gets(cutting_proxy)) == [f"data-{index:06d}.tar" for index in range(5)]  # each asked for once


def test_a_missing_shard_fetched_ahead_fails_in_its_turn(notes, cutting_proxy, admin):
    key = notes[2].url.split(f"{PROXIED}/", 1)[1]
    admin.delete_object(Bucket=PROXIED, Key=key)
    seen = []
    with pytest.raises(StorageNotFound, match=re.escape(f"no object at {notes[2].url}")):
        for note in atdata_core.Dataset(shards=notes, sample_type=Note):
            seen.append(note.text)
    assert seen == [f"note {index:05d}" for index in range(200)]  # every sample before it, in order


def test_an_entry_read_in_order_through_dropped_connections_is_whole_and_verified(
    s3_config, cutting_proxy, prefix
):
    with atdata_core.ShardWriter(f"s3://{PROXIED}/{prefix}/data-%06d.tar", maxcount=500) as sink:
        for index in range(2000):
            sink.write(Note(f"note {index:05d}", np.arange(index, index + 50)))
    backend = storage_backend("s3://x/y")
    refs = backend.from_storage_record(backend.to_storage_record(sink.shards))
    cutting_proxy.arm(cut_after=200_000, times=3)
    notes = list(atdata_core.Dataset(shards=refs, sample_type=Note))
    assert [note.text for note in notes] == [f"note {index:05d}" for index in range(2000)]
    assert all(np.array_equal(note.values, np.arange(i, i + 50)) for i, note in enumerate(notes))
    assert cutting_proxy.cuts_done == 3
    assert any(r.startswith("bytes=") for r in cutting_proxy.ranges()), "resumed by Range"
    eventually(no_fetching_thread, "the dataset's fetching threads are gone")


# -- connections -----------------------------------------------------------------------------


class _KeepAliveS3(http.server.BaseHTTPRequestHandler):
    """GET of any key: the same object, over HTTP/1.1 connections kept open."""

    protocol_version = "HTTP/1.1"
    body = payload(3 * 1024 * 1024 + 17, 9)
    connections: ClassVar[list[int]] = []

    def setup(self):
        super().setup()
        self.connections.append(1)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("ETag", '"0123456789abcdef"')
        self.send_header("Last-Modified", "Tue, 01 Dec 2026 12:00:00 GMT")
        self.end_headers()
        try:
            self.wfile.write(self.body)
        except OSError:
            pass  # the client closed before the end

    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that closes a connection before the end of its answer


@pytest.fixture
def keep_alive_endpoint(s3_config):
    _KeepAliveS3.connections = []
    server = _QuietServer(("127.0.0.1", 0), _KeepAliveS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_shards_read_to_their_end_leave_the_connection_to_the_next_one(keep_alive_endpoint):
    backend = S3Storage(S3Settings(endpoint=keep_alive_endpoint), retry=RetryPolicy(retries=1, backoff=0.01))
    for index in range(3):
        assert read_all(backend.open(f"s3://bucket/data-{index:06d}.tar")) == _KeepAliveS3.body
    assert len(_KeepAliveS3.connections) == 1


def test_a_shard_closed_before_its_end_does_not_leave_its_connection_to_the_next_one(keep_alive_endpoint):
    backend = S3Storage(S3Settings(endpoint=keep_alive_endpoint), retry=RetryPolicy(retries=1, backoff=0.01))
    partial = backend.open("s3://bucket/data-000000.tar")
    assert partial.read(1000) == _KeepAliveS3.body[:1000]
    partial.close()
    assert read_all(backend.open("s3://bucket/data-000001.tar")) == _KeepAliveS3.body
    assert len(_KeepAliveS3.connections) == 2
