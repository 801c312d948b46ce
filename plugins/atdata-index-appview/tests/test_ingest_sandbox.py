"""Ingestion from the reference PDS: its firehose, its repositories, its signatures.

One ingester follows the sandbox's firehose for the whole module (from the
sandbox's first event, into an in-memory store); each test publishes as an
account of its own and waits, with a deadline, until the index shows it.
"""

from __future__ import annotations

import secrets
import threading
import time
from urllib.parse import urlsplit

import libipld
import pytest

from atdata_core.plugins import Client, reset_plugins

from atdata_index_appview.ingest import IngestSettings, Ingestor, MemoryIngestStore, backfill, run_ingest
from atdata_index_appview.ingest._car import read_car
from atdata_index_appview.ingest._crafting import Link, Signer, car_bytes, cid_of, encode, frame

LABEL = "science.alt.dataset.label"
ENTRY = "science.alt.dataset.entry"


def label(name: str = "v1", **extra) -> dict:
    return {"$type": LABEL, "name": name, "datasetUri": "at://did:plc:abc/science.alt.dataset.entry/3kaaa",
            "createdAt": "2024-01-01T00:00:00.000Z", **extra}


def wait_for(predicate, *, timeout: float = 30.0, what: str = "the index to show it") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def sandbox_config(info, allow_hosts=None):
    """The configuration of a process on the sandbox: its PLC directory, its PDS for .test handles,
    and its two hosts allowed by the network policy (or ``allow_hosts``). Read once, here, so that
    the per-test configuration fixtures cannot change it under the module's ingester."""
    from atdata_core.plugins import get_config

    hosts = sorted({urlsplit(url).netloc for url in (info.pds_url, info.plc_url)})
    with pytest.MonkeyPatch.context() as patch:
        for name in ("ATDATA_CONFIG", "ATDATA_ATPROTO_RESOLVER", "ATDATA_NETWORK_ALLOW_PRIVATE"):
            patch.delenv(name, raising=False)
        patch.setenv("ATDATA_PLC_URL", info.plc_url)
        patch.setenv("ATDATA_SANDBOX_PDS_URL", info.pds_url)
        patch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts if allow_hosts is None else allow_hosts))
        reset_plugins()
        config = get_config()
    reset_plugins()
    return config


@pytest.fixture(scope="module")
def federation(pds_sandbox):
    """``federation.client()``: an anonymous client of this process on the sandbox."""

    class Federation:
        info = pds_sandbox
        config = sandbox_config(pds_sandbox)
        pds_url = pds_sandbox.pds_url
        plc_url = pds_sandbox.plc_url

        def client(self, config=None):
            return Client.anonymous(config=config or self.config)

    return Federation()


@pytest.fixture(scope="module")
def index(federation):
    """A MemoryIngestStore fed by run_ingest from the sandbox's firehose for the whole module."""
    store = MemoryIngestStore()
    stop = threading.Event()
    outcome: dict = {}
    settings = IngestSettings(subscribe=[federation.pds_url], replay=True, resync_interval=0)

    def run():
        try:
            outcome["counts"] = run_ingest(settings, store, stop_event=stop, client=federation.client())
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=run, name="sandbox ingest", daemon=True)
    thread.start()
    yield store
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")


@pytest.fixture
def account(federation, make_account):
    """``account(name)``: a fresh sandbox account and its logged-in client (session not saved)."""

    def make(name: str = "user"):
        acct = make_account(name)
        return acct, Client.login(acct.handle, acct.password, pds_url=acct.pds_url, save=False,
                                  config=federation.config)

    return make


def at(did: str, collection: str, rkey: str) -> str:
    return f"at://{did}/{collection}/{rkey}"


