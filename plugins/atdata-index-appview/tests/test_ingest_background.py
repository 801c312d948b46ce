"""Runs of commits written on the PostgreSQL store's own thread while ingestion goes on.

A consumer with a backlog hands the PostgreSQL store each run of commits
(``start_apply_many``) and goes on checking the next events while the server
writes; the run after waits for it. These tests hold the store's writer at a
gate to see what a consumer does meanwhile, and make one run fail on that
thread (a fault a real server cannot be made to show on demand) to see the
run written commit by commit instead. Crafted accounts on loopback, as in
``test_ingest_events.py``.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import pytest

from atdata_core.plugins import Client

from atdata_index_appview.ingest import Ingestor, MemoryIngestStore, StoreFailed
from atdata_index_appview.ingest._crafting import CraftedRepo, serve_repo
from atdata_index_appview.store.postgres import PostgresStore

SOURCE = "https://relay.example.com"
LABEL = "science.alt.dataset.label"


@pytest.fixture(autouse=True)
def crafted_accounts_allowed(own_configuration, monkeypatch):
    """The crafted accounts live on loopback (allowed by name), and their hosts are asked once."""
    monkeypatch.delenv("ATDATA_NETWORK_ALLOW_PRIVATE", raising=False)
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", "localhost")
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "0")


def label(name: str) -> dict:
    return {"$type": LABEL, "name": name, "datasetUri": "at://did:plc:abc/science.alt.dataset.entry/3kaaa",
            "createdAt": "2024-01-01T00:00:00.000Z"}


class GatedStore(PostgresStore):
    """The PostgreSQL store, its writer thread held at a gate before each run it writes; ``fail_runs``
    runs fail there first."""

    def __init__(self, url: str):
        super().__init__(url)
        self.gate = threading.Event()
        self.gate.set()
        self.fail_runs = 0
        self.runs: list[int] = []  # commits per run written on the writer thread

    def _apply_made(self, batches, made):
        if threading.current_thread() is not threading.main_thread():
            assert self.gate.wait(30), "the test never opened the gate"
            if self.fail_runs:
                self.fail_runs -= 1
                raise OSError("the connection to the server was lost")
            self.runs.append(len(batches))
        super()._apply_made(batches, made)


@pytest.fixture
def pg_url(pg_server, pg_template):
    url = pg_server.create_database(template=pg_template)
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def gated(pg_url):
    store = GatedStore(pg_url)
    try:
        yield store
    finally:
        store.gate.set()
        store.close()


class Feed:
    """Commits of crafted accounts, each frame numbered in order."""

    def __init__(self, stack: contextlib.ExitStack):
        self.stack = stack
        self.seq = 0

    def account(self) -> CraftedRepo:
        repo = CraftedRepo()
        self.stack.enter_context(serve_repo(repo))
        return repo

    def frame(self, repo: CraftedRepo, rkey: str, name: str) -> bytes:
        self.seq += 1
        return repo.commit_frame(repo.commit([("create", f"{LABEL}/{rkey}", label(name))]), self.seq)


@pytest.fixture
def feed():
    with contextlib.ExitStack() as stack:
        yield Feed(stack)


def names(store) -> set[str]:
    return {record.value["name"] for record in store.list_records(LABEL, limit=100).records}


def test_ingestion_goes_on_while_the_store_writes_a_run_and_the_next_run_follows_it(gated, feed):
    alice, bob = feed.account(), feed.account()
    ingestor = Ingestor(gated, client=Client.anonymous())
    ingestor.handle_frame(SOURCE, feed.frame(bob, "3kb9", "known"))  # an account read from the store waits
    gated.gate.clear()
    with ingestor.holding():
        for i in range(3):
            ingestor.handle_frame(SOURCE, feed.frame(alice, f"3ka{i}", f"first {i}"))
    # The run went to the store's thread, which waits at the gate: this thread is free, nothing is written yet.
    assert names(gated) == {"known"} and gated.cursor(SOURCE) == 1
    with ingestor.holding():
        for i in range(2):
            ingestor.handle_frame(SOURCE, feed.frame(bob, f"3kb{i}", f"second {i}"))
    # Checked and held while the first run is written, not waited for.
    assert ingestor.holds and names(gated) == {"known"}
    last = feed.seq

    gated.gate.set()
    ingestor.flush()
    assert not ingestor.holds
    assert names(gated) == {"known", "first 0", "first 1", "first 2", "second 0", "second 1"}
    assert gated.runs == [3, 2]
    assert gated.cursor(SOURCE) == last
    assert ingestor.totals["records_indexed"] == 6
    assert gated.stats()["records_indexed"] == 6


def a_run_at_the_gate(gated: GatedStore, feed: Feed) -> tuple[Ingestor, CraftedRepo]:
    """An ingestor that handed the store a run of two commits (records "a" and "b"), which the store's
    thread holds at the gate."""
    alice = feed.account()
    ingestor = Ingestor(gated, client=Client.anonymous())
    gated.gate.clear()
    with ingestor.holding():
        ingestor.handle_frame(SOURCE, feed.frame(alice, "3ka0", "a"))
        ingestor.handle_frame(SOURCE, feed.frame(alice, "3ka1", "b"))
    return ingestor, alice


def test_commits_held_behind_a_run_are_written_once_it_is_done(gated, feed):
    ingestor, alice = a_run_at_the_gate(gated, feed)
    with ingestor.holding():
        ingestor.handle_frame(SOURCE, feed.frame(alice, "3ka2", "c"))
    ingestor.maybe_flush()
    assert ingestor.holds  # the first run is not written yet: the commit stays held
    gated.gate.set()
    ingestor._in_flight[1].result(timeout=30)
    ingestor.maybe_flush()  # what a consumer with no event waiting calls
    assert not ingestor.holds
    assert names(gated) == {"a", "b", "c"} and gated.cursor(SOURCE) == feed.seq


def test_a_run_that_fails_on_the_stores_thread_is_written_commit_by_commit(gated, feed, caplog):
    alice = feed.account()
    ingestor = Ingestor(gated, client=Client.anonymous())
    gated.fail_runs = 1
    with caplog.at_level(logging.WARNING, logger="atdata_index_appview.ingest"):
        with ingestor.holding():
            for i in range(4):
                ingestor.handle_frame(SOURCE, feed.frame(alice, f"3ka{i}", f"r{i}"))
        ingestor.flush()
    assert names(gated) == {"r0", "r1", "r2", "r3"}
    assert gated.cursor(SOURCE) == feed.seq
    assert gated.runs == []  # none written together: one transaction each, on this thread
    assert "refused 4 commits written together" in caplog.text and "connection to the server was lost" in caplog.text
    assert gated.stats()["records_indexed"] == 4


def test_a_store_failing_for_good_stops_ingestion_after_a_run_on_its_thread(gated, feed):
    ingestor, _ = a_run_at_the_gate(gated, feed)
    gated.fail_runs = 1
    gated._pool.close()  # every connection gone: the run fails, and so does each commit alone
    gated.gate.set()
    with pytest.raises(StoreFailed, match="the store is closed"):
        ingestor.flush()


class HandleLog(MemoryIngestStore):
    """The in-memory store, noting the order of its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def set_handles(self, handles):
        self.calls.append(("set_handles", tuple(handles)))
        for did, handle in handles.items():
            self.set_handle(did, handle)

    def apply_many(self, batches) -> None:
        self.calls.append(("apply_many", tuple(batch.did for batch in batches)))
        super().apply_many(batches)


