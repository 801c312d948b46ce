"""Hostile URLs, hosts and servers: what a stranger's record can make the loader connect to (DESIGN D8; issue 7).

A record is data written by someone else, and so are the servers it names.
These tests play the stranger: entry records whose shard URLs are local files,
opaque URLs or loopback and private addresses; DID documents and ``did:web``
identities pointing at this machine; shard servers that drip, stall, never end,
redirect into the local network or answer 429 with absurd reset times; a PDS
whose listing never ends; and URLs that would publish a secret.

The network policy is on in every test: only the loopback servers a test
starts for a record to name are allowed, explicitly (``allow_hosts``), and the
servers a record must never reach count the requests they receive. Every
case runs under a time bound (:func:`bounded`), so a regression fails the
test rather than hanging the suite. Where the realistic path is a record read
from another account, the stranger publishes it on the local PDS and the
victim loads it.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import atdata_core
from atdata_core import Dataset, ShardWriter, packable
from atdata_core.atproto import Client, IdentityResolver, Session, clear_identity_cache
from atdata_core.errors import (
    AtdataError,
    NetworkPolicyError,
    RateLimited,
    RecordError,
    StorageError,
    ValidationError,
)
from atdata_core.index.sqlite import SqliteIndex
from atdata_core.plugins import reset_plugins
from atdata_core.schema import schema_record

pytestmark = pytest.mark.network

DID = "did:plc:strangerstrangerstranger"
SCHEMA_URI = f"at://{DID}/science.alt.dataset.schema/com.example.point:1.0.0"
ENTRY = "science.alt.dataset.entry"
STORAGE_HTTP = "science.alt.dataset.storageHttp"
DIGEST = "ab" * 32


@packable
class Point:
    x: int
    name: str


# --------------------------------------------------------------------------- time bounds


def bounded(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, failing the test if it has neither returned nor raised after ``seconds``.

    It runs in a daemon thread, so a hang is reported (and abandoned) instead of
    stopping the suite.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} was still running after {seconds} s: it would hang")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# --------------------------------------------------------------------------- hostile servers


class HostileServer:
    """A loopback HTTP server; each path a test scripts is one behaviour (:meth:`on`).

    ``hits`` lists the paths asked for, so a test can show a server it must
    never reach received nothing. Behaviours that never end stop when the
    server is closed.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.hits: list[str] = []
        self.stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                path = self.path.split("?", 1)[0]
                owner.hits.append(self.path)
                behaviour = owner.routes.get(path)
                try:
                    if behaviour is None:
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    else:
                        behaviour(self)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
                    pass  # the client gave up on us, as it should

            do_GET = do_HEAD = do_POST = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.httpd = Server((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def on(self, path: str, behaviour: Callable[[BaseHTTPRequestHandler], None]) -> str:
        self.routes[path] = behaviour
        return f"{self.url}{path}"

    def asked(self, path: str) -> int:
        return sum(1 for hit in self.hits if hit.split("?", 1)[0] == path)

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- behaviours

    def serve(self, data: bytes, status: int = 200, headers: dict[str, str] | None = None):
        def behaviour(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
                h.send_header(key, value)
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)

        return behaviour

    def drip(self, prefix: bytes = b"", interval: float = 0.5):
        """Headers at once, then ``prefix``, then one byte every ``interval`` seconds, forever."""

        def behaviour(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/x-tar")
            h.end_headers()
            h.wfile.write(prefix)
            while not self.stopping.wait(interval):
                h.wfile.write(b"\x01")
                h.wfile.flush()

        return behaviour

    def drip_headers(self, interval: float = 0.5):
        """A status line, then header bytes one at a time: the body never starts."""

        def behaviour(h: BaseHTTPRequestHandler) -> None:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.stopping.wait(interval):
                h.wfile.write(b"a")
                h.wfile.flush()

        return behaviour

    def stall(self, length: int = 1_000_000, sent: int = 100):
        """Promise ``length`` bytes, send ``sent``, then keep the connection open without a word."""

        def behaviour(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Length", str(length))
            h.end_headers()
            h.wfile.write(b"\x01" * sent)
            h.wfile.flush()
            self.stopping.wait()

        return behaviour

    def endless(self, prefix: bytes = b"", filler: bytes = b"\xff"):
        """``prefix``, then ``filler`` bytes forever, with no length: only the client can end it."""

        def behaviour(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.end_headers()
            h.wfile.write(prefix)
            block = filler * 65536
            while not self.stopping.is_set():
                h.wfile.write(block)

        return behaviour

    def redirect(self, location: str, status: int = 302):
        def behaviour(h: BaseHTTPRequestHandler) -> None:
            h.send_response(status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()

        return behaviour


@pytest.fixture
def hostile():
    servers: list[HostileServer] = []

    def start(host: str = "127.0.0.1") -> HostileServer:
        servers.append(HostileServer(host))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def victim_config(tmp_path, monkeypatch):
    """The victim's machine: no user configuration, quick retries, the default network policy."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    for name in ("ATDATA_NETWORK_ALLOW_HTTP", "ATDATA_NETWORK_ALLOW_PRIVATE", "ATDATA_PLC_URL",
                 "ATDATA_ATPROTO_RESOLVER", "ATDATA_HTTP_SHARD_DEADLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    monkeypatch.chdir(tmp_path)
    clear_identity_cache()
    reset_plugins()
    yield
    clear_identity_cache()
    reset_plugins()


def configure(monkeypatch, **settings: str) -> None:
    """Set ``ATDATA_<SECTION>_<KEY>`` variables (``http_shard_deadline="2"``) and rebuild the registries."""
    for key, value in settings.items():
        monkeypatch.setenv(f"ATDATA_{key.upper()}", value)
    reset_plugins()


def shard_bytes(tmp_path: Path, n: int = 3) -> tuple[bytes, str]:
    """One real shard of ``n`` Points, and its sha256."""
    with ShardWriter(str(tmp_path / "made-%06d.tar"), maxcount=100) as sink:
        for i in range(n):
            sink.write(Point(x=i, name=f"p{i}"))
    (info,) = sink.shards
    return Path(info.url).read_bytes(), info.sha256


def catalog(tmp_path: Path, urls: list[str], *, digest: str = DIGEST, size: dict | None = None) -> tuple[SqliteIndex, str]:
    """An index holding a stranger's schema and an entry whose storageHttp shards are ``urls``."""
    index = SqliteIndex(tmp_path / "catalog.sqlite")
    index.put_record(SCHEMA_URI, schema_record(Point, name="com.example.point", version="1.0.0"))
    uri = f"at://{DID}/{ENTRY}/3kaaaaaaaaa2a"
    record = {
        "$type": ENTRY,
        "name": "points",
        "schemaRef": SCHEMA_URI,
        "storage": {"$type": STORAGE_HTTP, "shards": [
            {"url": url, "checksum": {"algorithm": "sha256", "digest": digest}} for url in urls
        ]},
        "createdAt": "2025-01-01T00:00:00.000Z",
    }
    if size is not None:
        record["size"] = size
    index.put_record(uri, record)
    return index, uri


def load_all(uri: str, index: Any, **options: Any) -> list[Any]:
    return list(atdata_core.load(uri, Point, index=index, **options))


# --------------------------------------------------------------------------- local files and opaque URLs


@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "file:///proc/self/environ",
    "file:///dev/zero",
    "FILE:///etc/passwd",
    "file://localhost/etc/passwd",
    "/etc/passwd",
    "../../etc/passwd",
    "javascript:alert(1)",
    "data:application/x-tar;base64,AAAA",
])
def test_an_entry_never_names_a_local_file_or_an_opaque_url(tmp_path, url):
    index, uri = catalog(tmp_path, [url])
    # Refused as a malformed record (the lexicon wants a URI; storageHttp wants http(s)): nothing is opened.
    with pytest.raises(RecordError) as caught:
        bounded(10, load_all, uri, index)
    message = str(caught.value)
    assert url in message and ("not an http(s):// URL" in message or "format:uri" in message)
    assert "root:" not in message and os.environ.get("HOME", "/root") + "=" not in message  # no bytes of the file


def test_the_policy_holds_at_the_root_whatever_a_storage_mapper_returns(tmp_path, monkeypatch):
    # A storage plugin whose mapper hands back a local file and an opaque URL: the load path refuses both itself.
    from atdata_core.plugins import ShardRef, StorageBackendSpec, hookimpl, plugin_registered

    class CarelessMapper:
        def open(self, url):  # pragma: no cover - must never be reached
            raise AssertionError(f"opened {url}")

        def from_storage_record(self, record):
            return [ShardRef(url) for url in record["urls"]]

        def to_storage_record(self, shards):  # pragma: no cover
            raise NotImplementedError

    class Plugin:
        @hookimpl
        def atdata_storage_backends(self):
            return [StorageBackendSpec(name="careless", schemes=("careless",), record_types=("com.example.careless",),
                                       factory=lambda config: CarelessMapper())]

    index = SqliteIndex(tmp_path / "catalog.sqlite")
    index.put_record(SCHEMA_URI, schema_record(Point, name="com.example.point", version="1.0.0"))
    with plugin_registered(Plugin(), name="careless-storage"):
        for n, url in enumerate(["file:///etc/passwd", "/etc/passwd", "data:,x", "careless:opaque"]):
            uri = f"at://{DID}/{ENTRY}/3kaaaaaaaa{n}2a"
            index.put_record(uri, {
                "$type": ENTRY, "name": f"careless-{n}", "schemaRef": SCHEMA_URI,
                "storage": {"$type": "com.example.careless", "urls": [url]},
                "createdAt": "2025-01-01T00:00:00.000Z",
            })
            with pytest.raises(NetworkPolicyError, match="refused"):
                bounded(10, atdata_core.load, uri, Point, index=index)


def test_file_storage_refuses_a_url_a_record_named(tmp_path):
    from atdata_core._netpolicy import NetworkPolicy, RecordUrl
    from atdata_core.storage.file import FileStorage

    secret = tmp_path / "secret.txt"
    secret.write_text("do not read me")
    named = RecordUrl(str(secret), policy=NetworkPolicy(), named_by=f"at://{DID}/{ENTRY}/x")
    with pytest.raises(NetworkPolicyError) as caught:
        FileStorage().open(named)
    assert "never opens a local file" in str(caught.value) and "do not read me" not in str(caught.value)


def test_your_own_paths_and_loopback_urls_stay_unrestricted(tmp_path, hostile):
    data, _ = shard_bytes(tmp_path)
    local = tmp_path / "mine.tar"
    local.write_bytes(data)
    server = hostile()
    url = server.on("/mine.tar", server.serve(data))
    assert [p.x for p in bounded(10, list, Dataset[Point](str(local)))] == [0, 1, 2]
    assert [p.x for p in bounded(10, list, Dataset[Point](url))] == [0, 1, 2]
    # your own loopback server may redirect within your own machine
    moved = server.on("/moved.tar", server.redirect(url))
    assert [p.x for p in bounded(10, list, Dataset[Point](moved))] == [0, 1, 2]


def test_your_own_url_is_not_redirected_from_a_public_server_into_your_network(tmp_path, hostile, monkeypatch):
    import atdata_core._netguard as netguard

    # Only loopback servers run here: the one on 127.0.0.2 plays a public server.
    real = netguard.address_problem
    monkeypatch.setattr(netguard, "address_problem", lambda address: None if address == "127.0.0.2" else real(address))
    data, _ = shard_bytes(tmp_path)
    public, inside = hostile("127.0.0.2"), hostile()
    target = inside.on("/x.tar", inside.serve(data))
    url = public.on("/x.tar", public.redirect(target))
    with pytest.raises(NetworkPolicyError, match="redirected from a public server"):
        bounded(10, list, Dataset[Point](url))
    assert inside.hits == []
    # allowed by the user, the same redirect is followed
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", f"127.0.0.1:{inside.port}")
    reset_plugins()
    assert [p.x for p in bounded(10, list, Dataset[Point](url))] == [0, 1, 2]


# --------------------------------------------------------------------------- private addresses (SSRF)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "localhost", "foo.localhost", "[::1]", "[::ffff:127.0.0.1]",
    "0.0.0.0", "169.254.169.254", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "[fe80::1]",
    "[fc00::1]", "[2002:7f00:1::]", "224.0.0.1",
])
def test_an_entry_naming_a_non_public_address_is_refused_before_any_request(tmp_path, hostile, monkeypatch, host):
    canary = hostile()
    canary.on("/x.tar", canary.serve(b"never"))
    configure(monkeypatch, network_allow_http="1")  # so that only the address is judged
    index, uri = catalog(tmp_path, [f"http://{host}:{canary.port}/x.tar"])
    with pytest.raises(NetworkPolicyError) as caught:
        bounded(10, load_all, uri, index)
    message = str(caught.value)
    assert "refused" in message and "allow_hosts" in message and "allow_private" in message
    assert canary.hits == []


def test_plain_http_needs_allow_http(tmp_path, monkeypatch):
    index, uri = catalog(tmp_path, ["http://data.example.com/x.tar"])
    with pytest.raises(NetworkPolicyError, match=r"plain http .*allow_http"):
        bounded(10, atdata_core.load, uri, Point, index=index)


def test_an_allowed_loopback_server_serves_a_record_and_nothing_else_is_opened(tmp_path, hostile, allow_hosts):
    data, digest = shard_bytes(tmp_path)
    server, other = hostile(), hostile()
    url = server.on("/good.tar", server.serve(data))
    other.on("/x.tar", other.serve(data))
    allow_hosts(f"127.0.0.1:{server.port}")
    reset_plugins()
    index, uri = catalog(tmp_path, [url], digest=digest)
    assert [p.x for p in bounded(10, load_all, uri, index)] == [0, 1, 2]
    # the same entry shape on a port nobody allowed
    (tmp_path / "second").mkdir()
    index, uri = catalog(tmp_path / "second", [f"{other.url}/x.tar"], digest=digest)
    with pytest.raises(NetworkPolicyError):
        bounded(10, load_all, uri, index)
    assert other.hits == []


def test_a_host_name_that_resolves_to_loopback_is_refused_when_connecting(tmp_path, hostile, monkeypatch):
    # DNS cannot be made to lie here, so getaddrinfo does: rebind.example -> 127.0.0.1 (as a rebinding attacker would).
    canary = hostile()
    canary.on("/x.tar", canary.serve(b"never"))
    real = socket.getaddrinfo

    def lying(host, *args, **kwargs):
        return real("127.0.0.1" if host == "rebind.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lying)
    configure(monkeypatch, network_allow_http="1")
    index, uri = catalog(tmp_path, [f"http://rebind.example:{canary.port}/x.tar"])
    with pytest.raises(NetworkPolicyError) as caught:
        bounded(10, load_all, uri, index)
    assert "rebind.example resolves to 127.0.0.1, a loopback address" in str(caught.value)
    assert canary.hits == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_an_allowed_server_into_the_local_network_is_refused(
    tmp_path, hostile, allow_hosts, monkeypatch, status
):
    front, inside = hostile(), hostile()
    secret = inside.on("/admin", inside.serve(b"internal"))
    url = front.on("/x.tar", front.redirect(secret, status=status))
    allow_hosts(f"127.0.0.1:{front.port}")
    configure(monkeypatch, network_allow_http="1")  # so that only the address is judged
    index, uri = catalog(tmp_path, [url])
    with pytest.raises(NetworkPolicyError) as caught:
        bounded(10, load_all, uri, index)
    message = str(caught.value)
    assert "redirected" in message and f"127.0.0.1:{inside.port}" in message and "loopback" in message
    assert inside.hits == []


def test_a_redirect_to_a_name_that_resolves_privately_is_refused_at_the_connection(tmp_path, hostile, allow_hosts, monkeypatch):
    front, inside = hostile(), hostile()
    inside.on("/admin", inside.serve(b"internal"))
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, *a, **k: real("127.0.0.1" if host == "inside.example" else host, *a, **k))
    url = front.on("/x.tar", front.redirect(f"http://inside.example:{inside.port}/admin"))
    allow_hosts(f"127.0.0.1:{front.port}")
    configure(monkeypatch, network_allow_http="1")
    index, uri = catalog(tmp_path, [url])
    with pytest.raises(NetworkPolicyError, match="inside.example resolves to 127.0.0.1"):
        bounded(10, load_all, uri, index)
    assert inside.hits == []


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://example.com/x.tar", "javascript:alert(1)"])
def test_a_redirect_to_another_scheme_is_refused(tmp_path, hostile, allow_hosts, target):
    front = hostile()
    url = front.on("/x.tar", front.redirect(target))
    allow_hosts(f"127.0.0.1:{front.port}")
    reset_plugins()
    index, uri = catalog(tmp_path, [url])
    with pytest.raises(NetworkPolicyError, match="not an http"):
        bounded(10, load_all, uri, index)


def test_a_redirect_loop_stops_at_max_redirects(tmp_path, hostile, allow_hosts, monkeypatch):
    front = hostile()
    url = front.on("/loop.tar", front.redirect("/loop.tar"))
    allow_hosts(f"127.0.0.1:{front.port}")
    configure(monkeypatch, http_max_redirects="3")
    index, uri = catalog(tmp_path, [url])
    with pytest.raises(StorageError, match=r"more than 3 redirects.*max_redirects"):
        bounded(10, load_all, uri, index)
    assert front.asked("/loop.tar") == 4


def test_a_refused_shard_is_skipped_like_any_unreadable_shard(tmp_path, hostile, allow_hosts, caplog):
    data, digest = shard_bytes(tmp_path)
    good, front, inside = hostile(), hostile(), hostile()
    good_url = good.on("/good.tar", good.serve(data))
    bad_url = front.on("/bad.tar", front.redirect(inside.on("/admin", inside.serve(b"internal"))))
    allow_hosts(f"127.0.0.1:{good.port}", f"127.0.0.1:{front.port}")
    reset_plugins()
    index, uri = catalog(tmp_path, [bad_url, good_url], digest=digest)
    with caplog.at_level(logging.WARNING):
        got = bounded(10, load_all, uri, index, on_error="skip")
    assert [p.x for p in got] == [0, 1, 2] and inside.hits == []


# --------------------------------------------------------------------------- servers that never finish


def test_a_dripping_shard_server_is_stopped_by_the_shard_deadline(tmp_path, hostile, allow_hosts, monkeypatch):
    server = hostile()
    url = server.on("/drip.tar", server.drip(interval=0.2))
    allow_hosts(f"127.0.0.1:{server.port}")
    configure(monkeypatch, http_shard_deadline="1.5")
    index, uri = catalog(tmp_path, [url])
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"1.5 s \[http\] shard_deadline"):
        bounded(15, load_all, uri, index)
    assert time.monotonic() - started < 6


def test_your_own_dripping_server_is_stopped_by_the_shard_deadline_too(hostile, monkeypatch):
    from atdata_core.config import HttpSettings
    from atdata_core.storage.http import HttpStorage

    server = hostile()
    url = server.on("/drip.tar", server.drip(prefix=b"x" * 1000, interval=0.2))
    storage = HttpStorage(HttpSettings(shard_deadline=1.0, timeout=30.0))
    started = time.monotonic()
    with pytest.raises(StorageError, match="shard_deadline"):
        bounded(15, lambda: storage.open(url).read())
    assert time.monotonic() - started < 5


def test_headers_dripped_a_byte_at_a_time_are_stopped_by_the_shard_deadline(hostile):
    from atdata_core.config import HttpSettings
    from atdata_core.storage.http import HttpStorage

    server = hostile()
    url = server.on("/slow-headers.tar", server.drip_headers(interval=0.2))
    storage = HttpStorage(HttpSettings(shard_deadline=1.0, timeout=30.0, retries=3))
    started = time.monotonic()
    with pytest.raises(StorageError, match="shard_deadline"):
        bounded(15, storage.open, url)
    assert time.monotonic() - started < 5


def test_a_stalled_server_is_given_up_within_the_deadlines(hostile):
    from atdata_core.config import HttpSettings
    from atdata_core.storage.http import HttpStorage

    server = hostile()
    url = server.on("/stall.tar", server.stall())
    # per-read timeout short: resumes are tried, then given up
    quick = HttpStorage(HttpSettings(timeout=0.3, retries=2, backoff=0.01))
    with pytest.raises(StorageError, match=r"after 2 resumes|no progress"):
        bounded(15, lambda: quick.open(url).read())
    # per-read timeout long: the shard deadline ends it anyway
    slow = HttpStorage(HttpSettings(timeout=60.0, retries=5, shard_deadline=1.0))
    started = time.monotonic()
    with pytest.raises(StorageError, match="shard_deadline"):
        bounded(15, lambda: slow.open(url).read())
    assert time.monotonic() - started < 5


def test_an_endless_body_stops_past_the_size_its_record_gives(hostile, allow_hosts):
    from atdata_core._netpolicy import SIZE_SLACK, NetworkPolicy, RecordUrl
    from atdata_core.storage.http import HttpStorage

    server = hostile()
    url = server.on("/endless.tar", server.endless())
    allow_hosts(f"127.0.0.1:{server.port}")
    named = RecordUrl(url, policy=NetworkPolicy(allow_hosts=[f"127.0.0.1:{server.port}"]),
                      named_by=f"at://{DID}/{ENTRY}/x", recorded_bytes=10_000)
    stream = HttpStorage().open(named)
    got = 0

    def drain() -> None:
        nonlocal got
        while chunk := stream.read(65536):
            got += len(chunk)

    with pytest.raises(StorageError) as caught:
        bounded(15, drain)
    assert got <= 10_000 + SIZE_SLACK
    assert "gives it 10,000 bytes" in str(caught.value) and f"at://{DID}/{ENTRY}/x" in str(caught.value)


def test_a_body_announced_longer_than_its_record_is_refused_before_it_is_read(hostile):
    from atdata_core._netpolicy import NetworkPolicy, RecordUrl
    from atdata_core.storage.http import HttpStorage

    server = hostile()
    url = server.on("/huge.tar", server.stall(length=64 << 30, sent=0))
    named = RecordUrl(url, policy=NetworkPolicy(allow_hosts=[f"127.0.0.1:{server.port}"]), recorded_bytes=5_000)
    with pytest.raises(StorageError, match="announces 68,719,476,736 bytes"):
        bounded(10, HttpStorage().open, named)


def test_a_valid_shard_followed_by_endless_bytes_fails_in_bounded_time(tmp_path, hostile, allow_hosts):
    data, digest = shard_bytes(tmp_path)
    server = hostile()
    url = server.on("/tail.tar", server.endless(prefix=data))
    allow_hosts(f"127.0.0.1:{server.port}")
    reset_plugins()
    index, uri = catalog(tmp_path, [url], digest=digest, size={"samples": 3, "shards": 1, "bytes": len(data)})
    # With its checksum checked, the shard (with its endless tail) cannot be accepted: an atdata error, soon.
    with pytest.raises(AtdataError):
        bounded(30, load_all, uri, index)


@pytest.mark.parametrize("headers", [{"RateLimit-Reset": "1e30"}, {"Retry-After": "inf"}, {"Retry-After": "nan"},
                                     {"RateLimit-Reset": "-1e308"}])
def test_absurd_429_resets_are_reported_at_once(hostile, headers):
    from atdata_core.storage.http import HttpStorage

    server = hostile()
    url = server.on("/busy.tar", server.serve(b"", status=429, headers=headers))
    client_url = server.on("/xrpc/com.atproto.server.describeServer", server.serve(b"{}", status=429, headers=headers))
    with pytest.raises(StorageError, match="429"):
        bounded(10, HttpStorage(retries=2, backoff=0.01).open, url)
    with pytest.raises((RateLimited, AtdataError)):
        bounded(10, Client.anonymous(client_url.rsplit("/xrpc/", 1)[0], retries=2, backoff=0.01).describe_server)


# --------------------------------------------------------------------------- identities and PDS endpoints


def did_document(did: str, pds_url: str, handle: str = "mallory.test") -> bytes:
    import json

    return json.dumps({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds_url}],
    }).encode()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_did_web_on_loopback_is_not_fetched(hostile, host):
    server = hostile()
    did = f"did:web:{host}%3A{server.port}"
    server.on("/.well-known/did.json", server.serve(did_document(did, "https://pds.example.com")))
    with pytest.raises(NetworkPolicyError, match=f"allow_hosts = \\['{host}:{server.port}'\\]"):
        bounded(10, IdentityResolver(ttl=0).resolve_did, did)
    assert server.hits == []


