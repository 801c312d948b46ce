"""The SQL both stores share: every query and write, written once.

:class:`SqlStore` is the store contract over a DB-API connection; the SQLite
and PostgreSQL stores supply connections, their migrations and the few
clauses that differ (how a word is found in indexed text, how a whole word of
a name is tested). SQL is written with ``?`` placeholders; the PostgreSQL store
turns them into ``%s``.

Pages are keyset pages in the order ``(score,) sort_time, uri``, all
descending, and the score of a search depends on the record and the query
only: a row present from the first page to the last is returned exactly once,
whatever is indexed meanwhile.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import attrs

from atdata_core.errors import AtdataError
from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, SCHEMA_NSID, AtUri

from atdata_index_appview.ingest import CommitBatch, RecordOp
from atdata_index_appview.store._model import (
    MAX_TAG_CHARS,
    Derived,
    Page,
    PageKey,
    StoredRecord,
    derive,
    fold,
    is_plain_word,
    record_json,
    schema_name_of,
)

__all__ = ["Change", "SqlStore", "StoreError"]

log = logging.getLogger("atdata_index_appview.store")

_COLUMNS = "uri, did, collection, rkey, cid, value, indexed_at, sort_time"
# A record carries a tag: as a set of the tag's rows (a plan that starts from them), or row by row.
_TAG_IN = "uri IN (SELECT uri FROM record_tags WHERE tag = ?)"
#: A tag carried by fewer records than this is found through its own rows, not by walking the collection.
_FEW_TAGGED = 2000
#: Tags of a listing by several tags are counted up to this many rows, to let the rarest lead.
_COUNTED_TAG_ROWS = 2000
_TAG_EXISTS = "EXISTS (SELECT 1 FROM record_tags WHERE record_tags.uri = records.uri AND record_tags.tag = ?)"


@attrs.frozen
class Change:
    """One change of what readers see: a record created, updated or deleted (``value``: its JSON text)."""

    seq: int
    action: str
    uri: str
    did: str
    collection: str
    rkey: str
    cid: str | None
    value: str | None
    at: str


class _Tx:
    """What one write transaction has read or will write once: accounts ``(rev, active)``, schema
    names by URI (``schemas_read``: the URIs looked up, found or not), each source's last seq, and
    the time its writes are stamped with (one for the whole transaction)."""

    __slots__ = ("accounts", "schema_names", "schemas_read", "cursors", "now", "indexed", "bulk")

    def __init__(self) -> None:
        self.now = _now()
        self.accounts: dict[str, tuple[Any, Any]] = {}
        self.schema_names: dict[str, str] = {}
        self.schemas_read: set[str] = set()
        self.cursors: dict[str, int] = {}
        self.indexed: set[str] = set()  # URIs of the transaction's writes that the store may hold a row of
        self.bulk: _Bulk | None = None  # writes gathered to go out together (stores that write in bulk)


class _Bulk:
    """Writes of one transaction gathered to go out a statement per table (see
    :meth:`SqlStore._write_bulk`): rows of records new to the store, their tags, their changes,
    the quarantine entries they clear, and each account's last revision."""

    __slots__ = ("records", "tags", "changes", "unquarantined", "accounts", "schemas")

    def __init__(self) -> None:
        self.schemas: list[tuple[str, str]] = []  # (URI, name) of the schema records among them
        self.records: list[tuple] = []
        self.tags: list[tuple[str, str, str]] = []
        self.changes: list[tuple] = []
        self.unquarantined: list[str] = []
        self.accounts: dict[str, tuple[str, Any, str]] = {}  # did -> (rev, data, updated_at)

    def __bool__(self) -> bool:
        return bool(self.records or self.accounts or self.unquarantined)


#: What an operation writes that it alone decides: its collection and record key, and for a create
#: or update its record's JSON text, what is derived from it, and its warnings as JSON (the last
#: three None when the operation is skipped).
_Made = tuple[str, str, str | None, Derived | None, str | None]


