"""Event handling, fed frames by hand: what is indexed, what is refused and counted, and that
ingestion always goes on.

The accounts are crafted (a ``did:web`` on a loopback port with a key made in
the test, served with its repository by a small HTTP server), because a real
PDS cannot be made to sign with the wrong key or send a block that does not
match its CID. The sandbox tests cover the same paths against the reference PDS.
"""

from __future__ import annotations

import contextlib
import pickle

import pytest

from atdata_core.plugins import Client, reset_plugins

from atdata_index_appview.ingest import IngestSettings, Ingestor, MemoryIngestStore, StoreFailed, backfill
from atdata_index_appview.ingest._checking import check_frame, commit_event
from atdata_index_appview.ingest._crafting import CraftedRepo, Link, Signer, car_bytes, cid_of, encode, frame, serve_repo

SOURCE = "https://relay.example.com"
LABEL = "science.alt.dataset.label"


@pytest.fixture(autouse=True)
def own_configuration(tmp_path, tmp_path_factory, monkeypatch):
    """A user folder of the test's own, and loopback hosts allowed (the crafted accounts live there)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    for name in ("ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_NETWORK_ALLOW_PRIVATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", "localhost")
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    reset_plugins()
    yield
    reset_plugins()


class Harness:
    """Crafted accounts on loopback, an in-memory store and an ingestor fed frame by frame: decoded
    and checked by the ingestor itself, or (``apart``) first as a checking process does it, the
    result passed through pickle as it comes back from one."""

    def __init__(self, stack: contextlib.ExitStack, apart: bool = False):
        self.stack = stack
        self.apart = apart
        self.store = MemoryIngestStore()
        self.seq = 0
        self.settings = IngestSettings(resync_interval=0)
        self.ingestor = Ingestor(self.store, settings=self.settings, client=Client.anonymous())

    def account(self, **options) -> CraftedRepo:
        repo = CraftedRepo(**options)
        self.stack.enter_context(serve_repo(repo))
        return repo

    def feed(self, data: bytes | str) -> int:
        self.seq += 1
        if self.apart and isinstance(data, bytes):
            kind, payload = pickle.loads(pickle.dumps(check_frame(data)))
            if kind == "commit":
                self.ingestor.handle_event(SOURCE, commit_event(payload))
            elif kind == "event":
                self.ingestor.handle_event(SOURCE, payload)
            else:
                assert kind == "undecodable"
                self.ingestor.handle_undecodable(SOURCE, payload)
        else:
            self.ingestor.handle_frame(SOURCE, data)
        self.ingestor.flush()
        return self.seq

    def commit(self, repo: CraftedRepo, writes, **options) -> int:
        commit = repo.commit(writes, **options)
        return self.feed(repo.commit_frame(commit, self.seq + 1))

    def uris(self) -> set[str]:
        return set(self.store.visible())


@pytest.fixture(params=["here", "apart"])
def harness(request):
    with contextlib.ExitStack() as stack:
        yield Harness(stack, apart=request.param == "apart")


def label(name: str = "v1", **extra) -> dict:
    return {"$type": LABEL, "name": name, "datasetUri": "at://did:plc:abc/science.alt.dataset.entry/3kaaa",
            "createdAt": "2024-01-01T00:00:00.000Z", **extra}


def uri(repo: CraftedRepo, path: str) -> str:
    return f"at://{repo.did}/{path}"


# --- what is indexed -------------------------------------------------------------------------


def test_a_signed_commit_is_indexed_with_the_record_as_published(harness):
    alice = harness.account()
    seq = harness.commit(alice, [("create", f"{LABEL}/3kaaa", label()), ("create", "app.bsky.feed.post/3kzzz", {"t": 1})])
    stored = harness.store.records[uri(alice, f"{LABEL}/3kaaa")]
    cid, block = alice.records[f"{LABEL}/3kaaa"]
    assert stored.raw == block and stored.record == label() and stored.rev == alice.rev
    import libipld

    assert stored.cid == libipld.encode_cid(cid)
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")}  # the post is someone else's business
    assert harness.store.cursor(SOURCE) == seq
    assert harness.store.repo_rev(alice.did) == alice.rev
    assert harness.store.stats["records_indexed"] == 1


def test_updates_and_deletes_apply_in_rev_order_and_replays_change_nothing(harness):
    alice = harness.account()
    path = f"{LABEL}/3kaaa"
    first = alice.commit([("create", path, label("v1"))])
    harness.feed(alice.commit_frame(first, 1))
    update = alice.commit([("update", path, label("v2"))])
    harness.feed(alice.commit_frame(update, 2))
    assert harness.store.records[uri(alice, path)].record["name"] == "v2"
    harness.feed(alice.commit_frame(first, 3))  # the create again (a relay replaying): older than the index
    assert harness.store.records[uri(alice, path)].record["name"] == "v2"
    assert harness.store.stats["stale_commits"] == 1
    harness.commit(alice, [("delete", path, None)])
    assert harness.uris() == set()
    harness.feed(alice.commit_frame(update, 5))
    assert harness.uris() == set()
    assert [action for action, *_ in harness.store.applied] == ["create", "update", "delete"]


def test_a_key_written_twice_in_one_commit_ends_at_its_last_write(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label("first")), ("update", f"{LABEL}/3kaaa", label("last")),
                           ("create", f"{LABEL}/3kbbb", label()), ("delete", f"{LABEL}/3kbbb", None)])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")}
    assert harness.store.records[uri(alice, f"{LABEL}/3kaaa")].record["name"] == "last"
    assert harness.store.stats["bad_commit"] == 0


def test_valid_records_of_every_type_are_indexed_and_deviations_kept_as_warnings(harness):
    alice = harness.account()
    entry = {
        "$type": "science.alt.dataset.entry", "name": "mnist", "createdAt": "2024-01-01T00:00:00.000Z",
        "schemaRef": "at://did:plc:abc/science.alt.dataset.schema/com.example.digit:1.0.0",
        "storage": {"$type": "science.alt.dataset.storageHttp",
                    "shards": [{"url": "https://example.com/a.tar", "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}]},
        "metadata": b"\x81\xa1a\x01", "tags": ["t"] * 31,  # one tag over the lexicon's 30: a limit, so a warning
    }
    harness.commit(alice, [("create", "science.alt.dataset.entry/3kaaa", entry)])
    stored = harness.store.records[uri(alice, "science.alt.dataset.entry/3kaaa")]
    assert stored.record["metadata"] == {"$bytes": "gaFhAQ"}
    assert any("tags" in warning for warning in stored.warnings)
    assert harness.store.stats["warnings"] >= 1


# --- what is refused, counted, and then ingestion goes on -------------------------------------


def test_a_commit_with_a_bad_signature_is_refused_counted_and_ingestion_continues(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    forged = alice.fork().commit([("create", f"{LABEL}/3kbad", label("forged"))], signer=Signer(seed=666))
    seq = harness.feed(alice.commit_frame(forged, harness.seq + 1))
    assert uri(alice, f"{LABEL}/3kbad") not in harness.store.records
    assert harness.store.stats["bad_signature"] == 1
    assert harness.store.cursor(SOURCE) == seq  # counted and passed, not retried for ever
    harness.commit(alice, [("create", f"{LABEL}/3kbbb", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa"), uri(alice, f"{LABEL}/3kbbb")}


def test_a_high_s_signature_by_the_right_key_is_refused(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())], high_s=True)
    assert harness.uris() == set()
    assert harness.store.stats["bad_signature"] == 1


def test_a_car_block_whose_bytes_do_not_match_its_cid_is_refused_and_counted(harness):
    alice = harness.account()
    commit = alice.fork().commit([("create", f"{LABEL}/3kaaa", label("honest"))])
    record_cid = commit.ops[0]["cid"]
    blocks = [(cid, encode(label("swapped")) if cid == record_cid else block) for cid, block in commit.blocks]
    harness.feed(alice.commit_frame(commit, 1, blocks=car_bytes([commit.cid], blocks)))
    assert harness.uris() == set()
    assert harness.store.stats["bad_block"] == 1
    harness.commit(alice, [("create", f"{LABEL}/3kbbb", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kbbb")}


@pytest.mark.parametrize("data", [b"\xff\xfe garbage", b"", "text, not binary", encode({"op": 1, "t": "#commit"})],
                         ids=["garbage", "empty", "text", "no-body"])
def test_a_frame_that_does_not_decode_is_counted_and_ingestion_continues(harness, data):
    alice = harness.account()
    harness.feed(data)
    assert harness.store.stats["undecodable"] == 1
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")}


def test_an_op_the_signed_tree_does_not_hold_is_refused(harness):
    alice = harness.account()
    commit = alice.fork().commit([("create", f"{LABEL}/3kaaa", label())])
    other = encode(label("smuggled"))
    # The relay claims another record for the key (its block correct for its own CID).
    body = alice.commit_body(commit, 1, blocks=car_bytes([commit.cid], [*commit.blocks, (cid_of(other), other)]))
    body["ops"] = [{"action": "create", "path": f"{LABEL}/3kaaa", "cid": Link(cid_of(other))}]
    harness.feed(frame("#commit", body))
    assert harness.uris() == set() and harness.store.stats["bad_commit"] == 1


def test_a_delete_of_a_key_the_signed_tree_still_holds_is_refused(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    commit = alice.fork().commit([("create", f"{LABEL}/3kbbb", label())])
    body = alice.commit_body(commit, 2)
    body["ops"] = [{"action": "delete", "path": f"{LABEL}/3kaaa", "cid": None}]
    harness.feed(frame("#commit", body))
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")} and harness.store.stats["bad_commit"] == 1


def test_a_commit_of_another_repository_is_refused(harness):
    alice, bob = harness.account(), harness.account()
    commit = bob.fork().commit([("create", f"{LABEL}/3kaaa", label())])
    body = bob.commit_body(commit, 1)
    body["repo"] = alice.did  # bob's signed commit, presented as alice's
    harness.feed(frame("#commit", body))
    assert harness.uris() == set() and harness.store.stats["bad_commit"] == 1


HOSTILE = {
    "wrong-type": label(name=42),
    "missing-required": {k: v for k, v in label().items() if k != "datasetUri"},
    "unknown-type": {**label(), "$type": "science.alt.dataset.nothing"},
    "float": label(version=1.5),
    "bad-uri": label(datasetUri="not an at-uri"),
    "bad-datetime": label(createdAt="yesterday"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_record_that_does_not_validate_is_quarantined_with_the_reason(harness, case):
    alice = harness.account()
    path = f"{LABEL}/3kaaa"
    harness.commit(alice, [("create", path, HOSTILE[case]), ("create", f"{LABEL}/3kbbb", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kbbb")}  # the valid one of the same commit is kept
    reason, raw = harness.store.quarantined[uri(alice, path)]
    assert reason and raw == alice.records[path][1]
    assert harness.store.stats["quarantined"] == 1


def test_a_record_that_is_not_a_map_or_not_dag_cbor_is_quarantined(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", encode(["a", "list"])),
                           ("create", f"{LABEL}/3kbbb", b"\xa1\x61a\xc1\x01")])
    assert harness.uris() == set()
    assert "map" in harness.store.quarantined[uri(alice, f"{LABEL}/3kaaa")][0]
    assert "tag" in harness.store.quarantined[uri(alice, f"{LABEL}/3kbbb")][0]


def test_an_invalid_update_removes_the_valid_version_it_replaces(harness):
    alice = harness.account()
    path = f"{LABEL}/3kaaa"
    harness.commit(alice, [("create", path, label())])
    harness.commit(alice, [("update", path, label(name=["not", "a", "string"]))])
    assert harness.uris() == set() and uri(alice, path) in harness.store.quarantined
    harness.commit(alice, [("update", path, label("fixed"))])
    assert harness.store.records[uri(alice, path)].record["name"] == "fixed"
    assert uri(alice, path) not in harness.store.quarantined


def test_hostile_strings_are_indexed_as_they_are(harness):
    alice = harness.account()
    nul = label("a\x00b", description="x" * 6000)  # NUL is a character; over-long is a limit (a warning)
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", nul)])
    stored = harness.store.records[uri(alice, f"{LABEL}/3kaaa")]
    assert stored.record["name"] == "a\x00b" and any("description" in w for w in stored.warnings)



SHARD_BLOB = "science.alt.dataset.shardBlob"  # written by the blob storage plugin; not indexed here


def shard_blob() -> dict:
    return {"$type": SHARD_BLOB, "path": "shards/a.tar", "size": 10, "createdAt": "2024-01-01T00:00:00.000Z"}


def test_a_record_of_a_collection_the_index_does_not_hold_is_ignored_not_quarantined(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{SHARD_BLOB}/3kaaa", shard_blob()),
                           ("create", f"{LABEL}/3kbbb", label(name=42))])
    assert harness.uris() == set()
    assert set(harness.store.quarantined) == {uri(alice, f"{LABEL}/3kbbb")}  # an indexed collection's bad record
    assert harness.store.stats["quarantined"] == 1
    harness.commit(alice, [("create", f"{SHARD_BLOB}/3kccc", {"anything": ["at", "all"]})])
    assert uri(alice, f"{SHARD_BLOB}/3kccc") not in harness.store.quarantined
    assert harness.store.stats["quarantined"] == 1 and harness.store.stats["records_indexed"] == 0


def test_a_resync_passes_over_collections_the_index_does_not_hold(harness):
    alice = harness.account()
    alice.commit([("create", f"{SHARD_BLOB}/3kaaa", shard_blob()), ("create", f"{LABEL}/3kbbb", label())])
    backfill(IngestSettings(), harness.store, [alice.did], client=Client.anonymous())
    assert harness.uris() == {uri(alice, f"{LABEL}/3kbbb")}
    assert harness.store.quarantined == {} and harness.store.stats.get("quarantined", 0) == 0


# --- resyncs: gaps, tooBig, #sync, OutdatedCursor ----------------------------------------------


def test_a_gap_in_a_repositorys_revs_is_filled_by_a_resync(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label()), ("create", f"{LABEL}/3kbbb", label())])
    alice.commit([("delete", f"{LABEL}/3kaaa", None), ("create", f"{LABEL}/3kccc", label())])  # never seen
    seq = harness.commit(alice, [("create", f"{LABEL}/3kddd", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/{key}") for key in ("3kbbb", "3kccc", "3kddd")}
    assert harness.store.stats["resyncs"] == 1
    assert harness.store.repo_rev(alice.did) == alice.rev and harness.store.cursor(SOURCE) == seq


def test_a_too_big_commit_resyncs_its_repository(harness):
    alice = harness.account()
    commit = alice.commit([("create", f"{LABEL}/3kaaa", label())])
    harness.feed(alice.commit_frame(commit, 1, blocks=car_bytes([], []), tooBig=True))
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")}
    assert harness.store.stats["resyncs"] == 1


def test_a_sync_event_resyncs_a_repository_that_moved_on(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    head = alice.commit([("delete", f"{LABEL}/3kaaa", None), ("create", f"{LABEL}/3kbbb", label())])
    sync = {"seq": 2, "did": alice.did, "rev": head.rev, "time": "2024-01-01T00:00:00Z",
            "blocks": car_bytes([head.cid], [head.blocks[0]])}
    harness.feed(frame("#sync", sync))
    assert harness.uris() == {uri(alice, f"{LABEL}/3kbbb")}
    harness.feed(frame("#sync", {**sync, "seq": 3}))  # nothing new: no second fetch
    assert harness.store.stats["resyncs"] == 1 and harness.store.stats["stale_commits"] == 1


def test_a_sync_event_of_a_repository_with_nothing_of_ours_fetches_nothing(harness):
    bob = harness.account()
    head = bob.commit([("create", "app.bsky.feed.post/3kaaa", {"text": "hello"})])
    harness.feed(frame("#sync", {"seq": 1, "did": bob.did, "rev": head.rev,
                                 "blocks": car_bytes([head.cid], [head.blocks[0]])}))
    assert harness.store.stats["resyncs"] == 0 and harness.store.stats["sync_untracked"] == 1
    assert harness.store.cursor(SOURCE) == 1


def test_a_sync_event_with_a_forged_commit_fetches_nothing(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    forged = alice.fork().commit([], signer=Signer(seed=5))
    harness.feed(frame("#sync", {"seq": 2, "did": alice.did, "rev": forged.rev,
                                 "blocks": car_bytes([forged.cid], [forged.blocks[0]])}))
    assert harness.store.stats["bad_signature"] == 1 and harness.store.stats["resyncs"] == 0


def test_outdated_cursor_resyncs_every_repository_the_host_lists(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    alice.commit([("create", f"{LABEL}/3kbbb", label())])  # missed while the cursor was too old
    for _ in range(3):  # said on each reconnection: one resync of the host is enough
        harness.ingestor.handle_frame(alice.pds_url, frame("#info", {"name": "OutdatedCursor", "message": "too old"}))
    assert harness.ingestor.waiting == 1
    while harness.ingestor.work():
        pass
    harness.ingestor.flush()
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa"), uri(alice, f"{LABEL}/3kbbb")}


def test_resyncs_of_one_repository_are_spaced_out(harness):
    alice = harness.account()
    harness.ingestor.settings = IngestSettings(resync_interval=3600)
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    for _ in range(3):
        commit = alice.commit([("create", f"{LABEL}/3k{_}", label())])
        harness.feed(alice.commit_frame(commit, harness.seq + 1, blocks=car_bytes([], []), tooBig=True))
    assert harness.store.stats["resyncs"] == 1  # the later ones wait their turn
    assert harness.ingestor.waiting == 1


def test_a_repository_whose_pds_the_network_policy_refuses_is_not_fetched(harness):
    alice = harness.account()
    alice.pds_url = "http://10.1.2.3:2583"  # a private address, named by the account's own document
    harness.feed(alice.commit_frame(alice.commit([("create", f"{LABEL}/3kaaa", label())]), 1, blocks=b"", tooBig=True))
    assert harness.store.stats["refused_host"] == 1 and harness.uris() == set()


def test_backfill_reads_named_repositories_and_hosts_and_passes_over_what_does_not_resolve(harness):
    alice, bob = harness.account(), harness.account()
    alice.commit([("create", f"{LABEL}/3kaaa", label()), ("create", "app.bsky.feed.post/3kzzz", {"t": 1})])
    bob.commit([("create", f"{LABEL}/3kbbb", label(name=7))])
    counts = backfill(IngestSettings(), harness.store, [alice.did, "not a handle!", bob.pds_url],
                      client=Client.anonymous())
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")}
    assert uri(bob, f"{LABEL}/3kbbb") in harness.store.quarantined
    assert counts["bad_identity"] == 1 and counts["resyncs"] == 2 and counts["quarantined"] == 1
    assert harness.store.cursors == {}  # backfill moves no firehose cursor


# --- identity and accounts -------------------------------------------------------------------


def test_an_inactive_account_is_hidden_until_it_is_active_again(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    harness.feed(frame("#account", {"seq": 2, "did": alice.did, "active": False, "status": "deactivated"}))
    assert harness.uris() == set() and uri(alice, f"{LABEL}/3kaaa") in harness.store.records
    harness.feed(frame("#account", {"seq": 3, "did": alice.did, "active": True}))
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa")}


def test_a_rotated_key_is_learned_from_the_identity_event(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    alice.signer = Signer(seed=2024, curve="p256")
    harness.feed(frame("#identity", {"seq": harness.seq + 1, "did": alice.did}))
    harness.commit(alice, [("create", f"{LABEL}/3kbbb", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kaaa"), uri(alice, f"{LABEL}/3kbbb")}
    assert harness.store.stats["bad_signature"] == 0


def test_a_rotated_key_is_learned_when_a_signature_fails_without_an_identity_event(harness):
    alice = harness.account()
    harness.commit(alice, [("create", f"{LABEL}/3kaaa", label())])
    alice.signer = Signer(seed=31337)
    harness.commit(alice, [("create", f"{LABEL}/3kbbb", label())])
    assert uri(alice, f"{LABEL}/3kbbb") in harness.uris() and harness.store.stats["bad_signature"] == 0


def test_an_account_whose_document_cannot_be_fetched_waits_for_a_resync(harness):
    alice = CraftedRepo()
    with serve_repo(alice):
        commit = alice.commit([("create", f"{LABEL}/3kaaa", label())])
    harness.feed(alice.commit_frame(commit, 1))  # its host is gone now
    assert harness.store.stats["identity_unavailable"] == 1 and harness.ingestor.waiting == 1
    assert harness.store.cursor(SOURCE) == 1


# --- the store ---------------------------------------------------------------------------------


class PickyStore(MemoryIngestStore):
    """Refuses records named 'poison', as a database may refuse content it cannot hold."""

    def apply(self, batch):
        if any(op.record and op.record.get("name") == "poison" for op in batch.ops):
            raise ValueError("cannot store this")
        super().apply(batch)


def test_a_record_the_store_refuses_is_quarantined_and_the_rest_of_its_commit_applies(harness):
    harness.store = PickyStore()
    harness.ingestor = Ingestor(harness.store, settings=harness.settings, client=Client.anonymous())
    alice = harness.account()
    seq = harness.commit(alice, [("create", f"{LABEL}/3kaaa", label("poison")), ("create", f"{LABEL}/3kbbb", label())])
    assert harness.uris() == {uri(alice, f"{LABEL}/3kbbb")}
    assert "store refused" in harness.store.quarantined[uri(alice, f"{LABEL}/3kaaa")][0]
    assert harness.store.cursor(SOURCE) == seq


class BrokenStore(MemoryIngestStore):
    def apply(self, batch):
        raise OSError("disk full")


def test_a_store_that_takes_nothing_stops_ingestion():
    alice = CraftedRepo()
    with serve_repo(alice):
        ingestor = Ingestor(BrokenStore(), client=Client.anonymous())
        with pytest.raises(StoreFailed, match="disk full"):
            ingestor.handle_frame(SOURCE, alice.commit_frame(alice.commit([("create", f"{LABEL}/3kaaa", label())]), 1))