def test_did_web_on_an_allowed_host_resolves(hostile, allow_hosts):
    server = hostile()
    did = f"did:web:localhost%3A{server.port}"
    server.on("/.well-known/did.json", server.serve(did_document(did, "https://pds.example.com")))
    allow_hosts(f"localhost:{server.port}")
    assert bounded(10, IdentityResolver(ttl=0).resolve_did, did).pds_url == "https://pds.example.com"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:{port}", "https://169.254.169.254", "https://[::1]:{port}",
                                      "http://localhost:{port}"])
def test_a_pds_endpoint_in_a_did_document_must_be_public(hostile, allow_hosts, endpoint):
    identity, canary = hostile(), hostile()
    did = f"did:web:localhost%3A{identity.port}"
    pds = endpoint.format(port=canary.port)
    identity.on("/.well-known/did.json", identity.serve(did_document(did, pds)))
    allow_hosts(f"localhost:{identity.port}")  # the identity host is trusted; the PDS it names is not
    client = Client.anonymous()
    with pytest.raises(NetworkPolicyError, match="the PDS endpoint in the DID document of"):
        bounded(10, client.get_record, did, ENTRY, "3kaaaaaaaaa2a")
    with pytest.raises(NetworkPolicyError):
        bounded(10, client.identity.pds_of, did)
    # a password is never sent there either
    with pytest.raises(NetworkPolicyError):
        bounded(10, Client.login, did, "hunter2", save=False)
    assert canary.hits == []


