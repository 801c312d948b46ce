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
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    for name in ("ATDATA_PLC_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_ATPROTO_BLOB_LIMIT"):
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
def fault_server():
    server = FaultServer()
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
