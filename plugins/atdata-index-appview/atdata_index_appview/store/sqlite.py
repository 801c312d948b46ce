"""The embedded store: one SQLite file, text search through an FTS5 trigram index.

Write-ahead logging lets the API read while ingestion writes; every commit of
ingestion is one transaction (records, revision, cursor), so a process killed
at any moment leaves the file at a commit boundary. The trigram index finds
any substring of three characters or more; shorter words are matched by a scan
of the rows the other conditions leave.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atdata_index_appview.store._sql import _TAG_EXISTS, _TAG_IN, SqlStore, StoreError, _Bulk

__all__ = ["SqliteStore"]

_V1 = [
    """CREATE TABLE records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uri TEXT NOT NULL UNIQUE,
        did TEXT NOT NULL,
        collection TEXT NOT NULL,
        rkey TEXT NOT NULL,
        cid TEXT,
        value TEXT NOT NULL,
        raw BLOB,
        warnings TEXT,
        indexed_at TEXT NOT NULL,
        sort_time TEXT NOT NULL,
        visible INTEGER NOT NULL DEFAULT 1,
        name TEXT NOT NULL DEFAULT '',
        name_f TEXT NOT NULL DEFAULT '',
        name_words TEXT NOT NULL DEFAULT ' ',
        description_f TEXT NOT NULL DEFAULT '',
        tags_f TEXT NOT NULL DEFAULT '',
        schema_f TEXT NOT NULL DEFAULT '',
        search_f TEXT NOT NULL DEFAULT '',
        ref_a TEXT,
        ref_b TEXT,
        version TEXT,
        schema_id TEXT
    )""",
    "CREATE INDEX records_by_time ON records (collection, sort_time DESC, uri DESC)",
    "CREATE INDEX records_by_repo ON records (did, collection, sort_time DESC, uri DESC)",
    "CREATE INDEX records_by_ref_a ON records (collection, ref_a)",
    "CREATE INDEX records_by_ref_b ON records (collection, ref_b)",
    "CREATE INDEX records_by_schema_id ON records (did, collection, schema_id)",
    "CREATE INDEX records_by_name ON records (did, collection, name)",
    "CREATE TABLE record_tags (uri TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (uri, tag)) WITHOUT ROWID",
    "CREATE INDEX record_tags_by_tag ON record_tags (tag, uri)",
    "CREATE VIRTUAL TABLE records_fts USING fts5(search_f, content='records', content_rowid='id', tokenize='trigram')",
    """CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
        INSERT INTO records_fts (rowid, search_f) VALUES (new.id, new.search_f);
    END""",
    """CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
        INSERT INTO records_fts (records_fts, rowid, search_f) VALUES ('delete', old.id, old.search_f);
    END""",
    """CREATE TRIGGER records_fts_update AFTER UPDATE OF search_f ON records BEGIN
        INSERT INTO records_fts (records_fts, rowid, search_f) VALUES ('delete', old.id, old.search_f);
        INSERT INTO records_fts (rowid, search_f) VALUES (new.id, new.search_f);
    END""",
    """CREATE TABLE accounts (
        did TEXT PRIMARY KEY,
        handle TEXT,
        handle_f TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        rev TEXT,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX accounts_by_handle ON accounts (handle_f)",
    "CREATE TABLE cursors (source TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    """CREATE TABLE quarantine (
        uri TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        seq INTEGER,
        reason TEXT NOT NULL,
        raw BLOB,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX quarantine_by_time ON quarantine (at)",
    "CREATE TABLE stats (metric TEXT PRIMARY KEY, value INTEGER NOT NULL)",
]

_V2 = [
    """CREATE TABLE changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        uri TEXT NOT NULL,
        did TEXT NOT NULL,
        collection TEXT NOT NULL,
        rkey TEXT NOT NULL,
        cid TEXT,
        value TEXT,
        at TEXT NOT NULL
    )""",
]

_V3 = ["ALTER TABLE accounts ADD COLUMN data TEXT"]

# A trigger that writes to the FTS5 table runs inside the statement's savepoint, and FTS5 writes
# out its pending terms at every savepoint: each record became a segment of its own, merged
# again and again (about three quarters of an insert's cost). The store inserts the text of a
# new row itself (see ``_write_record``); updates and deletes, rare, keep their triggers.
_V4 = ["DROP TRIGGER records_fts_insert"]

# Each tag row carries its record's time, so that a listing by tag reads the tag's rows newest
# first from one index and stops when the page is full (it gathered and sorted all of them).
_V5 = [
    "ALTER TABLE record_tags ADD COLUMN sort_time TEXT NOT NULL DEFAULT ''",
    "UPDATE record_tags SET sort_time = COALESCE((SELECT sort_time FROM records WHERE records.uri = record_tags.uri), '')",
    "CREATE INDEX record_tags_by_tag_time ON record_tags (tag, sort_time DESC, uri DESC)",
    "DROP INDEX record_tags_by_tag",
]

# The look-ups by schema id and by name serve schemas and labels only, yet every record had a row
# in both indexes, keyed by its account at random: two of the B-trees each new entry dirtied a page
# of (at 100,000 entries, 160 KiB were written per record, 123 without them). Each is now partial,
# on the collection its look-up names. A look-up reads the account's records of the collection
# either way: through these, or through records_by_repo (did, collection, ...).
_SCHEMA, _LABEL = "'science.alt.dataset.schema'", "'science.alt.dataset.label'"
_V6 = [
    "DROP INDEX records_by_schema_id",
    "DROP INDEX records_by_name",
    f"CREATE INDEX records_by_schema_id ON records (did, schema_id) WHERE collection = {_SCHEMA}",
    f"CREATE INDEX records_by_schema_name ON records (did, name) WHERE collection = {_SCHEMA}",
    f"CREATE INDEX records_by_label_name ON records (did, name) WHERE collection = {_LABEL}",
]

#: Versioned migrations: (version, name, statements). Append; never edit one that shipped.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "records, tags, trigram text index, accounts, cursors, quarantine, stats", _V1),
    (2, "changes: what subscribeChanges streams", _V2),
    (3, "accounts.data: the tree root of the last commit indexed (Sync 1.1 prevData checks)", _V3),
    (4, "the text index of a new record written by the store, not by a trigger", _V4),
    (5, "record_tags.sort_time: a tag's records listed newest first from its own index", _V5),
    (6, "the look-ups by schema id and by name indexed for schemas and labels only", _V6),
]