def test_a_handle_whose_well_known_host_is_loopback_is_not_asked(monkeypatch):
    # foo.localhost is a valid handle; its well-known file would be fetched from this machine.
    monkeypatch.setenv("ATDATA_ATPROTO_NAMESERVERS", "127.0.0.1:9")  # no DNS answer: the well-known file is next
    monkeypatch.setenv("ATDATA_HTTP_TIMEOUT", "0.5")
    with pytest.raises(AtdataError) as caught:
        bounded(20, IdentityResolver(ttl=0).resolve_handle, "victim.localhost")
    message = str(caught.value)
    assert "https://victim.localhost/.well-known/atproto-did (" in message
    assert "a name for this machine (loopback)" in message


# --------------------------------------------------------------------------- listings that never end


def listing(records: int, cursor: Callable[[int], str | None]):
    import json

    calls = {"n": 0}

    def behaviour(h: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        body = {"records": [
            {"uri": f"at://{DID}/{ENTRY}/3k{calls['n']:03d}{i:03d}aaaa2a", "cid": "bafy", "value": {"name": str(i)}}
            for i in range(records)
        ]}
        next_cursor = cursor(calls["n"])
        if next_cursor is not None:
            body["cursor"] = next_cursor
        data = json.dumps(body).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return behaviour, calls


def own_pds_client(url: str) -> Client:
    session = Session(did=DID, handle="me.test", pds_url=url, access_jwt="a", refresh_jwt="r")
    return Client(session=session, retries=1, backoff=0.01, timeout=5)


def test_a_listing_whose_cursor_repeats_stops_with_a_warning(hostile, caplog):
    server = hostile()
    behaviour, calls = listing(2, lambda n: "the-same-cursor")
    server.on("/xrpc/com.atproto.repo.listRecords", behaviour)
    with caplog.at_level(logging.WARNING, logger="atdata_core.atproto"):
        got = bounded(10, list, own_pds_client(server.url).list_records(DID, ENTRY))
    assert len(got) == 4 and calls["n"] == 2
    assert "a second time" in caplog.text


def test_a_listing_that_never_ends_stops_at_max_pages(hostile, caplog, monkeypatch):
    server = hostile()
    behaviour, calls = listing(1, lambda n: f"cursor-{n}")
    server.on("/xrpc/com.atproto.repo.listRecords", behaviour)
    monkeypatch.setenv("ATDATA_ATPROTO_MAX_PAGES", "7")
    with caplog.at_level(logging.WARNING, logger="atdata_core.atproto"):
        got = bounded(10, list, own_pds_client(server.url).list_records(DID, ENTRY))
    assert len(got) == 7 and calls["n"] == 7
    assert "[atproto] max_pages" in caplog.text


def test_a_listing_answer_that_is_not_a_listing_is_an_error(hostile):
    server = hostile()
    server.on("/xrpc/com.atproto.repo.listRecords", server.serve(b'["not", "a", "listing"]'))
    with pytest.raises(AtdataError, match="not a listing"):
        bounded(10, list, own_pds_client(server.url).list_records(DID, ENTRY))


# --------------------------------------------------------------------------- secrets never published


SECRET_URLS = [
    "https://user:s3cr3t@data.example.com/a.tar",
    "https://data.example.com/a.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2Fs3cr3t&X-Amz-Signature=s3cr3t",
    "https://data.example.com/a.tar?Expires=1&Signature=s3cr3t",
    "https://acct.blob.core.windows.net/c/a.tar?sv=2020&sig=s3cr3t",
    "https://data.example.com/a.tar?token=s3cr3t",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_a_url_with_credentials_is_never_published(url):
    from atdata_core.publish import publish_dataset
    from atdata_core.storage.http import shards_to_http_record

    client = Client.anonymous("http://127.0.0.1:9")  # nothing listens: any write would fail differently
    with pytest.raises(ValidationError) as caught:
        bounded(10, publish_dataset, client, "leaky", [(url, DIGEST, 1, 10)], schema=SCHEMA_URI)
    assert caught.value.rule == "credentials" and "s3cr3t" not in str(caught.value)
    with pytest.raises(StorageError) as caught:
        shards_to_http_record([(url, DIGEST)])
    assert "s3cr3t" not in str(caught.value)


def test_a_shard_writer_base_url_with_credentials_is_refused(tmp_path):
    with pytest.raises(ValueError, match="user name and password") as caught:
        ShardWriter(str(tmp_path / "x-%06d.tar"), base_url="https://user:s3cr3t@data.example.com/x")
    assert "s3cr3t" not in str(caught.value)


def test_a_record_url_survives_pickling_for_data_loader_workers():
    from atdata_core._netpolicy import NetworkPolicy, RecordUrl

    named = RecordUrl("https://data.example.com/a.tar", policy=NetworkPolicy(allow_http=True),
                      named_by=f"at://{DID}/{ENTRY}/x", recorded_bytes=12)
    copy = pickle.loads(pickle.dumps(named))
    assert isinstance(copy, RecordUrl) and copy == named
    assert (copy.policy, copy.named_by, copy.recorded_bytes) == (named.policy, named.named_by, 12)


# --------------------------------------------------------------------------- configuration


def test_network_settings_are_checked_and_named_by_source(tmp_path):
    from atdata_core.config import AtprotoSettings, HttpSettings, NetworkSettings, load_config
    from atdata_core.errors import ConfigError

    env = {"HOME": str(tmp_path), "ATDATA_SANDBOX_STATE": str(tmp_path / "none")}
    defaults = NetworkSettings.from_config(load_config(cwd=tmp_path, environ=env))
    assert (defaults.allow_http, defaults.allow_private, defaults.allow_hosts) == (False, False, ())
    allowed = NetworkSettings.from_config(load_config(cwd=tmp_path, environ=dict(
        env, ATDATA_NETWORK_ALLOW_HOSTS="NAS.lan.:8080,[::1]:9000,10.0.0.5", ATDATA_NETWORK_ALLOW_HTTP="yes")))
    assert allowed.allow_hosts == ("nas.lan:8080", "[::1]:9000", "10.0.0.5") and allowed.allow_http
    for name, value in (("ATDATA_NETWORK_ALLOW_HOSTS", "http://nas.lan/"), ("ATDATA_NETWORK_ALLOW_HOSTS", "nas:99999"),
                        ("ATDATA_NETWORK_ALLOW_PRIVATE", "perhaps"), ("ATDATA_HTTP_SHARD_DEADLINE", "0"),
                        ("ATDATA_HTTP_MAX_REDIRECTS", "-1"), ("ATDATA_ATPROTO_MAX_PAGES", "0")):
        config = load_config(cwd=tmp_path, environ=dict(env, **{name: value}))
        with pytest.raises(ConfigError, match=f"environment variable {name}"):
            NetworkSettings.from_config(config)
            HttpSettings.from_config(config)
            AtprotoSettings.from_config(config)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="checks command lines through /proc")
def test_a_running_sandbox_allows_exactly_its_own_two_hosts(tmp_path):
    import json
    import subprocess
    import sys

    from atdata_core.config import NetworkSettings, load_config
    from atdata_core.sandbox import _process

    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = subprocess.Popen(argv)
    try:
        while _process.read_cmdline(proc.pid) != tuple(argv):
            time.sleep(0.01)
        state = tmp_path / "state"
        state.mkdir()
        (state / "sandbox.json").write_text(json.dumps({
            "version": 1, "pds_url": "http://localhost:2583", "plc_url": "http://localhost:2582",
            "data_dir": str(state / "d"), "owns_data_dir": False, "accounts": [],
            "processes": [_process.ProcessRecord("pds", proc.pid, tuple(argv), _process.start_time(proc.pid)).to_json()],
        }))
        (tmp_path / "atdata.toml").write_text('[network]\nallow_hosts = ["nas.lan"]\n')
        env = {"HOME": str(tmp_path / "home"), "ATDATA_SANDBOX_STATE": str(state)}
        settings = NetworkSettings.from_config(load_config(cwd=tmp_path, environ=env))
        assert settings.allow_hosts == ("nas.lan", "localhost:2582", "localhost:2583")
        assert (settings.allow_http, settings.allow_private) == (False, False)
    finally:
        proc.kill()
        proc.wait()
    assert NetworkSettings.from_config(load_config(cwd=tmp_path, environ=env)).allow_hosts == ("nas.lan",)


# --------------------------------------------------------------------------- the realistic path: a stranger on the PDS


@pytest.fixture
def victim(tmp_path, monkeypatch, pds_sandbox):
    """This process is the victim's machine: the sandbox's PLC directory, its PDS allowed (as the sandbox does)."""
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    reset_plugins()
    return pds_sandbox


@pytest.fixture
def mallory(make_account, tmp_path, victim):
    from atdata_core.atproto import SessionStore

    account = make_account("mallory")
    client = Client.login(account.did, account.password, pds_url=account.pds_url,
                          store=SessionStore(tmp_path / "mallory-sessions"))
    return account, client


def publish_hostile_entry(client: Client, urls: list[str], schema_uri: str | None = None) -> str:
    from atdata_core.publish import publish_schema

    schema_uri = schema_uri or publish_schema(client, Point, schema_id="com.example.point", version="1.0.0").uri
    record = {
        "$type": ENTRY, "name": "innocent", "schemaRef": schema_uri,
        "storage": {"$type": STORAGE_HTTP, "shards": [
            {"url": url, "checksum": {"algorithm": "sha256", "digest": DIGEST}} for url in urls
        ]},
        "createdAt": "2025-06-01T00:00:00.000Z",
    }
    uri, _ = client.create_record(ENTRY, record, validate=False)
    return uri


@pytest.mark.parametrize("url", ["file:///etc/passwd", "file:///proc/self/environ", "file:///dev/zero",
                                 "javascript:alert(1)", "data:,evil", "etc/passwd"])
def test_a_strangers_entry_naming_a_local_file_is_refused(mallory, url):
    _, client = mallory
    uri = publish_hostile_entry(client, [url])
    with pytest.raises(RecordError, match="never local files|format:uri"):
        bounded(30, atdata_core.load, uri)


def test_a_strangers_entry_pointing_at_this_machine_is_refused(mallory, hostile, monkeypatch):
    _, client = mallory
    canary = hostile()
    canary.on("/x.tar", canary.serve(b"never"))
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HTTP", "1")
    reset_plugins()
    for url in (f"http://127.0.0.1:{canary.port}/x.tar", f"http://localhost:{canary.port}/x.tar",
                "http://169.254.169.254/latest/meta-data/"):
        uri = publish_hostile_entry(client, [url])
        with pytest.raises(NetworkPolicyError):
            bounded(30, lambda: list(atdata_core.load(uri)))
    assert canary.hits == []


def test_a_strangers_schema_ref_to_a_did_web_on_loopback_is_not_fetched(mallory, hostile):
    _, client = mallory
    canary = hostile()
    uri = publish_hostile_entry(
        client, ["https://data.example.com/a.tar"],
        schema_uri=f"at://did:web:localhost%3A{canary.port}/science.alt.dataset.schema/com.example.point:1.0.0",
    )
    with pytest.raises(NetworkPolicyError, match=f"localhost:{canary.port}"):
        bounded(30, atdata_core.load, uri)
    assert canary.hits == []
