"""End to end on the local federation: a PDS and PLC on loopback, the AppView following the PDS's firehose.

Alice publishes a schema and a dataset (shards as blobs of her repository);
the AppView, subscribed to the sandbox's firehose, makes the entry searchable;
bob finds it by text and tag and loads it with ``load()`` through the
``appview`` index provider; alice's handle changes and search follows; alice
deletes the entry and it disappears. Then the AppView goes down and bob still
loads the dataset, from alice's PDS.
"""

from __future__ import annotations

import contextlib
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.plugins import ENTRY_NSID, AtUri, Client, reset_plugins

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.ingest import run_ingest
from atdata_index_appview.provider import AppViewIndex
from atdata_index_appview.settings import AppViewSettings
from atdata_index_appview.store import open_store


@packable
class Digit:
    pixels: NDArray[np.uint8]
    label: int


def wait_for(predicate, *, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.1)


@pytest.fixture
def federation(pds_sandbox, monkeypatch):
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    # The sandbox's PDS answers for its .test handles (they are in no DNS): how the AppView verifies them.
    monkeypatch.setenv("ATDATA_SANDBOX_PDS_URL", pds_sandbox.pds_url)
    hosts = sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts))
    reset_plugins()
    return pds_sandbox


@pytest.fixture
def appview(federation, tmp_path, monkeypatch):
    """The AppView on loopback: a SQLite store fed by the sandbox's firehose, its API, and the provider configured."""
    store = open_store(f"sqlite:///{tmp_path / 'appview.db'}")
    resolver = Client.anonymous()
    connected = threading.Event()
    stop = threading.Event()
    outcome: dict = {}

    def ready(readers):
        def wait():
            for reader in readers:
                reader.connected.wait(60)
            connected.set()

        threading.Thread(target=wait, daemon=True).start()

    def ingest():
        try:
            run_ingest(AppViewSettings(subscribe=[federation.pds_url]), store, stop_event=stop, client=resolver, on_ready=ready)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome["error"] = err

    thread = threading.Thread(target=ingest, name="appview-ingest", daemon=True)
    thread.start()
    app = create_app(store, service_did="did:web:appview.test", pds_of=lambda did: resolver.identity.resolve_did(did).pds_url)
    with serve_in_thread(app) as server:
        assert connected.wait(60), "the firehose subscription did not connect"
        monkeypatch.setenv("ATDATA_APPVIEW_URL", server.url)
        monkeypatch.setenv("ATDATA_INDEX_DEFAULT", "appview")
        reset_plugins()
        try:
            yield server, store
        finally:
            stop.set()
            thread.join(timeout=30)
            store.close()
    assert "error" not in outcome, outcome.get("error")


def test_published_datasets_are_found_and_loaded_through_the_appview(appview, make_account, tmp_path, monkeypatch):
    server, store = appview
    alice_account = make_account("alice")
    alice = Client.login(alice_account.handle, alice_account.password, pds_url=alice_account.pds_url)
    schema = atdata_core.publish_schema(alice, Digit, schema_id="com.example.digit", version="1.0.0", tags=["images"])
    rng = np.random.default_rng(7)
    samples = [Digit(pixels=rng.integers(0, 255, (4, 4), dtype=np.uint8), label=i % 10) for i in range(12)]
    (tmp_path / "shards").mkdir()
    with ShardWriter(str(tmp_path / "shards" / "digits-%06d.tar"), maxcount=5) as sink:
        for sample in samples:
            sink.write(sample)
    published = atdata_core.publish_dataset(alice, "handwritten-digits", sink.shards, schema=schema, storage="blob",
                                            description="Tiny handwritten digits for the end-to-end test", tags=["vision", "toy"])

    provider = AppViewIndex(AppViewSettings(url=server.url, fallback=False))
    found = wait_for(lambda: provider.search("handwritten", tags=["vision"]), what="the entry becoming searchable")
    assert [r.uri for r in found] == [published.uri]
    assert provider.search("digits tiny", tags=["toy"], repo=alice_account.handle)[0].uri == published.uri
    assert provider.search("handwritten", tags=["audio"]) == []

    # Bob's machine: his own configuration; the AppView is the default index.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "bob"))
    reset_plugins()
    loaded = list(atdata_core.load(f"@{alice_account.handle}/handwritten-digits", Digit))
    assert [d.label for d in loaded] == [s.label for s in samples]
    np.testing.assert_array_equal(loaded[3].pixels, samples[3].pixels)
    assert store.get(published.uri).cid == published.cid

    # The record the AppView serves is the record the PDS holds.
    served = provider.get_record(published.uri)
    assert served.value == alice.get_record_at(published.uri)["value"]
    assert served.cid == published.cid

    # The handle changes: search by the new handle follows.
    new_handle = f"renamed{alice_account.handle.split('.')[0][-6:]}.test"
    alice.call("com.atproto.identity.updateHandle", procedure=True, json_body={"handle": new_handle}, auth=True)
    wait_for(lambda: store.did_for_handle(new_handle) == alice_account.did, what="the new handle reaching the AppView")
    assert provider.search("handwritten", repo=new_handle)[0].uri == published.uri
    assert provider.resolve_repo(new_handle) == alice_account.did

    # Alice deletes the entry: it disappears.
    alice.delete_record(ENTRY_NSID, AtUri.parse(published.uri).rkey)
    wait_for(lambda: not provider.search("handwritten"), what="the deleted entry disappearing")
    with pytest.raises(atdata_core.errors.RecordNotFound):
        provider.get_record(published.uri)


def test_when_the_appview_is_down_datasets_load_from_the_pds(federation, make_account, tmp_path, monkeypatch):
    account = make_account("carol")
    carol = Client.login(account.handle, account.password, pds_url=account.pds_url)
    schema = atdata_core.publish_schema(carol, Digit, schema_id="com.example.digit", version="1.0.0")
    samples = [Digit(pixels=np.zeros((2, 2), dtype=np.uint8), label=i) for i in range(3)]
    (tmp_path / "shards").mkdir()
    with ShardWriter(str(tmp_path / "shards" / "d-%06d.tar")) as sink:
        for sample in samples:
            sink.write(sample)
    atdata_core.publish_dataset(carol, "zeros", sink.shards, schema=schema, storage="blob")
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("ATDATA_APPVIEW_URL", down)
    monkeypatch.setenv("ATDATA_APPVIEW_RETRIES", "0")
    monkeypatch.setenv("ATDATA_INDEX_DEFAULT", "appview")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "reader"))
    reset_plugins()
    loaded = list(atdata_core.load(f"@{account.handle}/zeros", Digit))
    assert [d.label for d in loaded] == [0, 1, 2]
