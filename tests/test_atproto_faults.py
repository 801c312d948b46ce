"""ATProto client behaviour a real PDS cannot be made to show on demand.

A small HTTP server on loopback plays the PDS (or a did:web host) and answers
what each test scripts: 503s, 429s with reset times, hanging answers, error
envelopes, an expired token. A PDS that is down is a closed loopback port.
Nothing here needs the sandbox.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from atdata_core.atproto import Client, Session, clear_identity_cache, encode_record, resolve_did
from atdata_core.atproto import IdentityResolver
from atdata_core.errors import (
    IdentityError,
    RateLimited,
    RecordError,
    ServiceUnavailable,
    StorageError,
    ValidationError,
    XrpcError,
)

FAST = {"retries": 2, "backoff": 0.01, "timeout": 5.0}


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """No user or project configuration leaks in; sessions go to a temporary folder."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path / "no-sandbox"))  # a sandbox the user runs stays out
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    for name in ("ATDATA_PLC_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_ATPROTO_BLOB_LIMIT", "ATDATA_ATPROTO_NAMESERVERS",
                 "ATDATA_SANDBOX_PDS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    clear_identity_cache()
    yield
    clear_identity_cache()


class Seen:
    def __init__(self, method: str, path: str, query: dict, headers: dict, body: bytes, at: float):
        self.method, self.path, self.query, self.headers, self.body, self.at = method, path, query, headers, body, at


Reply = tuple[int, dict, bytes]


class FaultServer:
    """A loopback HTTP server whose answers a test scripts per path.

    ``script[path]`` is a list of replies used in turn (the last one repeats),
    each ``(status, headers, body)`` or a callable taking the request and
    returning one.
    """

    def __init__(self):
        self.script: dict[str, list] = {}
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Seen(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers), body, time.time()
                )
                owner.seen.append(request)
                replies = owner.script.get(parts.path)
                if not replies:
                    reply: Reply = (404, {}, b'{"error":"MethodNotImplemented","message":"not scripted"}')
                else:
                    item = replies.pop(0) if len(replies) > 1 else replies[0]
                    reply = item(request) if callable(item) else item
                status, headers, payload = reply
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def on(self, path: str, *replies: Reply | Callable[[Seen], Reply]) -> None:
        self.script[path] = list(replies)

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ok(body: dict, headers: dict | None = None) -> Reply:
    return 200, headers or {}, json.dumps(body).encode()


def error(status: int, name: str, message: str, headers: dict | None = None) -> Reply:
    return status, headers or {}, json.dumps({"error": name, "message": message}).encode()


@pytest.fixture
def fault_server(allow_hosts):
    server = FaultServer()
    # It plays a did:web host and the PDS a DID document names: loopback, allowed for the test only.
    allow_hosts(f"localhost:{server.port}", f"127.0.0.1:{server.port}")
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return port


DESCRIBE = "/xrpc/com.atproto.server.describeServer"
CREATE = "/xrpc/com.atproto.repo.createRecord"
UPLOAD = "/xrpc/com.atproto.repo.uploadBlob"
REFRESH = "/xrpc/com.atproto.server.refreshSession"
SERVER_INFO = {"did": "did:web:localhost", "availableUserDomains": [".test"]}
DID = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
LABEL = {
    "$type": "science.alt.dataset.label",
    "name": "mnist",
    "datasetUri": f"at://{DID}/science.alt.dataset.entry/3lbxyz2abcd22",
    "createdAt": "2026-01-01T00:00:00.000Z",
}


def logged_in(url: str, **options) -> Client:
    """A client holding a session for the PDS at ``url`` (no login call made)."""
    session = Session(did=DID, handle="alice.test", pds_url=url, access_jwt="access-1", refresh_jwt="refresh-1")
    return Client(session=session, **{**FAST, **options})


# ------------------------------------------------------------------ retries and outages


def test_a_server_that_answers_503_twice_then_succeeds_is_retried(fault_server):
    fault_server.on(DESCRIBE, error(503, "NotReady", "warming up"), error(503, "NotReady", "warming up"), ok(SERVER_INFO))
    client = Client.anonymous(fault_server.url, **FAST)
    assert client.describe_server()["did"] == "did:web:localhost"
    assert len(fault_server.calls(DESCRIBE)) == 3


