"""How shards are read: connections kept for the next request when the service allows it."""

from __future__ import annotations

import hashlib
import http.server
import threading
from typing import ClassVar

import pytest

from atdata_core.plugins import RetryPolicy
from atdata_storage_s3.settings import S3Settings
from atdata_storage_s3.storage import S3Storage


def payload(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def read_all(stream) -> bytes:
    chunks = []
    with stream:
        while chunk := stream.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


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
