"""How shards are read: the next shard of an entry asked for while the current one is read, and
connections kept for the next request when the service allows it."""

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
from atdata_storage_s3 import storage as s3_storage
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


def no_request_sent_ahead_is_open() -> bool:
    return not any(thread.name == "atdata-s3-ahead" for thread in threading.enumerate())


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
    eventually(no_request_sent_ahead_is_open, "every request sent ahead was used or closed")


def test_an_entry_read_in_order_has_the_next_shard_asked_for_while_the_current_one_is_read(entry, cutting_proxy):
    backend, refs, datas = entry
    assert read_all(backend.open(refs[0].url)) == datas[0]
    second = backend.open(refs[1].url)
    # Two shards in the entry's order: the third one's request goes out before the second is read.
    eventually(lambda: gets(cutting_proxy) == ["data-000000.tar", "data-000001.tar", "data-000002.tar"],
               "the third shard requested")
    assert read_all(second) == datas[1]
    assert read_all(backend.open(refs[2].url)) == datas[2]
    assert read_all(backend.open(refs[3].url)) == datas[3]
    # Each shard was asked for once: the answer sent ahead is the one read.
    assert gets(cutting_proxy) == [f"data-{index:06d}.tar" for index in range(4)]


def test_shards_read_out_of_order_cost_no_extra_request(entry, cutting_proxy):
    backend, refs, datas = entry
    for index in (2, 0, 3, 1):
        assert read_all(backend.open(refs[index].url)) == datas[index]
    assert gets(cutting_proxy) == ["data-000002.tar", "data-000000.tar", "data-000003.tar", "data-000001.tar"]


def test_a_reader_that_goes_elsewhere_gets_what_it_asked_for(entry, cutting_proxy):
    backend, refs, datas = entry
    read_all(backend.open(refs[0].url))
    read_all(backend.open(refs[1].url))
    eventually(lambda: "data-000002.tar" in gets(cutting_proxy), "the third shard requested")
    # The fourth instead of the third: the answer sent ahead is given up, the fourth fetched.
    assert read_all(backend.open(refs[3].url)) == datas[3]
    assert gets(cutting_proxy)[-1] == "data-000003.tar"


def test_a_next_shard_that_is_missing_fails_only_when_it_is_opened(entry, cutting_proxy, admin):
    backend, refs, datas = entry
    key = refs[2].url.split(f"{PROXIED}/", 1)[1]
    admin.delete_object(Bucket=PROXIED, Key=key)
    read_all(backend.open(refs[0].url))
    assert read_all(backend.open(refs[1].url)) == datas[1]  # its follower's request failed, quietly
    with pytest.raises(StorageNotFound, match=re.escape(f"no object at {refs[2].url}")):
        backend.open(refs[2].url)


def _third_shard_sent_ahead_and_left_unasked(entry, cutting_proxy, monkeypatch):
    """Two shards read in order, with answers sent ahead closed after 50 ms; the third's closed so."""
    backend, refs, _ = entry
    monkeypatch.setattr(s3_storage, "_AHEAD_WAIT", 0.05)
    read_all(backend.open(refs[0].url))
    read_all(backend.open(refs[1].url))
    eventually(lambda: "data-000002.tar" in gets(cutting_proxy), "the third shard requested")
    eventually(no_request_sent_ahead_is_open, "the unused answer closed")


def test_an_answer_sent_ahead_and_not_asked_for_is_closed(entry, cutting_proxy, monkeypatch):
    backend, refs, datas = entry
    _third_shard_sent_ahead_and_left_unasked(entry, cutting_proxy, monkeypatch)
    # Asked for after all: fetched again, whole.
    assert read_all(backend.open(refs[2].url)) == datas[2]
    assert gets(cutting_proxy)[-2:] == ["data-000002.tar", "data-000002.tar"]


def test_a_reader_slower_than_the_wait_is_sent_nothing_ahead_again(entry, cutting_proxy, monkeypatch):
    backend, refs, datas = entry
    _third_shard_sent_ahead_and_left_unasked(entry, cutting_proxy, monkeypatch)
    monkeypatch.setattr(s3_storage, "_AHEAD_WAIT", 60.0)  # an answer sent ahead now would stay open
    assert read_all(backend.open(refs[2].url)) == datas[2]
    assert no_request_sent_ahead_is_open()
    assert read_all(backend.open(refs[3].url)) == datas[3]
    assert gets(cutting_proxy) == ["data-000000.tar", "data-000001.tar", "data-000002.tar", "data-000002.tar",
                                   "data-000003.tar"]


@atdata_core.packable
class Note:
    text: str
    values: NDArray[np.int64]


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
    eventually(no_request_sent_ahead_is_open, "every request sent ahead was used or closed")


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
