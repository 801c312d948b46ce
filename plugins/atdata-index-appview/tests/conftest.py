"""Fixtures of the AppView's tests.

Stores: ``store`` runs a test against each store (the embedded SQLite file and
PostgreSQL); ``pg_server`` is one throwaway PostgreSQL cluster for the whole
run (started by the test suite itself, as the ``postgres`` user when run as
root, on a loopback port; stopped by its PID at the end), each test getting a
database of its own. Nothing is skipped when the PostgreSQL binaries are
missing: the server fixture installs them or fails saying what to install.

Records: ``make_op(collection, rkey, record)`` builds the ``RecordOp``
ingestion would hand the store (with the record's DAG-CBOR block and CID), and
``commit(store, did, ops)`` applies them as one commit.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from atdata_core.plugins import clear_identity_cache, reset_plugins

from atdata_index_appview.ingest import CommitBatch, RecordOp
from atdata_index_appview.store import SqlStore, open_store
from atdata_index_appview.store.testing import PostgresServer

REPO = "did:plc:appviewtests0000000000000"
SOURCE = "https://pds.test"


@pytest.fixture(autouse=True)
def own_configuration(tmp_path, tmp_path_factory, monkeypatch):
    """A user folder per test; nothing from the user's shell configures atdata."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    for name in ("ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_PASSWORD",
                 "ATDATA_PLUGINS_ALLOW", "ATDATA_PLUGINS_DENY", "ATDATA_INDEX_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    for name in list(__import__("os").environ):
        if name.startswith("ATDATA_APPVIEW_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    monkeypatch.chdir(tmp_path)
    reset_plugins()
    # Crafted did:web accounts are named by their loopback port: a port a later test is given again
    # must not find an earlier test's DID document in the process's identity cache.
    clear_identity_cache()
    yield
    reset_plugins()
    clear_identity_cache()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_template(pg_server) -> str:
    """A database migrated once, which each test's database copies (faster than migrating each)."""
    url = pg_server.create_database("appview_template")
    open_store(url, pool_size=1).close()
    return "appview_template"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty store of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'appview.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database(template=request.getfixturevalue("pg_template"))
    yield url
    server.drop_database(url)


@pytest.fixture
def store(store_url) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


def cid_of(raw: bytes) -> str:
    """The CID of a DAG-CBOR block (CIDv1, dag-cbor, sha-256), as ingestion computes it."""
    import libipld

    return libipld.encode_multibase("b", bytes([1, 0x71, 0x12, 0x20]) + hashlib.sha256(raw).digest())


def build_op(collection: str, rkey: str, record: dict[str, Any] | None, *, repo: str = REPO, action: str | None = None) -> RecordOp:
    uri = f"at://{repo}/{collection}/{rkey}"
    if record is None:
        return RecordOp(action="delete", uri=uri, cid=None, record=None, raw=None)
    import libipld

    raw = libipld.encode_dag_cbor(record)
    return RecordOp(action=action or "create", uri=uri, cid=cid_of(raw), record=record, raw=raw)


@pytest.fixture
def make_op() -> Callable[..., RecordOp]:
    return build_op


_revs = itertools.count(1)


def next_rev() -> str:
    """Increasing revisions (TID-shaped enough to sort like TIDs)."""
    return f"3l{next(_revs):011d}"


@pytest.fixture
def commit() -> Callable[..., CommitBatch]:
    seqs = itertools.count(1)

    def apply(store: Any, ops: Sequence[RecordOp], *, repo: str = REPO, source: str = SOURCE, seq: Any = "next",
              rev: str | None = None, **extra: Any) -> CommitBatch:
        """Apply ``ops`` as one commit: the next seq unless one is given (None: a backfill batch), a new rev."""
        batch = CommitBatch(source=source, seq=next(seqs) if seq == "next" else seq, did=repo, rev=rev or next_rev(),
                            ops=tuple(ops), **extra)
        store.apply(batch)
        return batch

    return apply