#: The columns a new version of a record replaces (every column of ``_RECORD_COLUMNS`` from ``cid`` on).
_UPDATED = ("cid", "value", "raw", "warnings", "indexed_at", "sort_time", "visible", "name", "name_f", "name_words",
            "description_f", "tags_f", "schema_f", "search_f", "ref_a", "ref_b", "version", "schema_id")

#: The page cache of a connection that writes, in KiB.
_WRITER_CACHE_KIB = 256 * 1024
#: How long the checkpointer waits after a write before copying the log into the file.
_CHECKPOINT_SECONDS = 1.0
#: A writer checkpoints itself only when the log holds this many pages (256 MiB): the checkpointer is stuck.
_FALLBACK_CHECKPOINT_PAGES = 16384
#: What is kept of the log's file after a checkpoint emptied it.
_LOG_BYTES_KEPT = 64 * 1024 * 1024

_log = logging.getLogger("atdata_index_appview.store")



def _fts_string(text: str) -> str:
    """``text`` as an FTS5 string: between double quotes, a double quote doubled. Nothing in it is syntax."""
    return '"' + text.replace('"', '""') + '"'


class SqliteStore(SqlStore):
    """The AppView's index in one SQLite file (created, with its folder, when missing)."""

    dialect = "sqlite"
    migrations = MIGRATIONS
    _tag_join = "CROSS JOIN"  # the tag's rows first: SQLite's planner, without statistics, may start from the records

    def __init__(self, path: str | Path, *, pool_size: int = 8):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the folder of the AppView store {self.path}: {err}") from err
        if sqlite3.sqlite_version_info < (3, 34, 0):
            raise StoreError(
                f"the AppView's SQLite store needs SQLite 3.34 or newer (FTS5 trigram index); "
                f"this Python has {sqlite3.sqlite_version}"
            )
        self._writers: set[int] = set()  # connections that wrote (their page cache made larger)
        self._written = threading.Event()  # set by each write; the checkpointer waits for it
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_lock = threading.Lock()
        super().__init__(self._connect, pool_size=pool_size)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
            # For a new file only (a database's page size is fixed once written): a record's row
            # (its JSON, its DAG-CBOR block and the derived text, about 2 KB) fills most of a
            # 4 KiB page, and the next row does not fit in what is left.
            conn.execute("PRAGMA page_size = 16384")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 30000")
            # Index pages of 100,000s of records: a larger page cache spares re-reading them on every
            # insert (uri keys land at random); sorts of ranked searches stay in memory.
            conn.execute("PRAGMA cache_size = -32768")
            conn.execute("PRAGMA temp_store = MEMORY")
            # The log is copied into the file by a thread of the store's own (see _checkpoints), not
            # by the transaction that fills it: a writer checkpoints only if that thread falls far behind.
            conn.execute(f"PRAGMA wal_autocheckpoint = {_FALLBACK_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit = {_LOG_BYTES_KEPT}")
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the AppView store {self.path}: {err}") from err
        return conn

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        if id(conn) not in self._writers:
            # A writer's page cache holds the indexes its inserts land in at random (the URIs',
            # the tags', the text index's segments): at 100,000 entries, 32 MiB of them made
            # ingestion a fifth slower than 256 MiB. Readers keep the smaller cache.
            conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
            self._writers.add(id(conn))
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._written.set()
        if self._checkpointer is None:
            self._start_checkpoints()

    def _start_checkpoints(self) -> None:
        with self._checkpointer_lock:
            if self._checkpointer is None and not self._closing.is_set():
                self._checkpointer = threading.Thread(target=self._checkpoints, name=f"checkpoints of {self.path.name}",
                                                      daemon=True)
                self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Copy the write-ahead log into the database file, about once a second while writes come.

        On a connection of its own, beside the writer: a checkpoint (pages copied, the file
        synced) runs in SQLite without the GIL, so ingestion goes on meanwhile instead of
        stopping for it in a commit, and PASSIVE never makes a writer or a reader wait.
        """
        conn = None
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
            while not self._closing.is_set():
                if not self._written.wait(0.5):
                    continue
                if self._closing.wait(_CHECKPOINT_SECONDS):
                    break
                self._written.clear()
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as err:  # the writers checkpoint themselves then (wal_autocheckpoint)
            _log.warning("background checkpoints of %s stopped: %s", self.path, err)
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._closing.set()
        with self._checkpointer_lock:
            checkpointer = self._checkpointer
        if checkpointer is not None:
            checkpointer.join()
        super().close()

    # Records new to the store are written a table at a time (see SqlStore._write_bulk): one
    # executemany per table instead of five or six statements a record, and the text of all of
    # them indexed by one INSERT ... SELECT of the rows just written.
    _bulk_writes = True

    def _write_bulk(self, db: Any, bulk: _Bulk) -> None:
        if bulk.unquarantined:
            db.run("DELETE FROM quarantine WHERE uri IN (SELECT value FROM json_each(?))", (json.dumps(bulk.unquarantined),))
        if bulk.records:
            # Row ids only grow (AUTOINCREMENT): the rows above the largest before are this batch's.
            last = db.one("SELECT COALESCE(MAX(id), 0) FROM records")[0]
            db.many(f"INSERT INTO records ({self._RECORD_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", bulk.records)
            db.run("INSERT INTO records_fts (rowid, search_f) SELECT id, search_f FROM records WHERE id > ? ORDER BY id",
                   (last,))
        if bulk.tags:
            db.many("INSERT INTO record_tags (uri, tag, sort_time) VALUES (?, ?, ?)", bulk.tags)
        if bulk.changes:
            db.many("INSERT INTO changes (action, uri, did, collection, rkey, cid, value, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    bulk.changes)
        if bulk.accounts:
            db.many(
                "INSERT INTO accounts (did, active, rev, data, updated_at) VALUES (?, 1, ?, ?, ?) "
                "ON CONFLICT (did) DO UPDATE SET rev = excluded.rev, data = excluded.data, updated_at = excluded.updated_at",
                [(did, rev, data, at) for did, (rev, data, at) in bulk.accounts.items()],
            )

    def _write_record(self, db: Any, values: tuple) -> bool:
        # A new URI is inserted and its text indexed here; a known one is updated in place (its
        # row id kept), and the update trigger replaces its text in the index.
        cursor = db.run(
            f"INSERT INTO records ({self._RECORD_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (uri) DO NOTHING",
            values,
        )
        if cursor.rowcount == 1:
            db.run("INSERT INTO records_fts (rowid, search_f) VALUES (?, ?)", (cursor.lastrowid, values[17]))
            return True
        db.run(
            f"UPDATE records SET {', '.join(f'{column} = ?' for column in _UPDATED)} WHERE uri = ?",
            (*values[4:], values[0]),
        )
        return False

    def _plan(self, db: Any, *, text: bool = False, tags: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
        # Without statistics, SQLite walks the collection's time index and tests each row: quick
        # when matches are many (the first page fills at once), a scan of the whole collection
        # when they are few. The text index, or the rows of the rarest tag when it is rare, find
        # those few directly (`+collection` keeps the planner off the collection's indexes);
        # the other tags are then tested row by row, never gathered whole.
        tag_tests = {tag: _TAG_EXISTS for tag in tags}
        if text:
            return "+collection = ?", tag_tests
        rarest = self._rarest_tag(db, tags)
        if rarest is None:
            return "collection = ?", tag_tests
        tag_tests[rarest] = _TAG_IN
        return "+collection = ?", tag_tests

    def _matches_over(self, db: Any, words: Sequence[str], n: int) -> bool:
        # Read in the text index alone (the table's rows are not read). Words under 3 characters
        # are not in it: those match most texts, so a search of only such words counts as common.
        # When there are few matches, their row ids are kept for the search itself, which then
        # reads them by id instead of matching the words in the index a second time.
        indexed = [word for word in words if len(word) >= 3]
        if not indexed:
            return True
        expression = " AND ".join(_fts_string(word) for word in indexed)
        rows = db.all("SELECT rowid FROM records_fts WHERE records_fts MATCH ? LIMIT ?", (expression, n + 1))
        if len(rows) > n:
            return True
        db.found = (expression, json.dumps([row[0] for row in rows]))
        return False

    def _text_filter(self, words: Sequence[str], db: Any = None) -> tuple[str, list[Any]]:
        # The trigram index finds substrings of 3 characters or more; shorter words are tested row by row.
        indexed = [word for word in words if len(word) >= 3]
        short = [word for word in words if len(word) < 3]
        clauses: list[str] = []
        params: list[Any] = []
        if indexed:
            expression = " AND ".join(_fts_string(word) for word in indexed)
            found = getattr(db, "found", None)
            if found is not None and found[0] == expression:
                clauses.append("id IN (SELECT value FROM json_each(?))")
                params.append(found[1])
            else:
                clauses.append("id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)")
                params.append(expression)
        for word in short:
            clauses.append("instr(search_f, ?) > 0")
            params.append(word)
        return " AND ".join(clauses), params