def test_the_handles_of_new_accounts_are_written_together_before_their_commits(feed):
    store = HandleLog()
    accounts = [feed.account() for _ in range(3)]
    ingestor = Ingestor(store, client=Client.anonymous())
    with ingestor.holding():
        for i, repo in enumerate(accounts):
            ingestor.handle_frame(SOURCE, feed.frame(repo, "3kaaa", f"n{i}"))
    dids = tuple(repo.did for repo in accounts)
    assert store.calls == [("set_handles", dids), ("apply_many", dids)]
    assert set(store.handles) == set(dids)


def test_records_held_past_the_bytes_bound_are_written_before_the_block_ends(feed, monkeypatch):
    from atdata_index_appview.ingest import _ingestor

    store = HandleLog()
    alice = feed.account()
    ingestor = Ingestor(store, client=Client.anonymous())
    # A label's block is about 130 bytes: the bound is passed at the third commit.
    monkeypatch.setattr(_ingestor, "_MAX_HELD_BYTES", 300)
    with ingestor.holding():
        for i in range(5):
            ingestor.handle_frame(SOURCE, feed.frame(alice, f"3ka{i}", f"n{i}"))
        written_within = [call for call in store.calls if call[0] == "apply_many"]
    assert written_within == [("apply_many", (alice.did,) * 3)]
    assert {stored.record["name"] for stored in store.visible().values()} == {f"n{i}" for i in range(5)}