def test_a_server_that_keeps_failing_is_reported_after_the_configured_retries(fault_server):
    fault_server.on(DESCRIBE, error(502, "BadGateway", "upstream down"))
    client = Client.anonymous(fault_server.url, retries=3, backoff=0.01)
    with pytest.raises(ServiceUnavailable) as caught:
        client.describe_server()
    message = str(caught.value)
    assert f"127.0.0.1:{fault_server.port}" in message
    assert "com.atproto.server.describeServer" in message and "HTTP 502" in message
    assert "Tried 4 times" in message
    assert len(fault_server.calls(DESCRIBE)) == 4


def test_a_pds_that_is_down_is_reported_as_unavailable_naming_the_host(closed_port):
    client = Client.anonymous(f"http://127.0.0.1:{closed_port}", retries=2, backoff=0.01)
    with pytest.raises(ServiceUnavailable) as caught:
        client.describe_server()
    message = str(caught.value)
    assert f"http://127.0.0.1:{closed_port}" in message
    assert "connection refused" in message and "Tried 3 times" in message


def test_retries_come_from_the_configuration(closed_port, monkeypatch):
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    client = Client.anonymous(f"http://127.0.0.1:{closed_port}")
    with pytest.raises(ServiceUnavailable, match="Tried 2 times"):
        client.describe_server()


def test_a_server_that_does_not_answer_in_time_is_retried_then_reported(fault_server):
    def hang(request):
        time.sleep(1.0)
        return ok(SERVER_INFO)

    fault_server.on(DESCRIBE, hang)
    client = Client.anonymous(fault_server.url, retries=1, backoff=0.01, timeout=0.2)
    with pytest.raises(ServiceUnavailable, match=r"no answer within 0.2 s"):
        client.describe_server()
    assert len(fault_server.calls(DESCRIBE)) == 2


# ------------------------------------------------------------------ rate limits


def test_429_waits_until_the_ratelimit_reset_time_then_retries(fault_server):
    reset = math.ceil(time.time()) + 1
    fault_server.on(
        DESCRIBE,
        error(429, "RateLimitExceeded", "Rate Limit Exceeded", {"RateLimit-Reset": str(reset), "RateLimit-Remaining": "0"}),
        ok(SERVER_INFO),
    )
    client = Client.anonymous(fault_server.url, **FAST)
    assert client.describe_server()["did"] == "did:web:localhost"
    first, second = fault_server.calls(DESCRIBE)
    # The retry came once the reset time the server gave had passed, not before.
    assert second.at >= reset - 0.05


def test_429_with_retry_after_seconds_waits_then_retries(fault_server):
    fault_server.on(DESCRIBE, error(429, "RateLimitExceeded", "slow down", {"Retry-After": "1"}), ok(SERVER_INFO))
    client = Client.anonymous(fault_server.url, **FAST)
    client.describe_server()
    first, second = fault_server.calls(DESCRIBE)
    assert second.at - first.at >= 0.95


def test_429_with_a_reset_beyond_the_maximum_wait_is_reported_with_when_to_retry(fault_server):
    reset = int(time.time()) + 3600
    fault_server.on(DESCRIBE, error(429, "RateLimitExceeded", "Rate Limit Exceeded", {"RateLimit-Reset": str(reset)}))
    client = Client.anonymous(fault_server.url, max_rate_wait=60, **FAST)
    with pytest.raises(RateLimited) as caught:
        client.describe_server()
    message = str(caught.value)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(reset))
    assert f"Try again after {when}" in message
    assert "max_rate_wait" in message
    assert len(fault_server.calls(DESCRIBE)) == 1  # it did not sit waiting for an hour


# ------------------------------------------------------------------ XRPC errors and sessions


