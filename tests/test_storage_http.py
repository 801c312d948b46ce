"""HTTP storage against a real server on loopback, including dropped connections."""

from __future__ import annotations

import gzip
import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from atdata_core.errors import RecordError, StorageError, StorageNotFound
from atdata_core.plugins import STORAGE_HTTP_NSID, ShardRef
from atdata_core.plugins.conformance import StorageBackendConformance, StorageRecordMapperConformance
from atdata_core.storage import open_shard
from atdata_core.storage.http import HttpStorage

pytestmark = pytest.mark.network


class ShardServer:
    """A small HTTP object store: GET/HEAD with Range, PUT, DELETE, and injectable faults.

    ``drops[path]`` is a list of byte counts: each GET of ``path`` pops one and
    closes the connection after sending that many body bytes (the headers
    promise the whole body). ``stalls[path]`` likewise pops ``(count, seconds)``:
    the connection falls silent for that long after that many body bytes, and
    is then closed. ``statuses[path]`` likewise pops a status to answer
    with instead of serving. ``ignore_range`` serves whole bodies with 200.
    ``trickle[path] = (size, pause)`` sends its bodies in writes of ``size``
    bytes, ``pause`` seconds apart.
    """

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.drops: dict[str, list[int]] = {}
        self.stalls: dict[str, list[tuple[int, float]]] = {}
        self.trickle: dict[str, tuple[int, float]] = {}
        self.statuses: dict[str, list[int]] = {}
        self.after_drop: dict[str, object] = {}
        self.ignore_range = False
        self.gzip = False
        self.read_only = False
        self.head_allowed = True
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                if not server.head_allowed:
                    self.send_response(405)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def do_PUT(self) -> None:
                if server.read_only:
                    self.send_response(405)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                with server.lock:
                    server.requests.append(("PUT", self.path, None))
                    server.objects[self.path] = data
                    server.versions[self.path] = server.versions.get(self.path, 0) + 1
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_DELETE(self) -> None:
                with server.lock:
                    server.requests.append(("DELETE", self.path, None))
                    existed = server.objects.pop(self.path, None) is not None
                self.send_response(204 if existed else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _serve(self, body: bool) -> None:
                range_header = self.headers.get("Range")
                with server.lock:
                    server.requests.append((self.command, self.path, range_header))
                    data = server.objects.get(self.path)
                    etag = f'"v{server.versions.get(self.path, 0)}"'
                    status_queue = server.statuses.get(self.path)
                    forced = status_queue.pop(0) if status_queue else None
                    drop_queue = server.drops.get(self.path) if body else None
                    drop_at = drop_queue.pop(0) if drop_queue else None
                    stall_queue = server.stalls.get(self.path) if body else None
                    stall = stall_queue.pop(0) if stall_queue else None
                    trickle = server.trickle.get(self.path)
                if forced is not None:
                    self.send_response(forced)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                match = re.match(r"bytes=(\d+)-$", range_header or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                part = data[start:]
                if server.gzip:
                    part = gzip.compress(part)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(part)))
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if not body:
                    return
                if drop_at is not None:
                    self.wfile.write(part[:drop_at])
                    self.wfile.flush()
                    self.close_connection = True
                    hook = server.after_drop.pop(self.path, None)
                    if callable(hook):
                        hook()
                    return
                if stall is not None:
                    count, seconds = stall
                    self.wfile.write(part[:count])
                    self.wfile.flush()
                    time.sleep(seconds)
                    self.close_connection = True
                    return
                if trickle is not None:
                    size, pause = trickle
                    for at in range(0, len(part), size):
                        self.wfile.write(part[at : at + size])
                        self.wfile.flush()
                        time.sleep(pause)
                    return
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ShardServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every GET of ``path``, in order."""
        return [rng for method, p, rng in self.requests if method == "GET" and p == path]


@pytest.fixture
def server():
    with ShardServer() as running:
        yield running


@pytest.fixture
def storage() -> HttpStorage:
    return HttpStorage(retries=3, backoff=0.01, timeout=10)


def _payload(size: int) -> bytes:
    block = hashlib.sha256(b"shard").digest()
    return (block * (size // 32 + 1))[:size]


class TestHttpStorageConformance(StorageBackendConformance, StorageRecordMapperConformance):
    supports_listing = False
    record_type = STORAGE_HTTP_NSID
    check_registry = True

    @pytest.fixture
    def backend(self, storage):
        return storage

    @pytest.fixture
    def base_url(self, server, request):
        return f"{server.url}/{request.node.name}"


def test_dropped_connection_resumes_with_range(server, storage):
    data = _payload(1_000_000)
    server.objects["/big.tar"] = data
    server.drops["/big.tar"] = [100_000]
    with storage.open(f"{server.url}/big.tar") as stream:
        assert stream.read() == data
    assert server.gets("/big.tar") == [None, "bytes=100000-"]


def test_several_drops_are_all_resumed(server, storage):
    data = _payload(500_000)
    server.objects["/flaky.tar"] = data
    server.drops["/flaky.tar"] = [10_000, 50_000, 7]
    with storage.open(f"{server.url}/flaky.tar") as stream:
        chunks = iter(lambda: stream.read(8192), b"")
        assert b"".join(chunks) == data
    assert server.gets("/flaky.tar") == [None, "bytes=10000-", "bytes=60000-", "bytes=60007-"]


def test_resume_gives_up_after_the_retry_limit(server, storage):
    server.objects["/dead.tar"] = _payload(200_000)
    server.drops["/dead.tar"] = [1_000, 0, 0, 0, 0, 0]
    stream = storage.open(f"{server.url}/dead.tar")
    with pytest.raises(StorageError) as caught:
        stream.read()
    message = str(caught.value)
    assert f"{server.url}/dead.tar" in message
    assert "byte 1000 of 200000" in message
    # one first request and storage.retries resumes, then it stops
    assert len(server.gets("/dead.tar")) == 1 + storage.retries


def test_server_that_ignores_range_is_read_again_and_skipped(server, storage):
    data = _payload(300_000)
    server.objects["/norange.tar"] = data
    server.drops["/norange.tar"] = [123_456]
    server.ignore_range = True
    assert storage.open(f"{server.url}/norange.tar").read() == data


def test_object_changed_between_drop_and_resume_fails(server, storage):
    server.objects["/moving.tar"] = _payload(100_000)

    def replace() -> None:
        server.objects["/moving.tar"] = _payload(200_000)[::-1]
        server.versions["/moving.tar"] = 99

    server.drops["/moving.tar"] = [5_000]
    server.after_drop["/moving.tar"] = replace
    with pytest.raises(StorageError, match="changed while it was being read"):
        storage.open(f"{server.url}/moving.tar").read()


def test_object_shrunk_between_drop_and_resume_fails(server, storage):
    server.objects["/shrinking.tar"] = _payload(100_000)

    def shrink() -> None:
        server.objects["/shrinking.tar"] = b"short"

    server.drops["/shrinking.tar"] = [5_000]
    server.after_drop["/shrinking.tar"] = shrink
    with pytest.raises(StorageError, match="no longer reaches byte 5000"):
        storage.open(f"{server.url}/shrinking.tar").read()


def test_missing_object_is_storage_not_found(server, storage):
    with pytest.raises(StorageNotFound, match="nothing.tar"):
        storage.open(f"{server.url}/nothing.tar")


def test_server_errors_are_retried_then_reported(server, storage):
    server.objects["/busy.tar"] = b"payload"
    server.statuses["/busy.tar"] = [503, 503]
    assert storage.open(f"{server.url}/busy.tar").read() == b"payload"
    server.statuses["/busy.tar"] = [503] * 10
    with pytest.raises(StorageError, match=r"busy.tar failed after 4 attempts: HTTP 503"):
        storage.open(f"{server.url}/busy.tar")


def test_client_errors_are_not_retried(server, storage):
    server.objects["/secret.tar"] = b"payload"
    server.statuses["/secret.tar"] = [403, 403, 403]
    with pytest.raises(StorageError, match="HTTP 403") as caught:
        storage.open(f"{server.url}/secret.tar")
    assert not isinstance(caught.value, StorageNotFound)
    assert len(server.gets("/secret.tar")) == 1


def test_unreachable_host_is_a_storage_error_naming_the_url(server):
    server.httpd.server_close()  # nothing listens on that port any more
    storage = HttpStorage(retries=1, backoff=0.01, timeout=5)
    url = f"{server.url}/a.tar"
    with pytest.raises(StorageError, match=re.escape(url)):
        storage.open(url)


def test_open_shard_routes_http_urls_through_the_registry(server):
    server.objects["/routed.tar"] = b"routed bytes"
    with open_shard(f"{server.url}/routed.tar") as stream:
        assert stream.read() == b"routed bytes"


def test_storage_record_refuses_what_it_cannot_publish(storage):
    with pytest.raises(StorageError, match="http"):
        storage.to_storage_record([("file:///tmp/a.tar", "ab" * 32)])
    with pytest.raises(StorageError, match="sha256"):
        storage.to_storage_record([("https://host/a.tar", "not-a-digest")])
    with pytest.raises(StorageError):
        storage.to_storage_record([])


def test_storage_record_from_other_clients_tolerates_missing_checksums(storage):
    record = {
        "$type": STORAGE_HTTP_NSID,
        "shards": [
            {"url": "https://host/a.tar", "checksum": {"algorithm": "sha256", "digest": "AB" * 32}},
            {"url": "https://host/b.tar", "checksum": {"algorithm": "blake3", "digest": "00"}},
            {"url": "https://host/c.tar"},
        ],
    }
    assert storage.from_storage_record(record) == [
        ShardRef("https://host/a.tar", "ab" * 32),
        ShardRef("https://host/b.tar", None),
        ShardRef("https://host/c.tar", None),
    ]
    with pytest.raises(RecordError, match=r"shards\[0\].url"):
        storage.from_storage_record({"$type": STORAGE_HTTP_NSID, "shards": [{"checksum": {}}]})


def test_a_server_that_compresses_anyway_is_decoded(server, storage):
    data = _payload(200_000)
    server.objects["/gz.tar"] = data
    server.gzip = True
    with storage.open(f"{server.url}/gz.tar") as stream:
        assert stream.read() == data


def test_a_forked_worker_gets_its_own_connections(server, storage):
    import multiprocessing

    global _FORKED
    server.objects["/forked.tar"] = _payload(100_000)
    url = f"{server.url}/forked.tar"
    assert storage.open(url).read() == server.objects["/forked.tar"]  # the parent's pool now holds a connection
    _FORKED = (storage, url, id(storage.session))
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(_read_in_fork, range(4))
    finally:
        _FORKED = None
    expected = hashlib.sha256(server.objects["/forked.tar"]).hexdigest()
    for reused_parent_session, digest in results:
        assert not reused_parent_session
        assert digest == expected


_FORKED = None


def _read_in_fork(_index):
    storage, url, parent_session_id = _FORKED  # inherited through fork, not pickled
    with storage.open(url) as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()
    return id(storage.session) == parent_session_id, digest


def test_size_and_exists_work_on_a_server_that_refuses_head(server, storage):
    server.objects["/nohead.tar"] = b"12345"
    server.head_allowed = False
    assert storage.size(f"{server.url}/nohead.tar") == 5
    assert storage.exists(f"{server.url}/nohead.tar")
    assert not storage.exists(f"{server.url}/absent.tar")


def test_put_to_a_read_only_server_says_so(server, storage, tmp_path):
    server.read_only = True
    local = tmp_path / "a.tar"
    local.write_bytes(b"data")
    with pytest.raises(StorageError, match="does not accept PUT"):
        storage.put(str(local), f"{server.url}/a.tar")
