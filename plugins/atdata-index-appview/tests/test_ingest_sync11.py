"""Sync 1.1's ``prevData``: a commit must build on the tree the index holds, or the repository is read again.

Each ``#commit`` names the root of the tree before it (``prevData``). When
that is not the tree of the last commit the index applied (``since`` matching
does not prove it: a PDS can rewrite a repository under the same revision
chain), the commit's operations would be applied onto a state the repository
no longer has; the repository is resynced instead, and the mismatch counted.
Run against the in-memory store and both SQL stores (the tree root is kept
with the account's revision, in the transaction of the commit).
"""

from __future__ import annotations

import contextlib

import attrs
import pytest

from atdata_core.plugins import Client, reset_plugins

from atdata_index_appview.ingest import IngestSettings, Ingestor, MemoryIngestStore
from atdata_index_appview.ingest._car import cid_string
from atdata_index_appview.ingest._crafting import CraftedRepo, cid_of, serve_repo
from atdata_index_appview.store import open_store

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


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def ingest_store(request, tmp_path):
    if request.param == "memory":
        yield MemoryIngestStore()
        return
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'a.db'}"
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def pg_url(request):
    server = request.getfixturevalue("pg_server")
    url = server.create_database(template=request.getfixturevalue("pg_template"))
    yield url
    server.drop_database(url)


def label(name: str = "v1") -> dict:
    return {"$type": LABEL, "name": name, "datasetUri": "at://did:plc:abc/science.alt.dataset.entry/3kaaa",
            "createdAt": "2024-01-01T00:00:00.000Z"}


class Feeder:
    def __init__(self, store, stack: contextlib.ExitStack):
        self.store = store
        self.stack = stack
        self.seq = 0
        self.ingestor = Ingestor(store, settings=IngestSettings(resync_interval=0), client=Client.anonymous())

    def account(self) -> CraftedRepo:
        repo = CraftedRepo()
        self.stack.enter_context(serve_repo(repo))
        return repo

    def feed(self, repo: CraftedRepo, commit, **changes) -> int:
        self.seq += 1
        self.ingestor.handle_frame(SOURCE, repo.commit_frame(commit, self.seq, **changes))
        self.ingestor.flush()
        return self.seq

    def stats(self) -> dict:
        return dict(self.store.stats)

    def uris(self) -> set[str]:
        if isinstance(self.store, MemoryIngestStore):
            return set(self.store.visible())
        return {record.uri for record in self.store.list_records(LABEL, limit=100).records}


@pytest.fixture
def feeder(ingest_store):
    with contextlib.ExitStack() as stack:
        yield Feeder(ingest_store, stack)


def stat(feeder: Feeder, name: str) -> int:
    stats = feeder.store.stats if isinstance(feeder.store, MemoryIngestStore) else feeder.store.stats()
    return stats.get(name, 0)


def test_the_tree_root_of_each_commit_is_kept_with_the_revision(feeder):
    alice = feeder.account()
    first = alice.commit([("create", f"{LABEL}/3kaaa", label())])
    feeder.feed(alice, first)
    assert feeder.store.repo_state(alice.did) == (first.rev, cid_string(first.data))
    second = alice.commit([("create", f"{LABEL}/3kbbb", label())])
    assert second.prev_data == first.data
    feeder.feed(alice, second)
    assert feeder.store.repo_state(alice.did) == (second.rev, cid_string(second.data))
    assert stat(feeder, "prev_data_mismatch") == 0 and stat(feeder, "resyncs") == 0


def test_a_commit_on_a_tree_the_index_does_not_hold_resyncs_instead_of_applying(feeder):
    alice = feeder.account()
    feeder.feed(alice, alice.commit([("create", f"{LABEL}/3kaaa", label()), ("create", f"{LABEL}/3kbbb", label())]))
    # The repository loses a record the index never hears of, under the same revision chain: the
    # next commit follows the index's rev (since), but its prevData names the tree without it.
    alice.records.pop(f"{LABEL}/3kaaa")
    alice.head = attrs.evolve(alice.head, data=alice._tree()[0])
    commit = alice.commit([("create", f"{LABEL}/3kccc", label())])
    seq = feeder.feed(alice, commit)
    # Applied as it came, the index would still hold 3kaaa; read whole, it holds what the repository holds.
    assert feeder.uris() == {f"at://{alice.did}/{LABEL}/3kbbb", f"at://{alice.did}/{LABEL}/3kccc"}
    assert stat(feeder, "prev_data_mismatch") == 1 and stat(feeder, "resyncs") == 1
    assert feeder.store.repo_state(alice.did) == (commit.rev, cid_string(commit.data))
    assert feeder.store.cursor(SOURCE) == seq


def test_a_wrong_prev_data_is_counted_and_a_missing_one_is_not_checked(feeder):
    alice = feeder.account()
    feeder.feed(alice, alice.commit([("create", f"{LABEL}/3kaaa", label())]))
    wrong = alice.commit([("create", f"{LABEL}/3kbbb", label())])
    feeder.feed(alice, wrong, prevData=cid_of(b"another tree"))
    assert stat(feeder, "prev_data_mismatch") == 1 and stat(feeder, "resyncs") == 1
    assert feeder.uris() == {f"at://{alice.did}/{LABEL}/3kaaa", f"at://{alice.did}/{LABEL}/3kbbb"}
    # A host that predates Sync 1.1 sends no prevData: the commit applies on the since check alone.
    older = alice.commit([("create", f"{LABEL}/3kccc", label())])
    feeder.feed(alice, older, prevData=None)
    assert stat(feeder, "prev_data_mismatch") == 1 and stat(feeder, "resyncs") == 1
    assert f"at://{alice.did}/{LABEL}/3kccc" in feeder.uris()