def _made(did: str, op: RecordOp) -> _Made | None:
    """:data:`_Made` of ``op``, or None when the operation is skipped (logged)."""
    if _nul(op.uri, op.cid):
        log.warning("skipping an operation whose URI or CID holds a NUL character")
        return None
    try:
        parsed = AtUri.parse(op.uri)
    except Exception:  # noqa: BLE001 - ingestion made the URI; a bad one is skipped, never fatal
        log.warning("skipping an operation on a malformed URI %r", op.uri[:300])
        return None
    if parsed.authority != did or not parsed.collection or not parsed.rkey:
        log.warning("skipping an operation on %r: not a record of %s", op.uri[:300], did)
        return None
    collection, rkey = parsed.collection, parsed.rkey
    if op.action == "delete":
        return collection, rkey, None, None, None
    if op.action not in ("create", "update") or not isinstance(op.record, Mapping):
        log.warning("skipping a %r operation on %s without a record", op.action, op.uri[:300])
        return collection, rkey, None, None, None
    try:
        text = record_json(op.record)
    except ValueError as err:
        log.warning("skipping %s: %s", op.uri[:300], err)
        return collection, rkey, None, None, None
    warnings = [str(w)[:1000] for w in getattr(op, "warnings", ()) or ()][:50]
    return collection, rkey, text, derive(collection, rkey, op.record), json.dumps(warnings) if warnings else None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class StoreError(AtdataError):
    """The AppView's store cannot be opened or used (unreachable, migrated by a newer version...)."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clean(text: Any, limit: int) -> str:
    return str(text)[:limit].replace("\x00", "")


def _nul(*values: Any) -> bool:
    """Whether a text holds a NUL character: no such key is ever stored (PostgreSQL text cannot hold one)."""
    return any(isinstance(value, str) and "\x00" in value for value in values)


class _Db:
    """One connection, with the store's placeholder style."""

    def __init__(self, conn: Any, placeholder: str):
        self.conn = conn
        self._ph = placeholder
        self.found: Any = None  # what a store found while planning a query, for the query itself
        self.settings: Any = None  # where a store keeps the planner settings of a read (see SqlStore._planner)

    def _sql(self, sql: str) -> str:
        return sql if self._ph == "?" else sql.replace("?", self._ph)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self.conn.execute(self._sql(sql), tuple(params))
        rows = cursor.fetchall()
        return [tuple(row) for row in rows]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Execute ``sql``; the cursor (its ``rowcount`` and ``lastrowid``)."""
        return self.conn.execute(self._sql(sql), tuple(params))

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            self.conn.cursor().executemany(self._sql(sql), rows)


class _Pool:
    """At most ``size`` connections, each used by one thread at a time."""

    def __init__(self, connect: Callable[[], Any], size: int, is_broken: Callable[[Any], bool]):
        self._connect = connect
        self._is_broken = is_broken
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if self._closed:
            raise StoreError("the store is closed")
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
                with self._lock:
                    self._all.append(conn)
            yield conn
        except BaseException:
            if conn is not None and self._is_broken(conn):
                self._discard(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                self._idle.put(conn)
            self._slots.release()

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped either way
            pass

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass


class SqlStore:
    """The AppView's index in a SQL database: the write side ingestion uses
    (:class:`~atdata_index_appview.ingest.IngestStore`) and the reads the API makes."""

    #: "sqlite" or "postgresql"
    dialect: str = ""
    #: (version, name, statements) in order; set by each store
    migrations: Sequence[tuple[int, str, Sequence[str]]] = ()
    _placeholder = "?"
    _instr = "instr"

    #: Whether :meth:`apply_many` gathers the rows of records new to the store (and their tags, changes
    #: and accounts' revisions) and writes them a statement per table (:meth:`_write_bulk`): for a
    #: store whose driver costs more per statement than per row.
    _bulk_writes = False

    #: How many changes the log keeps for subscribers that resume from a cursor.
    changes_kept = 100_000

    #: A text search matching more entries than this is not scored: its matches come newest first,
    #: each with score 0 (as an empty query's). Scoring reads every match; a common word matches
    #: a good part of the index, while the time index finds its newest matches in a few rows.
    scored_matches = 1000

    def __init__(self, connect: Callable[[], Any], *, pool_size: int = 8):
        self._pool = _Pool(connect, pool_size, self._is_broken)
        self._write_lock = threading.Lock()
        self._emitted = 0
        self._migrate()

    # ------------------------------------------------------------------ plumbing (per dialect)

    def _is_broken(self, conn: Any) -> bool:
        return False

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        raise NotImplementedError

    def _lock_migrations(self, db: _Db) -> None:
        """Keep two processes from migrating at once (inside the migration transaction)."""

    def _text_filter(self, words: Sequence[str], db: _Db | None = None) -> tuple[str, list[Any]]:
        """A clause true exactly when every word occurs in ``search_f``, as fast as the store can make it
        (``db``: the connection of the search, which may hold what :meth:`_matches_over` found)."""
        return self._text_test(words)

    def _text_test(self, words: Sequence[str]) -> tuple[str, list[Any]]:
        """A clause true exactly when every word occurs in ``search_f``, tested on each row read
        (no index: the planner then walks the time index, as a newest-first search wants)."""
        clauses = [f"{self._instr}(search_f, ?) > 0" for _ in words]
        return " AND ".join(clauses), list(words)

    def _matches_over(self, db: _Db, words: Sequence[str], n: int) -> bool:
        """Whether more than ``n`` records (of any collection, hidden ones too) hold every word."""
        clause, values = self._text_filter(words)
        row = db.one(f"SELECT COUNT(*) FROM (SELECT 1 FROM records WHERE {clause} LIMIT ?) AS found", [*values, n + 1])
        return bool(row and row[0] > n)

    def _plan(self, db: _Db, *, text: bool = False, tags: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
        """``(the clause keeping one collection, the clause keeping each tag)``, each with one ``?``.

        A store whose planner cannot tell a selective filter (the text, a rare tag) from the
        time-ordered walk of a whole collection says here which to prefer (PostgreSQL's planner
        knows from its statistics, when the store has any yet).
        """
        return "collection = ?", {tag: _TAG_IN for tag in tags}

    def _rarest_tag(self, db: _Db, tags: Sequence[str]) -> str | None:
        """The tag of ``tags`` carried by the fewest records, if fewer than :data:`_FEW_TAGGED`
        (counted only that far): a tag rare enough to start a listing from its own rows."""
        rarest, fewest = None, _FEW_TAGGED
        for tag in tags:
            row = db.one("SELECT COUNT(*) FROM (SELECT 1 FROM record_tags WHERE tag = ? LIMIT ?) AS tagged", (tag, fewest))
            if row and row[0] < fewest:
                rarest, fewest = tag, row[0]
        return rarest

    @contextmanager
    def _search_read(self) -> Iterator[_Db]:
        """A connection for a search or a listing, whose statements may be planned with settings of
        their own (:meth:`_planner`), which end with it."""
        with self._read() as db:
            yield db

    def _planner(self, db: _Db, **enabled: bool) -> None:
        """Allow or forbid kinds of plan for the statements that follow in a :meth:`_search_read`
        (``sort=False``: no sorting step, the order comes from an index): for a planner whose choice
        hangs on statistics that a store just filled may not have yet. Nothing here."""

    def _name_word_test(self, word: str) -> tuple[str, list[Any]]:
        """A clause true when ``word`` is a whole word of the name."""
        return f"{self._instr}(name_words, ?) > 0", [f" {word} "]

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[_Db]:
        with self._pool.connection() as conn:
            yield _Db(conn, self._placeholder)

    @contextmanager
    def _write(self) -> Iterator[_Db]:
        with self._write_lock, self._pool.connection() as conn, self._transaction(conn):
            yield _Db(conn, self._placeholder)

    # ------------------------------------------------------------------ migrations

    def _migrate(self) -> None:
        with self._write() as db:
            self._lock_migrations(db)
            db.run(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            row = db.one("SELECT MAX(version) FROM schema_migrations")
            have = row[0] if row and row[0] is not None else 0
            latest = self.migrations[-1][0] if self.migrations else 0
            if have > latest:
                raise StoreError(
                    f"the store is at schema version {have}, newer than this atdata-index-appview knows ({latest}); "
                    "upgrade atdata-index-appview"
                )
            for version, name, statements in self.migrations:
                if version <= have:
                    continue
                for statement in statements:
                    db.run(statement)
                db.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", (version, name, _now()))

    def schema_version(self) -> int:
        """The last migration applied."""
        with self._read() as db:
            row = db.one("SELECT MAX(version) FROM schema_migrations")
        return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------------ the write side (IngestStore)

    def apply(self, batch: CommitBatch) -> None:
        """Write one commit's operations, the repository's revision and the cursor, in one transaction.

        Operations apply as they come (create and update replace the record,
        delete removes it; both are idempotent, so replaying a commit changes
        nothing). A *snapshot* batch (a whole repository read again) also
        removes the repository's records it does not hold. A batch older than
        the revision already recorded for its repository is a replay of
        something superseded: its operations are skipped. The cursor of
        ``batch.source`` moves to ``batch.seq`` unless that is None.
        """
        self.apply_many((batch,))

    def apply_many(self, batches: Sequence[CommitBatch]) -> None:
        """:meth:`apply` each batch, in order, all in one transaction (all or none of them).

        For a consumer with a backlog: one transaction costs far more than one
        record, so writing many commits at once indexes several times faster,
        and the cursors still move only with the writes they cover. What every
        batch needs to read (its account, the names of the schemas its entries
        name) is read once for all of them, and each source's cursor written
        once, at the last seq; the writes go out without waiting for each
        other's answers where the database allows it (PostgreSQL's pipeline).
        """
        if not batches:
            return
        self._apply_made(batches, self._make(batches))

    def _make(self, batches: Sequence[CommitBatch]) -> list[list[_Made | None]]:
        """What each operation of ``batches`` writes that the operation alone decides (no reads)."""
        return [[_made(batch.did, op) for op in batch.ops] for batch in batches]

    def _apply_made(self, batches: Sequence[CommitBatch], made: list[list[_Made | None]]) -> None:
        with self._write() as db, self._pipeline(db.conn):
            tx = _Tx()
            if self._bulk_writes:
                tx.bulk = _Bulk()
            self._prefetch(db, batches, tx)
            for batch, ops_made in zip(batches, made):
                self._apply_in(db, batch, ops_made, tx)
            self._flush_bulk(db, tx)
            for source, seq in tx.cursors.items():
                self._set_cursor(db, source, seq)

    def _flush_bulk(self, db: _Db, tx: _Tx) -> None:
        """Write what the transaction gathered (before any write or read that must follow it)."""
        if tx.bulk:
            bulk, tx.bulk = tx.bulk, _Bulk()
            self._write_bulk(db, bulk)
            for uri, name in bulk.schemas:
                self._refresh_schema_name(db, uri, name)
            before, self._emitted = self._emitted, self._emitted + len(bulk.changes)
            if before // 1024 != self._emitted // 1024:
                self._trim_changes(db)

    def _write_bulk(self, db: _Db, bulk: _Bulk) -> None:
        """Write ``bulk``: records new to the store (no row of their URI exists), their tags and
        changes (in order), the quarantine entries of their URIs removed, each account's revision."""
        raise NotImplementedError

    def _among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the condition and its parameters."""
        return f"{column} IN ({', '.join('?' for _ in values)})", list(values)

    @contextmanager
    def _pipeline(self, conn: Any) -> Iterator[None]:
        """Send writes without waiting for each answer (PostgreSQL); nothing for SQLite."""
        yield

    def _prefetch(self, db: _Db, batches: Sequence[CommitBatch], tx: _Tx) -> None:
        dids = sorted({batch.did for batch in batches if not _nul(batch.did)})
        for chunk in _chunks(dids, 500):
            among, values = self._among("did", chunk)
            for did, rev, active in db.all(f"SELECT did, rev, active FROM accounts WHERE {among}", values):
                tx.accounts[did] = (rev, active)
        refs = sorted({
            op.record["schemaRef"]
            for batch in batches for op in batch.ops
            if isinstance(op.record, Mapping) and op.uri.split("/", 4)[3:4] == [ENTRY_NSID]
            and isinstance(op.record.get("schemaRef"), str) and not _nul(op.record["schemaRef"])
        })
        for chunk in _chunks(refs, 500):
            among, values = self._among("uri", chunk)
            rows = db.all(f"SELECT uri, name FROM records WHERE collection = ? AND {among}", [SCHEMA_NSID, *values])
            tx.schema_names.update(dict(rows))
        tx.schemas_read.update(refs)
        if tx.bulk is not None:
            # Which records the store holds already: the others are written in bulk, as new rows.
            uris = sorted({op.uri for batch in batches for op in batch.ops if not _nul(op.uri)})
            for chunk in _chunks(uris, 500):
                among, values = self._among("uri", chunk)
                tx.indexed.update(row[0] for row in db.all(f"SELECT uri FROM records WHERE {among}", values))

    def _apply_in(self, db: _Db, batch: CommitBatch, ops_made: list[_Made | None], tx: _Tx) -> None:
        if _nul(batch.did, batch.rev):
            log.warning("skipping a commit of a repository whose DID or rev holds a NUL character")
            if batch.seq is not None:
                tx.cursors[batch.source] = batch.seq
            return
        account = tx.accounts.get(batch.did)
        current_rev = account[0] if account else None
        replay = current_rev is not None and batch.rev < current_rev
        if not replay:
            visible = 1 if account is None or account[1] else 0
            if getattr(batch, "snapshot", False):
                self._flush_bulk(db, tx)
                self._clear_repo_except(db, batch.did, {op.uri for op in batch.ops if op.action != "delete"}, tx)
            for op, made in zip(batch.ops, ops_made):
                if made is not None:
                    self._apply_op(db, batch.did, op, made, visible, tx)
            data = getattr(batch, "data", None)
            data = None if _nul(data) else data
            if tx.bulk is not None:
                # Only the last revision of a transaction is ever seen: one row per account.
                tx.bulk.accounts[batch.did] = (batch.rev, data, tx.now)
                tx.accounts[batch.did] = (batch.rev, account[1] if account else 1)
            elif account is None:
                db.run(
                    "INSERT INTO accounts (did, active, rev, data, updated_at) VALUES (?, 1, ?, ?, ?)",
                    (batch.did, batch.rev, data, tx.now),
                )
                tx.accounts[batch.did] = (batch.rev, 1)
            else:
                db.run("UPDATE accounts SET rev = ?, data = ?, updated_at = ? WHERE did = ?",
                       (batch.rev, data, tx.now, batch.did))
                tx.accounts[batch.did] = (batch.rev, account[1])
        if batch.seq is not None:
            tx.cursors.pop(batch.source, None)  # keep the order in which sources last moved
            tx.cursors[batch.source] = batch.seq

    def _clear_repo_except(self, db: _Db, did: str, keep: set[str], tx: _Tx | None = None) -> None:
        rows = db.all("SELECT uri, collection FROM records WHERE did = ?", (did,))
        gone = [(uri, collection) for uri, collection in rows if uri not in keep]
        for uri, collection in gone:
            self._delete(db, uri, collection, tx)

    def _delete(self, db: _Db, uri: str, collection: str, tx: _Tx | None = None) -> None:
        row = db.one("SELECT did, rkey, visible FROM records WHERE uri = ?", (uri,))
        if row is None:
            return
        if row[2]:
            self._emit(db, "delete", uri, row[0], collection, row[1], None, None)
        db.run("DELETE FROM records WHERE uri = ?", (uri,))
        db.run("DELETE FROM record_tags WHERE uri = ?", (uri,))
        if collection == SCHEMA_NSID:
            if tx is not None:
                tx.schema_names.pop(uri, None)
            self._refresh_schema_name(db, uri, None)

    def _apply_op(self, db: _Db, did: str, op: RecordOp, made: _Made, visible: int, tx: _Tx) -> None:
        collection, rkey, text, derived, warnings = made
        bulk = tx.bulk is not None and op.action != "delete" and op.uri not in tx.indexed
        if tx.bulk and not bulk:
            self._flush_bulk(db, tx)  # what this op reads or writes follows what was gathered
        if op.action == "delete":
            self._delete(db, op.uri, collection, tx)
            return
        if text is None or derived is None:
            return
        schema_f = ""
        if collection == ENTRY_NSID:
            ref = derived.ref_a or ""
            if ref not in tx.schemas_read:
                row = db.one("SELECT name FROM records WHERE uri = ? AND collection = ?", (ref, SCHEMA_NSID))
                tx.schemas_read.add(ref)
                if row:
                    tx.schema_names[ref] = row[0]
            schema_f = schema_name_of(derived.ref_a, tx.schema_names.get(ref))
        search_f = derived.search_text(schema_f)
        values = (
            op.uri, did, collection, rkey, op.cid, text, op.raw, warnings,
            tx.now, derived.sort_time, visible,
            derived.name, derived.name_f, derived.name_words, derived.description_f, derived.tags_f, schema_f,
            search_f, derived.ref_a, derived.ref_b, derived.version, derived.schema_id,
        )
        if bulk:
            gathered = tx.bulk
            gathered.records.append(values)
            gathered.tags.extend((op.uri, tag, derived.sort_time) for tag in derived.tags)
            gathered.unquarantined.append(op.uri)
            if visible:
                gathered.changes.append((op.action, op.uri, did, collection, rkey, op.cid, text, tx.now))
            tx.indexed.add(op.uri)  # a later op on it in this transaction finds its row
            if collection == SCHEMA_NSID:
                # Entries gathered after it are searched by its name at once; those written before
                # (or gathered before it) once the gathered rows are written (_flush_bulk).
                self._schema_named(tx, op.uri, derived.name)
                gathered.schemas.append((op.uri, derived.name))
            return
        tx.indexed.add(op.uri)
        inserted = self._write_record(db, values)
        if not inserted:
            db.run("DELETE FROM record_tags WHERE uri = ?", (op.uri,))
        db.many("INSERT INTO record_tags (uri, tag, sort_time) VALUES (?, ?, ?)",
                [(op.uri, tag, derived.sort_time) for tag in derived.tags])
        db.run("DELETE FROM quarantine WHERE uri = ?", (op.uri,))
        if visible:
            self._emit(db, op.action, op.uri, did, collection, rkey, op.cid, text, tx.now)
        if collection == SCHEMA_NSID:
            self._schema_named(tx, op.uri, derived.name)
            self._refresh_schema_name(db, op.uri, derived.name)

    @staticmethod
    def _schema_named(tx: _Tx, uri: str, name: str) -> None:
        """The transaction's later entries naming the schema ``uri`` are searched by ``name``."""
        tx.schema_names[uri] = name
        tx.schemas_read.add(uri)

    _RECORD_COLUMNS = (
        "uri, did, collection, rkey, cid, value, raw, warnings, indexed_at, sort_time, visible, "
        "name, name_f, name_words, description_f, tags_f, schema_f, search_f, ref_a, ref_b, version, schema_id"
    )

    def _write_record(self, db: _Db, values: tuple) -> bool:
        """Insert or replace the row of ``values`` (in the order of :attr:`_RECORD_COLUMNS`, the URI
        first). True when the URI was new; False when it replaced a row, or when the store does not
        tell (then the caller clears what the row's earlier version left)."""
        db.run(
            f"INSERT INTO records ({self._RECORD_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, value = excluded.value, raw = excluded.raw, "
            "warnings = excluded.warnings, "
            "indexed_at = excluded.indexed_at, sort_time = excluded.sort_time, visible = excluded.visible, "
            "name = excluded.name, name_f = excluded.name_f, name_words = excluded.name_words, "
            "description_f = excluded.description_f, tags_f = excluded.tags_f, schema_f = excluded.schema_f, "
            "search_f = excluded.search_f, ref_a = excluded.ref_a, ref_b = excluded.ref_b, "
            "version = excluded.version, schema_id = excluded.schema_id",
            values,
        )
        return False

    def _refresh_schema_name(self, db: _Db, schema_uri: str, name: str | None) -> None:
        """Entries are searched by their schema's name: keep it current when the schema comes or goes."""
        schema_f = schema_name_of(schema_uri, name)
        rows = db.all(
            "SELECT uri, name_f, tags_f, description_f FROM records WHERE collection = ? AND ref_a = ? AND schema_f <> ?",
            (ENTRY_NSID, schema_uri, schema_f),
        )
        for uri, name_f, tags_f, description_f in rows:
            search_f = "\n".join((name_f, tags_f.strip("\n"), schema_f, description_f))
            db.run("UPDATE records SET schema_f = ?, search_f = ? WHERE uri = ?", (schema_f, search_f, uri))

    def _set_cursor(self, db: _Db, source: str, seq: int) -> None:
        db.run(
            "INSERT INTO cursors (source, seq, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
            (_clean(source, 2000), int(seq), _now()),
        )

    def _emit(self, db: _Db, action: str, uri: str, did: str, collection: str, rkey: str, cid: str | None,
              value: str | None, at: str | None = None) -> None:
        """Log a change of what readers see, in the transaction that makes it (subscribeChanges streams the log)."""
        db.run(
            "INSERT INTO changes (action, uri, did, collection, rkey, cid, value, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (action, uri, did, collection, rkey, cid, value, at or _now()),
        )
        self._emitted += 1
        if self._emitted % 1024 == 0:
            self._trim_changes(db)

    def _trim_changes(self, db: _Db) -> None:
        row = db.one("SELECT MAX(seq) FROM changes")
        if row and row[0] is not None:
            db.run("DELETE FROM changes WHERE seq <= ?", (int(row[0]) - self.changes_kept,))

    def quarantine(self, source: str, seq: int | None, uri: str, reason: str, raw: bytes | None) -> None:
        """Keep a record that did not validate aside with the reason; move the cursor unless ``seq`` is None.

        The URI no longer names what was indexed there (its publisher replaced
        it with something invalid), so an earlier version is removed. One entry
        is kept per URI, the latest; indexing a valid record there later clears it.
        """
        uri = _clean(uri, 8192)
        with self._write() as db:
            db.run("DELETE FROM quarantine WHERE uri = ?", (uri,))
            db.run(
                "INSERT INTO quarantine (uri, source, seq, reason, raw, at) VALUES (?, ?, ?, ?, ?, ?)",
                (uri, _clean(source, 2000), seq, _clean(reason, 4000), raw, _now()),
            )
            row = db.one("SELECT collection FROM records WHERE uri = ?", (uri,))
            if row:
                self._delete(db, uri, row[0], _Tx())
            if seq is not None:
                self._set_cursor(db, source, seq)

    def advance(self, source: str, seq: int) -> None:
        """Move the cursor of ``source`` to ``seq`` (an event that indexed nothing)."""
        with self._write() as db:
            self._set_cursor(db, source, seq)

    def cursor(self, source: str) -> int | None:
        """The last firehose sequence number applied from ``source``."""
        with self._read() as db:
            row = db.one("SELECT seq FROM cursors WHERE source = ?", (_clean(source, 2000),))
        return int(row[0]) if row else None

    def repo_rev(self, did: str) -> str | None:
        """The revision of the last commit applied for ``did``."""
        return self.repo_state(did)[0]

    def repo_state(self, did: str) -> tuple[str | None, str | None]:
        """``(rev, data)``: the revision of the last commit applied for ``did`` and the CID of its tree."""
        if _nul(did):
            return None, None
        with self._read() as db:
            row = db.one("SELECT rev, data FROM accounts WHERE did = ?", (did,))
        return (row[0], row[1]) if row else (None, None)

    def set_handle(self, did: str, handle: str | None) -> None:
        """Record the account's handle; another account that claimed it loses it (a handle names one account)."""
        self.set_handles({did: handle})

    def set_handles(self, handles: Mapping[str, str | None]) -> None:
        """:meth:`set_handle` of each account, in order, in one transaction."""
        with self._write() as db, self._pipeline(db.conn):
            now = _now()
            for did, handle in handles.items():
                handle = _clean(handle, 2000).strip().lstrip("@") if isinstance(handle, str) else None
                handle = handle or None
                handle_f = handle.lower() if handle else None
                if _nul(did):
                    continue
                if handle_f:
                    db.run(
                        "UPDATE accounts SET handle = NULL, handle_f = NULL, updated_at = ? WHERE handle_f = ? AND did <> ?",
                        (now, handle_f, did),
                    )
                db.run(
                    "INSERT INTO accounts (did, handle, handle_f, active, updated_at) VALUES (?, ?, ?, 1, ?) "
                    "ON CONFLICT (did) DO UPDATE SET handle = excluded.handle, handle_f = excluded.handle_f, "
                    "updated_at = excluded.updated_at",
                    (did, handle, handle_f, now),
                )

    def set_account_active(self, did: str, active: bool) -> None:
        """Hide (False) or show again (True) every record of the account."""
        flag = 1 if active else 0
        if _nul(did):
            return
        with self._write() as db:
            db.run(
                "INSERT INTO accounts (did, active, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (did) DO UPDATE SET active = excluded.active, updated_at = excluded.updated_at",
                (did, flag, _now()),
            )
            # Followers of the change stream see the account's records go and come back.
            changed = db.all(
                "SELECT uri, collection, rkey, cid, value FROM records WHERE did = ? AND visible <> ? ORDER BY id",
                (did, flag),
            )
            db.run("UPDATE records SET visible = ? WHERE did = ?", (flag, did))
            for uri, collection, rkey, cid, value in changed:
                self._emit(db, "create" if active else "delete", uri, did, collection, rkey,
                           cid if active else None, value if active else None)

    def count(self, metric: str, n: int = 1) -> None:
        """Add ``n`` to a statistic."""
        with self._write() as db:
            db.run(
                "INSERT INTO stats (metric, value) VALUES (?, ?) "
                "ON CONFLICT (metric) DO UPDATE SET value = stats.value + excluded.value",
                (_clean(metric, 200), int(n)),
            )

    # ------------------------------------------------------------------ reads

    def _records(self, rows: Iterable[tuple], ranked: bool = False) -> list[StoredRecord]:
        return [
            StoredRecord(
                uri=row[0], did=row[1], collection=row[2], rkey=row[3], cid=row[4], json=row[5],
                indexed_at=row[6], sort_time=row[7], score=int(row[8]) if ranked else 0,
            )
            for row in rows
        ]

    def get(self, uri: str) -> StoredRecord | None:
        """The visible record at ``uri`` (a DID authority), or None."""
        if _nul(uri):
            return None
        with self._read() as db:
            rows = db.all(f"SELECT {_COLUMNS} FROM records WHERE uri = ? AND visible = 1", (uri,))
        found = self._records(rows)
        return found[0] if found else None

    def get_many(self, uris: Sequence[str]) -> dict[str, StoredRecord]:
        """The visible records among ``uris``, by URI."""
        uris = [uri for uri in uris if not _nul(uri)]
        if not uris:
            return {}
        among, values = self._among("uri", uris)
        with self._read() as db:
            rows = db.all(f"SELECT {_COLUMNS} FROM records WHERE {among} AND visible = 1", values)
        return {record.uri: record for record in self._records(rows)}

    def raw(self, uri: str) -> bytes | None:
        """The record's DAG-CBOR block as published, or None."""
        if _nul(uri):
            return None
        with self._read() as db:
            row = db.one("SELECT raw FROM records WHERE uri = ? AND visible = 1", (uri,))
        return bytes(row[0]) if row and row[0] is not None else None

    def list_records(
        self,
        collection: str,
        *,
        did: str | None = None,
        ref_a: str | None = None,
        ref_b: str | None = None,
        query: str | None = None,
        tags: Sequence[str] = (),
        after: PageKey | None = None,
        limit: int = 50,
    ) -> Page:
        """Records of a collection, newest ``createdAt`` first, keyset-paged.

        ``ref_a`` / ``ref_b`` keep records referring to a URI (an entry's
        schema; a lens's source and target schemas; a label's dataset).
        ``query`` keeps records whose name or description contains it,
        ignoring case; ``tags`` records carrying every tag.
        """
        phrase = fold(query) if query else ""
        with self._search_read() as db:
            return self._list_in(db, collection, did, ref_a, ref_b, phrase, tags, after, limit)

    def _list_in(self, db: _Db, collection: str, did: str | None, ref_a: str | None, ref_b: str | None,
                 phrase: str, tags: Sequence[str], after: PageKey | None, limit: int) -> Page:
        if tags and not phrase and did is None and ref_a is None and ref_b is None:
            return self._tag_walk(db, collection, tags, after, limit)
        collection_test, tag_tests = self._plan(db, text=bool(phrase), tags=tags)
        where = [collection_test, "visible = 1"]
        params: list[Any] = [collection]
        if not self._filters(where, params, did=did, ref_a=ref_a, ref_b=ref_b, tags=tags, tag_tests=tag_tests):
            return Page((), None)
        if phrase:
            clause, values = self._text_filter([phrase])
            where.append(clause)
            params.extend(values)
            where.append(f"({self._instr}(name_f, ?) > 0 OR {self._instr}(description_f, ?) > 0)")
            params.extend([phrase, phrase])
        if after is not None:
            where.append("(sort_time, uri) < (?, ?)")
            params.extend([after.sort_time, after.uri])
        sql = (
            f"SELECT {_COLUMNS} FROM records WHERE {' AND '.join(where)} "
            "ORDER BY sort_time DESC, uri DESC LIMIT ?"
        )
        rows = db.all(sql, [*params, limit + 1])
        return self._page(self._records(rows), limit, ranked=False)

    #: How a listing by tag joins the tag's rows to the records (SQLite: in that order, always).
    _tag_join = "JOIN"
    #: Whether a listing by tag reads each record in a subquery of its tag row (``LATERAL``): the
    #: tag's rows are then read first whatever the planner expects of the records' filters.
    _tag_lateral = False

    def _tag_walk(self, db: _Db, collection: str, tags: Sequence[str], after: PageKey | None, limit: int) -> Page:
        """Records carrying every tag, newest first: the rows of one tag read in time order from
        its index, each joined to its record, until the page is full (a few dozen rows however
        many carry the tag). With several tags, the rarest leads and the others are tested."""
        distinct = list(dict.fromkeys(tags))
        if any(len(tag) > MAX_TAG_CHARS or "\x00" in tag for tag in distinct):
            return Page((), None)  # never indexed, so carried by nothing
        lead = distinct[0]
        if len(distinct) > 1:
            counts = {}
            for tag in distinct:
                row = db.one("SELECT COUNT(*) FROM (SELECT 1 FROM record_tags WHERE tag = ? LIMIT ?) AS tagged",
                              (tag, _COUNTED_TAG_ROWS))
                counts[tag] = row[0] if row else 0
            lead = min(distinct, key=lambda tag: counts[tag])
        tag_where, tag_params = ["t.tag = ?"], [lead]
        if after is not None:
            tag_where.append("(t.sort_time, t.uri) < (?, ?)")
            tag_params.extend([after.sort_time, after.uri])
        record_where, record_params = ["r.collection = ?", "r.visible = 1"], [collection]
        for tag in distinct:
            if tag != lead:
                record_where.append("EXISTS (SELECT 1 FROM record_tags AS o WHERE o.uri = r.uri AND o.tag = ?)")
                record_params.append(tag)
        columns = ", ".join(f"r.{column.strip()}" for column in _COLUMNS.split(","))
        if self._tag_lateral:
            # OFFSET 0 keeps the subquery whole (never merged into a join the planner could reorder):
            # each tag row, in the order of its index, looks up its own record until the page is full.
            self._planner(db, sort=False)
            sql = (
                f"SELECT {columns} FROM record_tags AS t CROSS JOIN LATERAL (SELECT {columns} FROM records AS r "
                f"WHERE r.uri = t.uri AND {' AND '.join(record_where)} OFFSET 0) AS r "
                f"WHERE {' AND '.join(tag_where)} ORDER BY t.sort_time DESC, t.uri DESC LIMIT ?"
            )
            params = [*record_params, *tag_params]
        else:
            where = [tag_where[0], *record_where, *tag_where[1:]]
            params = [lead, *record_params, *tag_params[1:]]
            sql = (
                f"SELECT {columns} FROM record_tags AS t {self._tag_join} records AS r ON r.uri = t.uri "
                f"WHERE {' AND '.join(where)} ORDER BY t.sort_time DESC, t.uri DESC LIMIT ?"
            )
        rows = db.all(sql, [*params, limit + 1])
        return self._page(self._records(rows), limit, ranked=False)

    def search_entries(
        self,
        words: Sequence[str],
        *,
        did: str | None = None,
        schema_ref: str | None = None,
        tags: Sequence[str] = (),
        after: PageKey | None = None,
        limit: int = 25,
    ) -> Page:
        """Dataset entries whose name, tags, schema name or description hold every word, best first.

        ``words`` are folded (see :func:`~atdata_index_appview.store.search_words`).
        The order is the score (see below), then newest ``createdAt``, then URI.
        A word scores 10 as a whole word of the name, else 6 within the name;
        5 as a whole tag, else 3 within a tag; 2 in the schema name; 1 in the
        description. An entry whose name is the whole query scores 20 more.

        When the words match more than :attr:`scored_matches` records, the
        matches are not scored: they come newest first, each with score 0, the
        order of a search without words. A page's key carries its score, so the
        pages after the first keep the order the first page was cut in.
        """
        words = [word for word in words if word]
        if not words:
            # Every score is 0: the listing's order, which the time index serves without sorting every match.
            page = self.list_records(
                ENTRY_NSID, did=did, ref_a=schema_ref, tags=tags, limit=limit,
                after=None if after is None else PageKey(sort_time=after.sort_time, uri=after.uri),
            )
            if after is not None and (after.score or 0) > 0:
                page = Page((), None)  # past a positive score, an empty query has nothing left
            ranked = tuple(attrs.evolve(record, score=0) for record in page.records)
            return Page(ranked, None if page.next is None else attrs.evolve(page.next, score=0))
        with self._search_read() as db:
            newest = after.score == 0 if after is not None else self._matches_over(db, words, self.scored_matches)
            collection_test, tag_tests = self._plan(db, text=not newest, tags=tags)
            where = [collection_test, "visible = 1"]
            params: list[Any] = [ENTRY_NSID]
            if not self._filters(where, params, did=did, ref_a=schema_ref, tags=tags, tag_tests=tag_tests):
                return Page((), None)
            if newest:
                # Walking the time index is the plan for the text alone (and an author's, in their own
                # index); with a schema or tags the planner weighs those filters.
                self._planner(db, sort=bool(schema_ref is not None or tags))
                return self._newest_matches(db, words, where, params, after, limit)
            clause, values = self._text_filter(words, db)
            where.append(clause)
            params.extend(values)
            score_sql, score_params = self._score(words)
            # Every match is scored, but only its key is sorted: the records of the page are read
            # after, by id (a common word matches most of the index; its rows stay where they are).
            inner = f"SELECT id, {score_sql} AS score, sort_time, uri FROM records WHERE {' AND '.join(where)}"
            outer_where = ""
            outer_params: list[Any] = []
            if after is not None:
                outer_where = "WHERE (score, sort_time, uri) < (?, ?, ?)"
                outer_params = [after.score or 0, after.sort_time, after.uri]
            top = (
                f"SELECT id, score FROM ({inner}) AS found {outer_where} "
                "ORDER BY score DESC, sort_time DESC, uri DESC LIMIT ?"
            )
            columns = ", ".join(f"records.{column.strip()}" for column in _COLUMNS.split(","))
            sql = (
                f"SELECT {columns}, top.score FROM ({top}) AS top JOIN records ON records.id = top.id "
                "ORDER BY top.score DESC, records.sort_time DESC, records.uri DESC"
            )
            rows = db.all(sql, [*score_params, *params, *outer_params, limit + 1])
        return self._page(self._records(rows, ranked=True), limit, ranked=True)

    def _newest_matches(self, db: _Db, words: Sequence[str], where: list[str], params: list[Any],
                        after: PageKey | None, limit: int) -> Page:
        """The matches of a search too common to score, newest first, each with score 0."""
        clause, values = self._text_test(words)
        where = [*where, clause]
        params = [*params, *values]
        if after is not None:
            where.append("(sort_time, uri) < (?, ?)")
            params.extend([after.sort_time, after.uri])
        sql = (
            f"SELECT {_COLUMNS}, 0 FROM records WHERE {' AND '.join(where)} "
            "ORDER BY sort_time DESC, uri DESC LIMIT ?"
        )
        rows = db.all(sql, [*params, limit + 1])
        return self._page(self._records(rows, ranked=True), limit, ranked=True)

    def _score(self, words: Sequence[str]) -> tuple[str, list[Any]]:
        if not words:
            return "0", []
        instr = self._instr
        parts: list[str] = []
        params: list[Any] = []
        for word in words:
            if is_plain_word(word):
                test, values = self._name_word_test(word)
                parts.append(f"(CASE WHEN {test} THEN 10 WHEN {instr}(name_f, ?) > 0 THEN 6 ELSE 0 END)")
                params.extend([*values, word])
            else:
                parts.append(f"(CASE WHEN {instr}(name_f, ?) > 0 THEN 6 ELSE 0 END)")
                params.append(word)
            parts.append(f"(CASE WHEN {instr}(tags_f, ?) > 0 THEN 5 WHEN {instr}(tags_f, ?) > 0 THEN 3 ELSE 0 END)")
            params.extend([f"\n{word}\n", word])
            parts.append(f"(CASE WHEN {instr}(schema_f, ?) > 0 THEN 2 ELSE 0 END)")
            params.append(word)
            parts.append(f"(CASE WHEN {instr}(description_f, ?) > 0 THEN 1 ELSE 0 END)")
            params.append(word)
        parts.append("(CASE WHEN name_f = ? THEN 20 ELSE 0 END)")
        params.append(" ".join(words))
        return "(" + " + ".join(parts) + ")", params

    def _filters(
        self,
        where: list[str],
        params: list[Any],
        *,
        did: str | None = None,
        ref_a: str | None = None,
        ref_b: str | None = None,
        tags: Sequence[str] = (),
        tag_tests: Mapping[str, str] | None = None,
    ) -> bool:
        """Add the common filters; False when they can match nothing."""
        if _nul(did, ref_a, ref_b):
            return False
        if did is not None:
            where.append("did = ?")
            params.append(did)
        if ref_a is not None:
            where.append("ref_a = ?")
            params.append(ref_a)
        if ref_b is not None:
            where.append("ref_b = ?")
            params.append(ref_b)
        for tag in dict.fromkeys(tags):
            if len(tag) > MAX_TAG_CHARS or "\x00" in tag:
                return False  # never indexed, so carried by nothing
            where.append((tag_tests or {}).get(tag, _TAG_IN))
            params.append(tag)
        return True

    @staticmethod
    def _page(records: list[StoredRecord], limit: int, *, ranked: bool) -> Page:
        if len(records) > limit:
            records = records[:limit]
            return Page(tuple(records), records[-1].key(ranked))
        return Page(tuple(records), None)

    def schema_candidates(self, did: str, schema_id: str) -> list[StoredRecord]:
        """Schema records of ``did`` keyed ``{schema_id}:...`` or named ``schema_id`` (select among them)."""
        if _nul(did, schema_id):
            return []
        with self._read() as db:
            rows = db.all(
                f"SELECT {_COLUMNS} FROM records WHERE did = ? AND collection = ? AND visible = 1 "
                "AND (schema_id = ? OR name = ?)",
                (did, SCHEMA_NSID, schema_id, schema_id),
            )
        return self._records(rows)

    def label_candidates(self, did: str, name: str) -> list[StoredRecord]:
        """Label records of ``did`` called ``name``."""
        if _nul(did, name):
            return []
        with self._read() as db:
            rows = db.all(
                f"SELECT {_COLUMNS} FROM records WHERE did = ? AND collection = ? AND visible = 1 AND name = ?",
                (did, LABEL_NSID, name),
            )
        return self._records(rows)

    # ------------------------------------------------------------------ the change log

    def changes_after(self, seq: int, *, limit: int = 500) -> list[Change]:
        """Changes of what readers see with a sequence number above ``seq``, oldest first."""
        with self._read() as db:
            rows = db.all(
                "SELECT seq, action, uri, did, collection, rkey, cid, value, at FROM changes WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (int(seq), int(limit)),
            )
        return [Change(*row) for row in rows]

    def change_bounds(self) -> tuple[int, int]:
        """``(oldest, newest)`` sequence numbers the log holds; ``(0, 0)`` when it is empty."""
        with self._read() as db:
            row = db.one("SELECT MIN(seq), MAX(seq) FROM changes")
        if not row or row[1] is None:
            return 0, 0  # nothing changed yet (pruning always keeps the newest changes)
        return int(row[0]), int(row[1])

    # ------------------------------------------------------------------ accounts and service state

    def did_for_handle(self, handle: str) -> str | None:
        """The DID of the account that last claimed ``handle`` (any case), or None."""
        handle_f = handle.strip().lstrip("@").lower()
        if not handle_f or _nul(handle_f):
            return None
        with self._read() as db:
            row = db.one(
                "SELECT did FROM accounts WHERE handle_f = ? ORDER BY updated_at DESC LIMIT 1", (handle_f,)
            )
        return row[0] if row else None

    def handle_of(self, did: str) -> str | None:
        """The handle last recorded for ``did``."""
        if _nul(did):
            return None
        with self._read() as db:
            row = db.one("SELECT handle FROM accounts WHERE did = ?", (did,))
        return row[0] if row else None

    def account_active(self, did: str) -> bool:
        """False when the account was hidden (an inactive ``#account`` status)."""
        if _nul(did):
            return True
        with self._read() as db:
            row = db.one("SELECT active FROM accounts WHERE did = ?", (did,))
        return bool(row[0]) if row else True

    def record_counts(self) -> dict[str, int]:
        """How many visible records each collection holds."""
        with self._read() as db:
            rows = db.all("SELECT collection, COUNT(*) FROM records WHERE visible = 1 GROUP BY collection")
        return {collection: int(n) for collection, n in rows}

    def count_records(
        self, collection: str, *, did: str | None = None, ref_a: str | None = None, ref_b: str | None = None
    ) -> int:
        """How many visible records of ``collection`` :meth:`list_records` would list with these filters."""
        where = ["collection = ?", "visible = 1"]
        params: list[Any] = [collection]
        if not self._filters(where, params, did=did, ref_a=ref_a, ref_b=ref_b):
            return 0
        with self._read() as db:
            row = db.one(f"SELECT COUNT(*) FROM records WHERE {' AND '.join(where)}", params)
        return int(row[0]) if row else 0

    def account_count(self) -> int:
        """How many accounts have a visible record (every repository a commit reached has an accounts row)."""
        with self._read() as db:
            row = db.one(
                "SELECT COUNT(*) FROM accounts WHERE EXISTS "
                "(SELECT 1 FROM records WHERE records.did = accounts.did AND records.visible = 1)"
            )
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, int]:
        """The statistics counted so far (``count``)."""
        with self._read() as db:
            rows = db.all("SELECT metric, value FROM stats")
        return {metric: int(value) for metric, value in rows}

    def quarantine_size(self) -> int:
        """How many records are kept aside now."""
        with self._read() as db:
            row = db.one("SELECT COUNT(*) FROM quarantine")
        return int(row[0]) if row else 0

    def cursors(self) -> dict[str, tuple[int, str]]:
        """Every source's cursor and when it last moved."""
        with self._read() as db:
            rows = db.all("SELECT source, seq, updated_at FROM cursors")
        return {source: (int(seq), updated) for source, seq, updated in rows}

    def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent records kept aside, newest first."""
        with self._read() as db:
            rows = db.all(
                "SELECT source, seq, uri, reason, at FROM quarantine ORDER BY at DESC, uri DESC LIMIT ?", (int(limit),)
            )
        return [dict(zip(("source", "seq", "uri", "reason", "at"), row)) for row in rows]

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self._read() as db:
            db.one("SELECT 1")