def test_an_xrpc_error_envelope_becomes_an_xrpc_error(fault_server):
    fault_server.on(CREATE, error(400, "InvalidSwap", "Record was at bafy..."))
    client = logged_in(fault_server.url)
    with pytest.raises(XrpcError) as caught:
        client.create_record("science.alt.dataset.label", LABEL)
    err = caught.value
    assert (err.method, err.status, err.error, err.message) == (
        "com.atproto.repo.createRecord", 400, "InvalidSwap", "Record was at bafy...",
    )
    assert len(fault_server.calls(CREATE)) == 1  # a 4xx is an answer, not retried


def test_an_expired_access_token_is_refreshed_and_the_call_retried_once(fault_server):
    created = {"uri": f"at://{DID}/science.alt.dataset.label/3lbxyz2abcd22", "cid": "bafyreib2rxk3rh6kzwq"}
    fault_server.on(CREATE, error(400, "ExpiredToken", "Token has expired"), ok(created))
    fault_server.on(REFRESH, ok({"did": DID, "handle": "alice.test", "accessJwt": "access-2", "refreshJwt": "refresh-2"}))
    client = logged_in(fault_server.url)
    assert client.create_record("science.alt.dataset.label", LABEL) == (created["uri"], created["cid"])
    first, second = fault_server.calls(CREATE)
    assert first.headers["Authorization"] == "Bearer access-1"
    assert fault_server.calls(REFRESH)[0].headers["Authorization"] == "Bearer refresh-1"
    assert second.headers["Authorization"] == "Bearer access-2"
    assert json.loads(second.body) == json.loads(first.body)
    assert client.session.refresh_jwt == "refresh-2"


# ------------------------------------------------------------------ limits, before sending


def test_a_blob_over_the_advertised_limit_is_refused_before_it_is_sent(fault_server):
    fault_server.on(DESCRIBE, ok({**SERVER_INFO, "blobUploadLimit": 1000}))
    fault_server.on(UPLOAD, ok({"blob": {}}))
    client = logged_in(fault_server.url)
    with pytest.raises(StorageError) as caught:
        client.upload_blob(b"x" * 1001, "application/octet-stream")
    assert "1,001 bytes" in str(caught.value) and "at most 1,000 bytes" in str(caught.value)
    assert fault_server.calls(UPLOAD) == []


def test_without_an_advertised_limit_the_configured_blob_limit_applies(fault_server, monkeypatch):
    monkeypatch.setenv("ATDATA_ATPROTO_BLOB_LIMIT", "2048")
    fault_server.on(DESCRIBE, ok(SERVER_INFO))
    client = logged_in(fault_server.url)
    with pytest.raises(StorageError, match="at most 2,048 bytes"):
        client.upload_blob(b"x" * 4096, "application/octet-stream")
    assert fault_server.calls(UPLOAD) == []


def test_a_wildcard_content_type_is_refused(fault_server):
    fault_server.on(DESCRIBE, ok(SERVER_INFO))
    client = logged_in(fault_server.url)
    with pytest.raises(StorageError, match="not a MIME type"):
        client.upload_blob(b"abc", "*/*")
    assert fault_server.calls(UPLOAD) == []


def test_an_invalid_record_is_refused_with_its_path_before_any_network_call(closed_port):
    client = logged_in(f"http://127.0.0.1:{closed_port}", retries=0)
    bad = {**LABEL, "datasetUri": "not a uri"}
    with pytest.raises(ValidationError) as caught:
        client.create_record("science.alt.dataset.label", bad)
    assert caught.value.path == "$.datasetUri"
    # The same client with a valid record does reach for the network, and finds it closed.
    with pytest.raises(ServiceUnavailable):
        client.create_record("science.alt.dataset.label", LABEL)


# ------------------------------------------------------------------ encoding


def test_bytes_are_encoded_as_unpadded_standard_base64():
    record = encode_record({"data": b"ab", "nested": [b"\xfb\xff"]}, "test.atdata.thing")
    assert record == {"$type": "test.atdata.thing", "data": {"$bytes": "YWI"}, "nested": [{"$bytes": "+/8"}]}


def test_blob_refs_pass_through_unchanged():
    blob = {"$type": "blob", "ref": {"$link": "bafkreia"}, "mimeType": "image/png", "size": 3}
    assert encode_record({"blob": blob}, "test.atdata.thing")["blob"] == blob


