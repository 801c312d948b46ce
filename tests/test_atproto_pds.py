"""The ATProto client against the real reference PDS and PLC directory of the sandbox."""

from __future__ import annotations

import json
import socket
import stat
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import pytest
import requests

from atdata_core import atproto
from atdata_core.atproto import Client, Create, Delete, SessionStore, Update, clear_identity_cache
from atdata_core.errors import (
    AuthError,
    IdentityError,
    RecordError,
    RecordNotFound,
    ServiceUnavailable,
    StorageError,
    ValidationError,
    XrpcError,
)

LABEL = "science.alt.dataset.label"
FAST = {"retries": 1, "backoff": 0.01}


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch, pds_sandbox):
    """Sessions in a temporary config folder; DIDs resolved by the sandbox's PLC directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    monkeypatch.delenv("ATDATA_ATPROTO_RESOLVER", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.chdir(tmp_path)
    clear_identity_cache()
    yield
    clear_identity_cache()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def label(did: str, name: str = "mnist", **extra) -> dict:
    return {
        "$type": LABEL,
        "name": name,
        "datasetUri": f"at://{did}/science.alt.dataset.entry/3lbxyz2abcd22",
        "createdAt": now(),
        **extra,
    }


def rkey_of(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


class RecordingProxy:
    """A loopback HTTP proxy in front of one server, recording the XRPC methods that pass through it.

    A client logged in through it has the proxy as "its PDS", so the log shows
    which calls went to its own PDS and which went elsewhere.
    """

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.methods: list[str] = []
        owner = self
        upstream = requests.Session()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                owner.methods.append(self.path.split("?")[0].rsplit("/", 1)[-1])
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                answer = upstream.request(self.command, owner.target + self.path, headers=headers, data=body)
                payload = answer.content
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "content-encoding", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(pds_sandbox):
    server = RecordingProxy(pds_sandbox.pds_url)
    yield server
    server.close()


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ------------------------------------------------------------------ login and sessions


def test_login_by_did_finds_the_pds_through_the_plc_directory(pds_sandbox, make_account):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password)
    assert (client.did, client.handle, client.pds_url) == (alice.did, alice.handle, pds_sandbox.pds_url)
    uri, _ = client.create_record(LABEL, label(alice.did))
    assert uri.startswith(f"at://{alice.did}/{LABEL}/")


def test_login_by_handle_resolves_it_through_the_configured_resolver(pds_sandbox, make_account, monkeypatch):
    alice = make_account("alice")
    monkeypatch.setenv("ATDATA_ATPROTO_RESOLVER", pds_sandbox.pds_url)
    client = atproto.login(f"@{alice.handle}", alice.password)
    assert (client.did, client.handle, client.pds_url) == (alice.did, alice.handle, pds_sandbox.pds_url)


def test_a_test_handle_resolves_on_the_sandbox_pds_with_no_resolver_configured(pds_sandbox, make_account, monkeypatch):
    alice = make_account("alice")
    # What the running-sandbox configuration layer sets (or `export ATDATA_SANDBOX_PDS_URL=...`).
    monkeypatch.setenv("ATDATA_SANDBOX_PDS_URL", pds_sandbox.pds_url)
    client = atproto.login(alice.handle, alice.password)
    assert (client.did, client.handle, client.pds_url) == (alice.did, alice.handle, pds_sandbox.pds_url)
    assert atproto.resolve_identity(alice.handle).did == alice.did


def test_login_by_handle_with_an_explicit_pds(pds_sandbox, make_account):
    alice = make_account("alice")
    client = atproto.login(alice.handle, alice.password, pds_url=pds_sandbox.pds_url)
    assert client.did == alice.did


def test_a_wrong_password_is_an_auth_error(pds_sandbox, make_account):
    alice = make_account("alice")
    with pytest.raises(AuthError, match=f"login as {alice.did}"):
        atproto.login(alice.did, "not-the-password")
    assert SessionStore().sessions() == []


def test_an_unresolvable_handle_says_what_was_tried(pds_sandbox, make_account):
    alice = make_account("alice")
    with pytest.raises(IdentityError) as caught:
        atproto.login(alice.handle, alice.password, retries=0)
    message = str(caught.value)
    assert alice.handle in message and f"https://{alice.handle}/.well-known/atproto-did" in message


def test_the_session_is_saved_owner_only_and_reused_without_a_password(pds_sandbox, make_account, tmp_path):
    alice, bob = make_account("alice"), make_account("bob")
    atproto.login(alice.did, alice.password)
    atproto.login(bob.did, bob.password)  # bob logged in last: the default account

    folder = tmp_path / "config" / "atdata" / "sessions"
    saved = folder / f"{alice.did}.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    content = json.loads(saved.read_text())
    assert content["did"] == alice.did and content["handle"] == alice.handle
    assert content["pdsUrl"] == pds_sandbox.pds_url and content["accessJwt"] and content["refreshJwt"]

    assert Client.from_saved().did == bob.did
    again = Client.from_saved(alice.handle)
    assert again.did == alice.did
    uri, cid = again.create_record(LABEL, label(alice.did))
    assert Client.from_saved(alice.did).get_record(alice.did, LABEL, rkey_of(uri))["cid"] == cid

    assert atproto.logout(alice.handle) is True
    assert not saved.exists()
    with pytest.raises(AuthError, match="no saved session"):
        Client.from_saved(alice.did)
    assert Client.from_saved().did == bob.did


def test_a_rejected_access_token_is_refreshed_and_the_new_tokens_saved(pds_sandbox, make_account, tmp_path):
    alice = make_account("alice")
    atproto.login(alice.did, alice.password)
    saved = tmp_path / "config" / "atdata" / "sessions" / f"{alice.did}.json"
    content = json.loads(saved.read_text())
    header, payload, signature = content["accessJwt"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    saved.write_text(json.dumps({**content, "accessJwt": forged}))

    # The PDS does refuse the damaged token...
    answer = requests.get(
        f"{pds_sandbox.pds_url}/xrpc/com.atproto.server.getSession",
        headers={"Authorization": f"Bearer {forged}"}, timeout=30,
    )
    assert answer.status_code in (400, 401) and answer.json()["error"] in ("InvalidToken", "ExpiredToken")

    # ...and the client refreshes its session, retries, and saves the new tokens.
    client = Client.from_saved(alice.did)
    uri, _ = client.create_record(LABEL, label(alice.did))
    assert uri.startswith(f"at://{alice.did}/")
    refreshed = json.loads(saved.read_text())
    # (the new access token may equal the first one when issued within the same second: same claims)
    assert refreshed["accessJwt"] != forged
    assert refreshed["refreshJwt"] != content["refreshJwt"]
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    check = requests.get(
        f"{pds_sandbox.pds_url}/xrpc/com.atproto.server.getSession",
        headers={"Authorization": f"Bearer {refreshed['accessJwt']}"}, timeout=30,
    )
    assert check.status_code == 200 and check.json()["did"] == alice.did


def test_a_session_that_cannot_be_refreshed_asks_to_log_in_again(pds_sandbox, make_account, tmp_path):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password)
    damaged = attrs.evolve(client.session, access_jwt=client.session.access_jwt[:-3] + "abc",
                           refresh_jwt=client.session.refresh_jwt[:-3] + "abc")
    with pytest.raises(AuthError, match="log in again"):
        Client(session=damaged).create_record(LABEL, label(alice.did))


# ------------------------------------------------------------------ records


def test_create_get_put_delete_a_label_record(pds_sandbox, make_account):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password)
    first = label(alice.did, version="1.0.0")
    uri, cid = client.create_record(LABEL, first)
    rkey = rkey_of(uri)
    got = client.get_record(alice.did, LABEL, rkey)
    assert got["uri"] == uri and got["cid"] == cid and got["value"] == first
    assert client.get_record_at(uri)["value"] == first

    second = label(alice.did, version="1.1.0", description="with fixes")
    uri2, cid2 = client.put_record(LABEL, rkey, second, swap_record=cid)
    assert uri2 == uri and cid2 != cid
    assert client.get_record(alice.did, LABEL, rkey)["value"] == second

    with pytest.raises(XrpcError) as stale:
        client.put_record(LABEL, rkey, first, swap_record=cid)
    assert stale.value.error == "InvalidSwap"

    client.delete_record(LABEL, rkey)
    with pytest.raises(RecordNotFound, match=rkey):
        client.get_record(alice.did, LABEL, rkey)


def test_list_records_pages_through_more_than_one_page(pds_sandbox, make_account):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password)
    results = client.apply_writes([Create(LABEL, label(alice.did, f"set-{i}")) for i in range(230)])
    created = [r.uri for r in results]

    listed = list(client.list_records(alice.did, LABEL))
    assert len(listed) == 230
    assert sorted(item["uri"] for item in listed) == sorted(created)
    assert {item["value"]["name"] for item in listed} == {f"set-{i}" for i in range(230)}

    assert len(list(client.list_records(alice.did, LABEL, limit=120))) == 120
    oldest_first = [item["uri"] for item in client.list_records(alice.did, LABEL, reverse=True)]
    assert oldest_first == [item["uri"] for item in reversed(listed)]


def test_apply_writes_sends_450_creates_in_three_calls(pds_sandbox, make_account, proxy):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password, pds_url=proxy.url)
    results = client.apply_writes([Create(LABEL, label(alice.did, f"bulk-{i}")) for i in range(450)])
    assert proxy.methods.count("com.atproto.repo.applyWrites") == 3
    assert len(results) == 450 and len({r.uri for r in results}) == 450
    assert all(r.action == "create" and r.uri.startswith(f"at://{alice.did}/{LABEL}/") and r.cid for r in results)
    assert len(list(client.list_records(alice.did, LABEL))) == 450

    # Updates and deletes in one batch.
    first, second = results[0], results[1]
    changed = client.apply_writes([
        Update(LABEL, rkey_of(first.uri), label(alice.did, "renamed")),
        Delete(LABEL, rkey_of(second.uri)),
    ])
    assert [r.action for r in changed] == ["update", "delete"]
    assert client.get_record_at(first.uri)["value"]["name"] == "renamed"
    with pytest.raises(RecordNotFound):
        client.get_record_at(second.uri)


def test_one_invalid_record_in_a_batch_stops_the_whole_batch_before_sending(pds_sandbox, make_account, proxy):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password, pds_url=proxy.url)
    writes = [Create(LABEL, label(alice.did, f"ok-{i}")) for i in range(250)]
    writes.append(Create(LABEL, {**label(alice.did), "datasetUri": "https://not-an-at-uri"}))
    with pytest.raises(ValidationError) as caught:
        client.apply_writes(writes)
    assert caught.value.path == "$.datasetUri"
    assert "in write 250 of the batch" in "\n".join(getattr(caught.value, "__notes__", []))
    assert "com.atproto.repo.applyWrites" not in proxy.methods
    assert list(client.list_records(alice.did, LABEL)) == []


def test_an_invalid_record_is_refused_before_any_network_call(pds_sandbox, make_account, closed_url):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password)
    offline = Client(session=attrs.evolve(client.session, pds_url=closed_url), retries=0)
    with pytest.raises(ValidationError) as caught:
        offline.create_record(LABEL, {**label(alice.did), "name": 42})
    assert caught.value.path == "$.name"
    with pytest.raises(ValidationError, match=r"\$\.datasetUri"):
        offline.put_record(LABEL, "3lbxyz2abcd22", {**label(alice.did), "datasetUri": "nope"})
    # The valid record does try the network, which is closed: the refusal above came first.
    with pytest.raises(ServiceUnavailable, match=closed_url):
        offline.create_record(LABEL, label(alice.did))


def test_a_record_over_the_size_limit_is_refused_naming_the_limit(pds_sandbox, make_account, proxy):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password, pds_url=proxy.url)
    with pytest.raises(RecordError) as caught:
        client.create_record("test.atdata.bulky", {"text": "x" * 1_000_001, "createdAt": now()})
    assert "at most 1,000,000 bytes" in str(caught.value)
    assert "com.atproto.repo.createRecord" not in proxy.methods
    # A large record under the limit is accepted by the PDS: the limit is not stricter than the PDS's.
    uri, _ = client.create_record("test.atdata.bulky", {"text": "y" * 900_000, "createdAt": now()})
    assert len(client.get_record_at(uri)["value"]["text"]) == 900_000


# ------------------------------------------------------------------ blobs


def test_uploaded_blobs_keep_their_content_type(pds_sandbox, make_account, tmp_path):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password)
    payload = bytes(range(256)) * 64
    blob = client.upload_blob(payload, "application/x-tar")
    assert blob["$type"] == "blob" and blob["mimeType"] == "application/x-tar" and blob["size"] == len(payload)

    image = tmp_path / "pixel.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    png = client.upload_blob(image)
    assert png["mimeType"] == "image/png"

    # A PDS keeps a blob once a record refers to it.
    client.create_record("test.atdata.blobHolder", {"blobs": [blob, png], "createdAt": now()})
    with client.get_blob(alice.did, blob["ref"]["$link"]) as stream:
        assert stream.content_type == "application/x-tar"
        assert stream.read() == payload
    with client.get_blob(alice.did, png) as stream:
        assert stream.content_type == "image/png"
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_blob_over_the_pds_limit_is_refused_before_it_is_sent(pds_sandbox, make_account, proxy):
    alice = make_account("alice")
    client = atproto.login(alice.did, alice.password, pds_url=proxy.url)
    advertised = client.describe_server()["blobUploadLimit"]
    with pytest.raises(StorageError) as caught:
        client.upload_blob(b"\x00" * (advertised + 1), "application/octet-stream")
    assert f"at most {advertised:,} bytes" in str(caught.value)
    assert "com.atproto.repo.uploadBlob" not in proxy.methods


# ------------------------------------------------------------------ reading another account


def test_bob_reads_alices_records_and_blob_from_her_pds(pds_sandbox, make_account, proxy):
    alice, bob = make_account("alice"), make_account("bob")
    writer = atproto.login(alice.did, alice.password, save=False)
    uri, cid = writer.create_record(LABEL, label(alice.did, "alices-set"))
    payload = b"shard bytes " * 1000
    blob = writer.upload_blob(payload, "application/x-tar")
    writer.create_record("test.atdata.blobHolder", {"blob": blob, "createdAt": now()})

    # Bob's own PDS is the proxy: whatever goes there is logged.
    reader = atproto.login(bob.did, bob.password, pds_url=proxy.url, save=False)
    before = list(proxy.methods)
    assert reader.get_record(alice.did, LABEL, rkey_of(uri)) == {
        "uri": uri, "cid": cid, "value": writer.get_record_at(uri)["value"],
    }
    assert [item["uri"] for item in reader.list_records(alice.did, LABEL)] == [uri]
    with reader.get_blob(alice.did, blob["ref"]["$link"]) as stream:
        assert stream.content_type == "application/x-tar"
        assert stream.read() == payload
    # Every read went to alice's PDS (from her DID document), none through bob's.
    assert proxy.methods == before

    # By handle too: the handle is resolved (through bob's PDS), the reads still go to alice's.
    clear_identity_cache()
    assert reader.get_record(alice.handle, LABEL, rkey_of(uri))["cid"] == cid
    assert set(proxy.methods) - set(before) == {"com.atproto.identity.resolveHandle"}


def test_anonymous_reads_need_no_account_and_no_pds_of_their_own(pds_sandbox, make_account, closed_url):
    alice = make_account("alice")
    writer = atproto.login(alice.did, alice.password, save=False)
    uri, cid = writer.create_record(LABEL, label(alice.did))
    reader = Client.anonymous(closed_url, retries=0)
    assert reader.get_record_at(uri)["cid"] == cid
    with pytest.raises(AuthError, match="anonymous"):
        reader.create_record(LABEL, label(alice.did))


def test_resolve_identity_of_a_sandbox_account(pds_sandbox, make_account):
    alice = make_account("alice")
    by_did = atproto.resolve_identity(alice.did)
    assert (by_did.did, by_did.handle, by_did.pds_url, by_did.handle_verified) == (
        alice.did, alice.handle, pds_sandbox.pds_url, True,
    )
    by_handle = atproto.resolve_identity(alice.handle, pds_url=pds_sandbox.pds_url)
    assert by_handle == by_did
    assert atproto.resolve_handle(alice.handle, resolvers=[pds_sandbox.pds_url]) == alice.did
    with pytest.raises(IdentityError, match="is not known to the PLC directory"):
        atproto.resolve_did("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