def test_published_records_are_indexed_as_the_pds_serves_them(index, account):
    alice, client = account("alice")
    entry = {
        "$type": ENTRY, "name": "digits", "createdAt": "2024-01-01T00:00:00.000Z",
        "schemaRef": f"at://{alice.did}/science.alt.dataset.schema/com.example.digit:1.0.0",
        "storage": {"$type": "science.alt.dataset.storageHttp", "shards": [
            {"url": "https://example.com/digits-000000.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}]},
        "metadata": {"$bytes": "gaFhAQ"}, "tags": ["vision", "digits"],
    }
    entry_uri, entry_cid = client.create_record(ENTRY, entry)
    label_uri, _ = client.create_record(LABEL, label())
    wait_for(lambda: {entry_uri, label_uri} <= set(index.visible()))
    stored = index.records[entry_uri]
    served = client.get_record(alice.did, ENTRY, entry_uri.rsplit("/", 1)[1])
    assert stored.record == served["value"]  # our DAG-CBOR reading matches the PDS's own JSON
    assert stored.cid == entry_cid == served["cid"]
    assert libipld.encode_cid(cid_of(stored.raw)) == entry_cid  # the bytes are the published block
    assert index.handles[alice.did] == alice.handle


def test_updates_and_deletes_follow_the_repository(index, account):
    alice, client = account("alice")
    uri, _ = client.create_record(LABEL, label("first"))
    rkey = uri.rsplit("/", 1)[1]
    wait_for(lambda: uri in index.visible())
    client.put_record(LABEL, rkey, label("second"))
    wait_for(lambda: index.records.get(uri) and index.records[uri].record["name"] == "second")
    client.delete_record(LABEL, rkey)
    wait_for(lambda: uri not in index.records, what="the deleted record to leave the index")
    assert index.repo_rev(alice.did) is not None


def test_a_batch_of_writes_in_one_commit_is_indexed_whole(index, account):
    alice, client = account("batch")
    results = client.apply_writes([{"$type": "com.atproto.repo.applyWrites#create", "collection": LABEL,
                                    "value": label(f"n{i}")} for i in range(60)])
    uris = {result.uri for result in results}
    assert len(uris) == 60
    wait_for(lambda: uris <= set(index.visible()))


def test_a_record_that_does_not_validate_is_quarantined_not_indexed(index, account):
    alice, client = account("hostile")
    bad_uri, _ = client.create_record(LABEL, label(name=42), validate=False)
    good_uri, _ = client.create_record(LABEL, label())
    wait_for(lambda: good_uri in index.visible() and bad_uri in index.quarantined)
    assert bad_uri not in index.records
    assert "name" in index.quarantined[bad_uri][0]


def test_a_handle_change_is_followed(index, account):
    alice, client = account("renamed")
    uri, _ = client.create_record(LABEL, label())
    wait_for(lambda: uri in index.visible() and index.handles.get(alice.did) == alice.handle)
    new_handle = f"moved{secrets.token_hex(3)}.test"
    client.call("com.atproto.identity.updateHandle", procedure=True, json_body={"handle": new_handle}, auth=True)
    wait_for(lambda: index.handles.get(alice.did) == new_handle, what="the new handle in the index")


def test_a_deactivated_account_is_hidden_until_it_is_active_again(index, account):
    alice, client = account("resting")
    uri, _ = client.create_record(LABEL, label())
    wait_for(lambda: uri in index.visible())
    client.call("com.atproto.server.deactivateAccount", procedure=True, json_body={}, auth=True)
    wait_for(lambda: uri not in index.visible(), what="the deactivated account's record to be hidden")
    assert uri in index.records
    client.call("com.atproto.server.activateAccount", procedure=True, auth=True)
    wait_for(lambda: uri in index.visible(), what="the record to show again")


# --- what the PDS signed, and what it did not ------------------------------------------------------


def _published(client, did: str):
    """The account's whole repository from its PDS: (CAR blocks, commit CID, commit object)."""
    car = read_car(client.call("com.atproto.sync.getRepo", params={"did": did}).content)
    commit = libipld.decode_dag_cbor(car.blocks[car.roots[0]])
    return car, car.roots[0], commit


def _commit_frame(did, commit_cid, commit, blocks, path, record_cid, seq=1):
    return frame("#commit", {
        "seq": seq, "rebase": False, "tooBig": False, "repo": did, "commit": Link(commit_cid), "rev": commit["rev"],
        "since": None, "blocks": car_bytes([commit_cid], blocks), "blobs": [], "time": "2024-01-01T00:00:00Z",
        "ops": [{"action": "create", "path": path, "cid": Link(record_cid)}],
    })


def test_commits_signed_by_the_pds_verify_and_forged_or_damaged_ones_do_not(federation, account):
    alice, client = account("signed")
    uri, cid = client.create_record(LABEL, label())
    path = uri.split("/", 3)[3]
    car, commit_cid, commit = _published(client, alice.did)
    record_cid = libipld.decode_cid(cid) and next(c for c in car.blocks if libipld.encode_cid(c) == cid)
    source = "https://relay.example.com"

    # The genuine commit, as the PDS signed it: indexed.
    store = MemoryIngestStore()
    ingestor = Ingestor(store, settings=IngestSettings(resync_interval=3600), client=federation.client())
    ingestor.handle_frame(source, _commit_frame(alice.did, commit_cid, commit, car.blocks.items(), path, record_cid))
    ingestor.flush()
    assert set(store.records) == {uri}

    # The same commit re-signed by another key (as a relay might forge it): refused.
    store = MemoryIngestStore()
    ingestor = Ingestor(store, settings=IngestSettings(resync_interval=3600), client=federation.client())
    unsigned = {key: (Link(value) if key == "data" else value) for key, value in commit.items() if key != "sig"}
    forged = encode({**unsigned, "sig": Signer(seed=99).sign(encode(unsigned))})
    blocks = [(cid_of(forged), forged), *[(c, b) for c, b in car.blocks.items() if c != commit_cid]]
    ingestor.handle_frame(source, _commit_frame(alice.did, cid_of(forged), commit, blocks, path, record_cid))
    # A record block swapped under its CID: refused before anything reads it.
    swapped = [(c, encode(label("swapped")) if c == record_cid else b) for c, b in car.blocks.items()]
    ingestor.handle_frame(source, _commit_frame(alice.did, commit_cid, commit, swapped, path, record_cid, seq=2))
    # A frame that is not one.
    ingestor.handle_frame(source, b"\x00\x01\x02")
    ingestor.flush()
    assert store.records == {}
    assert (store.stats["bad_signature"], store.stats["bad_block"], store.stats["undecodable"]) == (1, 1, 1)
    # ...and the next genuine event still goes in.
    ingestor.handle_frame(source, _commit_frame(alice.did, commit_cid, commit, car.blocks.items(), path, record_cid, seq=4))
    ingestor.flush()
    assert set(store.records) == {uri} and store.cursor(source) == 4


def test_the_atproto_sdk_reads_the_same_repository(federation, account):
    from atproto import CAR

    alice, client = account("crosscheck")
    client.create_record(LABEL, label())
    raw = client.call("com.atproto.sync.getRepo", params={"did": alice.did}).content
    theirs = CAR.from_bytes(raw)
    ours = read_car(raw)
    assert {str(cid) for cid in theirs.blocks} == {libipld.encode_cid(cid) for cid in ours.blocks}
    assert str(theirs.root) == libipld.encode_cid(ours.roots[0])


# --- backfill ------------------------------------------------------------------------------------


def test_backfill_of_accounts_and_of_a_host(federation, account):
    alice, client = account("early")
    bob, bob_client = account("early")
    uris = {client.create_record(LABEL, label(f"a{i}"))[0] for i in range(3)}
    bob_uri, _ = bob_client.create_record(LABEL, label("b"))
    client.create_record("app.bsky.feed.post", {"$type": "app.bsky.feed.post", "text": "hi",
                                                "createdAt": "2024-01-01T00:00:00.000Z"}, validate=False)

    by_account = MemoryIngestStore()
    counts = backfill(IngestSettings(), by_account, [alice.did, bob.handle], client=federation.client())
    assert set(by_account.records) == uris | {bob_uri}
    assert counts["records_indexed"] == 4 and by_account.repo_rev(alice.did) is not None

    by_host = MemoryIngestStore()
    backfill(IngestSettings(), by_host, [federation.pds_url], client=federation.client())
    assert uris | {bob_uri} <= set(by_host.records)
    assert all(uri.startswith("at://did:") and "/science.alt.dataset." in uri for uri in by_host.records)
    # Run again: the repositories holding records of ours are current and not fetched again (those
    # holding none are not tracked, so each backfill looks at them afresh).
    listed, cursor = [], None
    while True:
        page = federation.client().call("com.atproto.sync.listRepos", params={"cursor": cursor},
                                        pds_url=federation.pds_url).json()
        listed += page["repos"]
        cursor = page.get("cursor")
        if not cursor or not page["repos"]:
            break
    untracked = sum(by_host.repo_rev(repo["did"]) is None for repo in listed)
    again = backfill(IngestSettings(), by_host, [federation.pds_url], client=federation.client())
    assert again["resyncs"] == untracked < len(listed) and again["records_indexed"] == 0


def test_backfill_does_not_reach_a_pds_the_network_policy_refuses(federation, account):
    alice, client = account("walled")
    client.create_record(LABEL, label())
    # The directory is ours (configured); the PDS is only named by the account's document.
    walled = sandbox_config(federation.info, allow_hosts=[urlsplit(federation.plc_url).netloc])
    store = MemoryIngestStore()
    counts = backfill(IngestSettings(), store, [alice.did], client=federation.client(walled))
    assert counts["refused_host"] == 1 and store.records == {}