def test_floats_are_refused_with_their_path():
    with pytest.raises(RecordError, match=r"\$\.size\.ratio: 0\.5 is a float"):
        encode_record({"size": {"ratio": 0.5}}, "test.atdata.thing")


def test_a_record_whose_type_is_not_its_collection_is_refused():
    with pytest.raises(RecordError, match="science.alt.dataset.label"):
        encode_record(LABEL, "science.alt.dataset.entry", validate=False)


def test_a_record_over_one_megabyte_is_refused_naming_the_limit_and_the_size():
    big = {"text": "x" * 1_000_000}
    with pytest.raises(RecordError) as caught:
        encode_record(big, "test.atdata.thing")
    message = str(caught.value)
    assert "at most 1,000,000 bytes" in message and "1,000,039 bytes" in message  # {"$type":"test.atdata.thing","text":"..."}


# ------------------------------------------------------------------ identity on loopback


def did_web_server(server: FaultServer, handle: str, pds_url: str) -> str:
    did = f"did:web:localhost%3A{server.port}"
    document = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds_url}],
    }
    server.on("/.well-known/did.json", ok(document))
    return did


def test_did_web_on_localhost_resolves_over_http(fault_server):
    did = did_web_server(fault_server, "carol.test", "http://127.0.0.1:9")
    document = resolve_did(did)
    assert (document.did, document.handle, document.pds_url) == (did, "carol.test", "http://127.0.0.1:9")


def test_a_did_document_for_another_did_is_refused(fault_server):
    did_web_server(fault_server, "carol.test", "http://127.0.0.1:9")
    resolver = IdentityResolver(ttl=0)
    other = f"did:web:localhost%3A{fault_server.port}".replace("localhost", "127.0.0.1")
    with pytest.raises(IdentityError, match="refusing it"):
        resolver.resolve_did(other)


def test_a_handle_whose_did_document_does_not_name_it_back_is_not_trusted(fault_server):
    did = did_web_server(fault_server, "carol.test", fault_server.url)
    fault_server.on("/xrpc/com.atproto.identity.resolveHandle", ok({"did": did}))
    resolver = IdentityResolver(resolvers=[fault_server.url], ttl=0)
    assert resolver.resolve_handle("carol.test") == did
    with pytest.raises(IdentityError) as caught:
        resolver.resolve_handle("mallory.test")
    message = str(caught.value)
    assert "mallory.test" in message and "claims the handle carol.test" in message and "not verified" in message


def test_an_unknown_did_plc_names_the_directory_asked(fault_server):
    fault_server.on(f"/{DID}", error(404, "NotFound", f"DID not registered: {DID}"))
    with pytest.raises(IdentityError) as caught:
        resolve_did(DID, plc_url=fault_server.url)
    assert DID in str(caught.value) and fault_server.url in str(caught.value)


# ------------------------------------------------------------------ batching


APPLY = "/xrpc/com.atproto.repo.applyWrites"


def applied(request: Seen) -> Reply:
    writes = json.loads(request.body)["writes"]
    return ok({"results": [
        {"$type": "com.atproto.repo.applyWrites#createResult", "uri": f"at://{DID}/{w['collection']}/{i}", "cid": "bafy"}
        for i, w in enumerate(writes)
    ]})


def test_batches_are_also_split_to_keep_each_request_under_the_body_limit(fault_server):
    fault_server.on(APPLY, applied)
    client = logged_in(fault_server.url)
    big = [{"text": "x" * 400_000} for _ in range(3)]
    results = client.apply_writes([{"action": "create", "collection": "test.atdata.bulky", "value": v} for v in big])
    assert len(results) == 3
    bodies = [request.body for request in fault_server.calls(APPLY)]
    assert [len(json.loads(body)["writes"]) for body in bodies] == [2, 1]
    assert all(len(body) <= 1_000_000 for body in bodies)


