"""How HTTP storage reads a body: straight from the connection into fresh buffers, and what that keeps.

The body of a plain (uncompressed) response is read with the standard
library's ``readinto`` into the buffer the reader hands out, not through
urllib3's ``read`` (which returns a new bytes object to copy again). These
tests hold the properties the decoding relies on and the ones the network
guard relies on: every piece is its own buffer, never written again; a
failure in the middle of a body is still a dropped connection that resumes;
a body read to its end gives its connection back for the next request.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
import urllib3.response

from atdata_core.storage.http import HttpStorage
from tests.test_storage_http import ShardServer, _payload

pytestmark = pytest.mark.network


@pytest.fixture
def server():
    with ShardServer() as running:
        yield running


@pytest.fixture
def storage() -> HttpStorage:
    return HttpStorage(retries=3, backoff=0.01, timeout=10)


def test_pieces_are_fresh_buffers_that_are_never_written_again(server, storage):
    payload = _payload(3 * (1 << 20) + 12_345)
    server.objects["/a.tar"] = payload
    stream = storage.open(f"{server.url}/a.tar")
    pieces, views = [], []
    sizes = [1 << 20, 4096, 1, 700_000, 1 << 20, 65_536, 3, 1 << 21]
    while True:
        piece = stream.read(sizes[len(pieces) % len(sizes)])
        if not piece:
            break
        assert type(piece) is bytes
        pieces.append(piece)
        views.append(np.frombuffer(piece, dtype=np.uint8))  # as decoded arrays view their shard's buffers
    stream.close()
    assert b"".join(pieces) == payload
    offset = 0
    for piece, view in zip(pieces, views):
        assert view.tobytes() == payload[offset : offset + len(piece)]  # nothing wrote into a piece handed out
        offset += len(piece)
    assert len({id(piece) for piece in pieces}) == len(pieces)


def test_a_plain_body_is_not_read_through_urllib3(server, storage, monkeypatch):
    payload = _payload(2 * (1 << 20) + 7)
    server.objects["/a.tar"] = payload

    def refused(*args, **kwargs):
        raise AssertionError("the body went through urllib3's read (a copy into fresh memory)")

    stream = storage.open(f"{server.url}/a.tar")
    monkeypatch.setattr(urllib3.response.HTTPResponse, "read", refused)
    assert stream.read() == payload


def test_a_compressed_body_is_still_decoded(server, storage):
    payload = _payload(300_000)
    server.objects["/a.tar"] = payload
    server.gzip = True
    assert storage.open(f"{server.url}/a.tar").read() == payload


def test_a_drop_in_the_middle_of_a_large_read_resumes_at_the_right_byte(server, storage):
    payload = _payload(5 * (1 << 20))
    server.objects["/a.tar"] = payload
    server.drops["/a.tar"] = [1_500_000, 3_000_000]
    stream = storage.open(f"{server.url}/a.tar")
    got = []
    while piece := stream.read(1 << 21):
        got.append(piece)
    assert b"".join(got) == payload
    assert server.gets("/a.tar") == [None, "bytes=1500000-", "bytes=4500000-"]


def test_a_large_read_takes_one_socket_read_however_the_server_splits_its_writes(server, storage, monkeypatch):
    # The download goes on beside the decoding only if its thread needs the GIL once a buffer,
    # not once for every few KiB the kernel happens to hold.
    payload = _payload(4 << 20)
    server.objects["/a.tar"] = payload
    server.trickle["/a.tar"] = (16 << 10, 0.0)
    reads: list[int] = []
    recv_into = socket.socket.recv_into

    def counted(self, buffer, *args):
        got = recv_into(self, buffer, *args)
        reads.append(got)
        return got

    stream = storage.open(f"{server.url}/a.tar")
    monkeypatch.setattr(socket.socket, "recv_into", counted)
    assert stream.read(len(payload)) == payload
    assert len(reads) <= 2, f"{len(reads)} socket reads for one 4 MiB read"


def test_a_body_slower_than_the_read_timeout_per_buffer_is_read_without_resuming(server):
    # Bytes keep coming, 8 KiB every 50 ms: a buffer takes longer than the timeout to fill, which
    # is no stall. The read returns what came and the next one waits on.
    payload = _payload(320 << 10)
    server.objects["/a.tar"] = payload
    server.trickle["/a.tar"] = (8 << 10, 0.05)
    storage = HttpStorage(retries=0, backoff=0.01, timeout=0.5)
    stream = storage.open(f"{server.url}/a.tar")
    assert stream.read(len(payload)) == payload
    assert server.gets("/a.tar") == [None]


def test_a_stall_in_the_middle_of_a_large_read_is_noticed_within_the_timeout_and_resumed(server):
    payload = _payload(2 << 20)
    server.objects["/a.tar"] = payload
    server.stalls["/a.tar"] = [(300_000, 30.0)]
    storage = HttpStorage(retries=2, backoff=0.01, timeout=0.5)
    started = time.monotonic()
    stream = storage.open(f"{server.url}/a.tar")
    assert stream.read(len(payload)) == payload
    assert time.monotonic() - started < 10  # not the 30 s the server stays silent
    # Asked again from the last byte handed out: the stall fell inside the read of one buffer,
    # which hands out nothing when it fails (the standard library's buffered reader drops it).
    assert server.gets("/a.tar") == [None, None]


def test_a_whole_read_leaves_the_connection_as_it_found_it(server, storage):
    server.objects["/a.tar"] = _payload(1 << 20)
    server.objects["/b.tar"] = _payload(1000)
    ports = _client_ports(server)
    stream = storage.open(f"{server.url}/a.tar")
    body = stream.raw._response.raw._fp  # the standard library's response under requests'
    sock = body.fp.raw._sock
    assert stream.read(1 << 20) == _payload(1 << 20)
    assert sock.gettimeout() == 10  # the read timeout, as urllib3 set it
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16) == bytes(16)
    assert storage.open(f"{server.url}/b.tar").read() == _payload(1000)
    assert len(set(ports)) == 1  # the same connection served the next request


def test_a_body_read_whole_frees_its_socket_reader_at_once_not_at_the_next_garbage_collection(server, storage):
    server.objects["/a.tar"] = _payload(1 << 20)
    gc.disable()  # only reference counting frees it: nothing of the read may be in a cycle
    try:
        stream = storage.open(f"{server.url}/a.tar")
        reader = weakref.ref(stream.raw._response.raw._fp.fp.raw)
        assert stream.read(1 << 20) == _payload(1 << 20)
        stream.close()
        del stream
        assert reader() is None
    finally:
        gc.enable()


def test_a_body_read_to_its_end_gives_its_connection_to_the_next_request(server, storage):
    ports = _client_ports(server)
    for name in ("a", "b", "c"):
        server.objects[f"/{name}.tar"] = _payload(600_000)
    for name in ("a", "b", "c"):
        stream = storage.open(f"{server.url}/{name}.tar")
        while stream.read(1 << 20):
            pass
        stream.close()
    assert len(ports) == 3 and len(set(ports)) == 1


def test_a_body_closed_before_its_end_does_not_give_its_connection_back(server, storage):
    server.objects["/a.tar"] = _payload(3 << 20)
    server.objects["/b.tar"] = _payload(1000)
    ports = _client_ports(server)
    stream = storage.open(f"{server.url}/a.tar")
    stream.read(1000)
    stream.close()  # the rest of the body is still on that connection: it must not serve another request
    assert storage.open(f"{server.url}/b.tar").read() == _payload(1000)
    assert len(ports) == 2 and ports[0] != ports[1]


def _client_ports(server: ShardServer) -> list[int]:
    """Record the client port of every GET the server answers (one port a connection)."""
    ports: list[int] = []
    handler = server.httpd.RequestHandlerClass
    serve = handler.do_GET

    def do_get(self) -> None:
        ports.append(self.client_address[1])
        serve(self)

    handler.do_GET = do_get
    return ports


class _ChunkedThenRanged(BaseHTTPRequestHandler):
    """The first GET: a chunked body (no length) cut off in the middle of a chunk. Then ranges, plainly."""

    protocol_version = "HTTP/1.1"
    payload = b""
    ranges: ClassVar[list] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        data = type(self).payload
        if header is None:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(data) // 2
            self.wfile.write(b"%x\r\n" % half + data[:half] + b"\r\n")
            self.wfile.write(b"%x\r\n" % (len(data) - half) + data[half : half + 1000])  # cut mid-chunk
            self.wfile.flush()
            self.close_connection = True
            return
        start = int(header.removeprefix("bytes=").rstrip("-"))
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


def test_a_chunked_body_cut_short_resumes_with_range(storage):
    payload = _payload(400_000)
    handler = type("Handler", (_ChunkedThenRanged,), {"payload": payload, "ranges": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/a.tar"
        assert storage.open(url).read() == payload
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert handler.ranges[0] is None and len(handler.ranges) == 2
    resumed_at = int(handler.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(payload) // 2 + 1000  # from the last byte handed out, whole