def test_a_failed_later_batch_reports_what_was_already_applied(fault_server):
    fault_server.on(APPLY, applied, error(400, "InvalidRequest", "something broke"))
    client = logged_in(fault_server.url)
    from atdata_core.atproto import Create

    with pytest.raises(XrpcError) as caught:
        client.apply_writes([Create("science.alt.dataset.label", LABEL) for _ in range(250)])
    assert len(caught.value.applied) == 200
    assert "200 of 250 writes were applied" in "\n".join(caught.value.__notes__)


def test_did_documents_are_cached_for_the_ttl_only(fault_server):
    did = did_web_server(fault_server, "carol.test", "http://127.0.0.1:9")
    cached = IdentityResolver(ttl=60)
    cached.resolve_did(did)
    cached.resolve_did(did)
    assert len(fault_server.calls("/.well-known/did.json")) == 1
    clear_identity_cache()
    uncached = IdentityResolver(ttl=0)
    uncached.resolve_did(did)
    uncached.resolve_did(did)
    assert len(fault_server.calls("/.well-known/did.json")) == 3


# ------------------------------------------------------------------ the one retry policy


def test_a_host_name_that_does_not_resolve_is_reported_at_once_not_retried():
    client = Client.anonymous("http://pds.atdata-nowhere.invalid", retries=3, backoff=0.01)
    with pytest.raises(ServiceUnavailable) as caught:
        client.describe_server()
    message = str(caught.value)
    assert "pds.atdata-nowhere.invalid" in message and "does not resolve" in message and "not retried" in message
    assert "Tried" not in message  # the retry loop never saw it


def test_http_storage_does_not_retry_a_host_name_that_does_not_resolve():
    from atdata_core.storage.http import HttpStorage

    storage = HttpStorage(retries=3, backoff=0.01)
    with pytest.raises(StorageError) as caught:
        storage.open("http://shards.atdata-nowhere.invalid/data-000000.tar")
    assert "does not resolve" in str(caught.value) and "failed after" not in str(caught.value)


@pytest.mark.parametrize("headers", [{"RateLimit-Reset": "1e30"}, {"RateLimit-Reset": "inf"}, {"Retry-After": "inf"}])
def test_an_absurd_rate_limit_reset_is_reported_not_waited_for(fault_server, headers):
    fault_server.on(DESCRIBE, error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers))
    client = Client.anonymous(fault_server.url, max_rate_wait=60, **FAST)
    with pytest.raises(RateLimited) as caught:
        client.describe_server()
    assert "longer than the 60 s this client waits" in str(caught.value)
    assert len(fault_server.calls(DESCRIBE)) == 1


def test_the_deadline_stops_retries_before_they_are_used_up(fault_server):
    fault_server.on(DESCRIBE, error(503, "NotReady", "warming up"))
    # 0.3 s, then 0.6 s of backoff: the second sleep would end after the 0.5 s deadline.
    client = Client.anonymous(fault_server.url, retries=10, backoff=0.3, deadline=0.5)
    with pytest.raises(ServiceUnavailable) as caught:
        client.describe_server()
    assert "0.5 s deadline" in str(caught.value) and "[http] deadline" in str(caught.value)
    assert len(fault_server.calls(DESCRIBE)) == 2


def test_http_storage_waits_for_a_429s_retry_after_like_the_client(fault_server):
    from atdata_core.storage.http import HttpStorage

    fault_server.on("/busy.tar", (429, {"Retry-After": "1"}, b""), (200, {"Content-Type": "application/x-tar"}, b"shard"))
    storage = HttpStorage(retries=2, backoff=0.01, timeout=5)
    with storage.open(f"{fault_server.url}/busy.tar") as stream:
        assert stream.read() == b"shard"
    first, second = fault_server.calls("/busy.tar")
    assert second.at - first.at >= 0.95


def test_http_storage_reports_a_rate_limit_beyond_the_maximum_wait(fault_server):
    from atdata_core.storage.http import HttpStorage

    fault_server.on("/busy.tar", (429, {"Retry-After": "3600"}, b""))
    with pytest.raises(StorageError, match=r"busy\.tar.*HTTP 429.*max_rate_wait"):
        HttpStorage(retries=2, backoff=0.01).open(f"{fault_server.url}/busy.tar")
    assert len(fault_server.calls("/busy.tar")) == 1


# ------------------------------------------------------------------ handles through DNS


class DnsResponder:
    """A DNS server on loopback UDP: answers TXT questions from ``records``, NXDOMAIN otherwise.

    A real exchange in DNS wire format (dnspython's messages), so the resolver
    under test sends and parses real packets.
    """

    def __init__(self, records: dict[str, list[str]]):
        import dns.message
        import dns.rcode
        import dns.rrset

        self.records = records
        self.questions: list[tuple[str, float]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()

        def serve():
            self.sock.settimeout(0.05)
            while not self._stop.is_set():
                try:
                    packet, peer = self.sock.recvfrom(4096)
                except (TimeoutError, OSError):
                    continue
                query = dns.message.from_wire(packet)
                name = query.question[0].name.to_text()
                self.questions.append((name, time.time()))
                response = dns.message.make_response(query)
                if name in self.records:
                    texts = [json.dumps(text) for text in self.records[name]]
                    response.answer.append(dns.rrset.from_text(name, 60, "IN", "TXT", *texts))
                else:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                self.sock.sendto(response.to_wire(), peer)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self):
        self._stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def dns_responder():
    servers = []

    def start(records: dict[str, list[str]]) -> DnsResponder:
        server = DnsResponder(records)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


RESOLVE = "/xrpc/com.atproto.identity.resolveHandle"


def test_a_handle_resolves_through_its_dns_txt_record_first(fault_server, dns_responder, monkeypatch):
    did = did_web_server(fault_server, "carol.example.org", "http://127.0.0.1:9")
    dns = dns_responder({"_atproto.carol.example.org.": [f"did={did}"]})
    monkeypatch.setenv("ATDATA_ATPROTO_NAMESERVERS", f"127.0.0.1:{dns.port}")
    # A resolver server that would answer otherwise: DNS comes first, so it is never asked.
    fault_server.on(RESOLVE, ok({"did": "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"}))
    resolver = IdentityResolver(resolvers=[fault_server.url], ttl=0)
    assert resolver.resolve_handle("Carol.Example.Org") == did
    assert [name for name, _ in dns.questions] == ["_atproto.carol.example.org."]
    assert fault_server.calls(RESOLVE) == []


def test_without_a_dns_record_the_resolver_servers_are_asked_after_the_well_known_file(
    fault_server, dns_responder, monkeypatch
):
    handle = "dave.atdata-nowhere.invalid"  # no DNS name: its well-known file cannot be fetched either
    did = did_web_server(fault_server, handle, "http://127.0.0.1:9")
    dns = dns_responder({})
    monkeypatch.setenv("ATDATA_ATPROTO_NAMESERVERS", f"127.0.0.1:{dns.port}")
    fault_server.on(RESOLVE, ok({"did": did}))
    assert IdentityResolver(resolvers=[fault_server.url], ttl=0).resolve_handle(handle) == did
    (asked, asked_at), = dns.questions
    assert asked == f"_atproto.{handle}."
    assert fault_server.calls(RESOLVE)[0].at >= asked_at


def test_a_handle_that_resolves_nowhere_lists_every_way_tried(fault_server, dns_responder, monkeypatch):
    handle = "erin.atdata-nowhere.invalid"
    dns = dns_responder({f"_atproto.{handle}.": ["not a did"]})
    monkeypatch.setenv("ATDATA_ATPROTO_NAMESERVERS", f"127.0.0.1:{dns.port}")
    fault_server.on(RESOLVE, error(400, "InvalidRequest", "Unable to resolve handle"))
    with pytest.raises(IdentityError) as caught:
        IdentityResolver(resolvers=[fault_server.url], ttl=0).resolve_handle(handle)
    message = str(caught.value)
    assert f"DNS TXT _atproto.{handle} (no did= value)" in message
    assert f"https://{handle}/.well-known/atproto-did" in message and "does not resolve" in message
    assert f"127.0.0.1:{fault_server.port} (InvalidRequest: Unable to resolve handle)" in message
