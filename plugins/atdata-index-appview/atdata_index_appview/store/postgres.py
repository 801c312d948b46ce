"""The PostgreSQL store, for deployments that outgrow one machine.

Text search uses both of PostgreSQL's tools: trigram matching (``pg_trgm``,
a GIN index on the folded search text) finds every word as a substring, and
full-text search (a ``tsvector`` of the name's words, GIN-indexed) tells a
whole word of a name from a piece of one when ranking. Text columns that are
ordered or compared use the ``C`` collation, so the order of pages is byte
order whatever the database's locale (and the same as the SQLite store's).

Needs ``pg_trgm`` (in PostgreSQL's contrib, trusted since PostgreSQL 13: the
database's owner may create it; the first migration does).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

from atdata_core.plugins import ENTRY_NSID

from atdata_index_appview.ingest import CommitBatch
from atdata_index_appview.store._sql import _TAG_IN, SqlStore, StoreError, _Bulk, _Db

__all__ = ["PostgresStore"]

_C = 'COLLATE "C"'

_V1 = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    f"""CREATE TABLE records (
        id BIGSERIAL PRIMARY KEY,
        uri TEXT {_C} NOT NULL UNIQUE,
        did TEXT {_C} NOT NULL,
        collection TEXT {_C} NOT NULL,
        rkey TEXT {_C} NOT NULL,
        cid TEXT,
        value TEXT NOT NULL,
        raw BYTEA,
        warnings TEXT,
        indexed_at TEXT {_C} NOT NULL,
        sort_time TEXT {_C} NOT NULL,
        visible SMALLINT NOT NULL DEFAULT 1,
        name TEXT {_C} NOT NULL DEFAULT '',
        name_f TEXT {_C} NOT NULL DEFAULT '',
        name_words TEXT {_C} NOT NULL DEFAULT ' ',
        description_f TEXT {_C} NOT NULL DEFAULT '',
        tags_f TEXT {_C} NOT NULL DEFAULT '',
        schema_f TEXT {_C} NOT NULL DEFAULT '',
        search_f TEXT {_C} NOT NULL DEFAULT '',
        ref_a TEXT {_C},
        ref_b TEXT {_C},
        version TEXT {_C},
        schema_id TEXT {_C},
        name_tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, name_words)) STORED
    )""",
    "CREATE INDEX records_by_time ON records (collection, sort_time DESC, uri DESC)",
    "CREATE INDEX records_by_repo ON records (did, collection, sort_time DESC, uri DESC)",
    "CREATE INDEX records_by_ref_a ON records (collection, ref_a)",
    "CREATE INDEX records_by_ref_b ON records (collection, ref_b)",
    "CREATE INDEX records_by_schema_id ON records (did, collection, schema_id)",
    "CREATE INDEX records_by_name ON records (did, collection, name)",
    "CREATE INDEX records_search_trgm ON records USING gin (search_f gin_trgm_ops)",
    "CREATE INDEX records_name_tsv ON records USING gin (name_tsv)",
    f"CREATE TABLE record_tags (uri TEXT {_C} NOT NULL, tag TEXT {_C} NOT NULL, PRIMARY KEY (uri, tag))",
    "CREATE INDEX record_tags_by_tag ON record_tags (tag, uri)",
    f"""CREATE TABLE accounts (
        did TEXT {_C} PRIMARY KEY,
        handle TEXT,
        handle_f TEXT {_C},
        active SMALLINT NOT NULL DEFAULT 1,
        rev TEXT {_C},
        updated_at TEXT {_C} NOT NULL
    )""",
    "CREATE INDEX accounts_by_handle ON accounts (handle_f)",
    f"CREATE TABLE cursors (source TEXT {_C} PRIMARY KEY, seq BIGINT NOT NULL, updated_at TEXT NOT NULL)",
    f"""CREATE TABLE quarantine (
        uri TEXT {_C} PRIMARY KEY,
        source TEXT NOT NULL,
        seq BIGINT,
        reason TEXT NOT NULL,
        raw BYTEA,
        at TEXT {_C} NOT NULL
    )""",
    "CREATE INDEX quarantine_by_time ON quarantine (at)",
    f"CREATE TABLE stats (metric TEXT {_C} PRIMARY KEY, value BIGINT NOT NULL)",
]

_V2 = [
    f"""CREATE TABLE changes (
        seq BIGSERIAL PRIMARY KEY,
        action TEXT NOT NULL,
        uri TEXT {_C} NOT NULL,
        did TEXT {_C} NOT NULL,
        collection TEXT {_C} NOT NULL,
        rkey TEXT {_C} NOT NULL,
        cid TEXT,
        value TEXT,
        at TEXT NOT NULL
    )""",
]

_V3 = ["ALTER TABLE accounts ADD COLUMN data TEXT"]

# Each tag row carries its record's time, so that a listing by tag reads the tag's rows newest
# first from one index and stops when the page is full.
_V4 = [
    f"ALTER TABLE record_tags ADD COLUMN sort_time TEXT {_C} NOT NULL DEFAULT ''",
    "UPDATE record_tags SET sort_time = records.sort_time FROM records WHERE records.uri = record_tags.uri",
    "CREATE INDEX record_tags_by_tag_time ON record_tags (tag, sort_time DESC, uri DESC)",
    "DROP INDEX record_tags_by_tag",
]

# Text search through the words of each record's searchable text. A word of a search occurs in
# the text exactly when it occurs within one of the text's words (a search's words hold no white
# space), so the trigram index is on the distinct words of every record (search_words, about 3 %
# of the rows the records' own text had), and each record keeps the hashes of its words in an
# array (record_words, GIN-indexed): the records holding a matching word are looked up, instead of
# every record whose text holds the word's trigrams somewhere (thousands for a word of common
# trigrams, each read and tested). Hashes keep index entries small whatever a word's length; a
# hash shared by two words only brings a candidate more, since the search still tests the text.
# Statement triggers keep both tables, whatever writes records. A word stays in search_words
# when its last record goes (it then matches no record).
_WORDS_OF = r"ARRAY(SELECT DISTINCT word FROM regexp_split_to_table({text}, '[ \t\n\r\f\v]+') AS word WHERE word <> '')"
_HASHES_OF = "ARRAY(SELECT DISTINCT hashtextextended(word, 0) FROM unnest({words}) AS word)"
_NEW_WORDS = (
    "INSERT INTO search_words (word, hash) SELECT DISTINCT fresh.word, hashtextextended(fresh.word, 0) "
    "FROM {rows}, unnest({rows}.words) AS fresh (word) "
    "WHERE NOT EXISTS (SELECT 1 FROM search_words WHERE search_words.word = fresh.word)"
)
_V5 = [
    f"CREATE TABLE search_words (word TEXT {_C} NOT NULL, hash BIGINT NOT NULL)",
    "CREATE TABLE record_words (id BIGINT PRIMARY KEY, words BIGINT[] NOT NULL)",
    "INSERT INTO search_words (word, hash) SELECT DISTINCT word, hashtextextended(word, 0) "
    f"FROM records, unnest({_WORDS_OF.format(text='records.search_f')}) AS word",
    f"INSERT INTO record_words (id, words) SELECT id, {_HASHES_OF.format(words=_WORDS_OF.format(text='search_f'))} "
    "FROM records",
    "CREATE INDEX search_words_by_word ON search_words USING hash (word)",
    "CREATE INDEX search_words_trgm ON search_words USING gin (word gin_trgm_ops)",
    "CREATE INDEX record_words_gin ON record_words USING gin (words)",
    "DROP INDEX records_search_trgm",
    f"""CREATE FUNCTION record_words_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        WITH texts AS (SELECT id, {_WORDS_OF.format(text='search_f')} AS words FROM inserted),
             added AS ({_NEW_WORDS.format(rows='texts')})
        INSERT INTO record_words (id, words) SELECT id, {_HASHES_OF.format(words='words')} FROM texts;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION record_words_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        WITH texts AS (
                SELECT updated.id, {_WORDS_OF.format(text='updated.search_f')} AS words
                FROM updated JOIN earlier ON earlier.id = updated.id WHERE earlier.search_f <> updated.search_f),
             added AS ({_NEW_WORDS.format(rows='texts')})
        UPDATE record_words SET words = {_HASHES_OF.format(words='texts.words')} FROM texts
            WHERE record_words.id = texts.id;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION record_words_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM record_words WHERE id IN (SELECT id FROM deleted);
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER records_words_insert AFTER INSERT ON records REFERENCING NEW TABLE AS inserted "
    "FOR EACH STATEMENT EXECUTE FUNCTION record_words_inserted()",
    "CREATE TRIGGER records_words_update AFTER UPDATE ON records REFERENCING OLD TABLE AS earlier NEW TABLE AS updated "
    "FOR EACH STATEMENT EXECUTE FUNCTION record_words_updated()",
    "CREATE TRIGGER records_words_delete AFTER DELETE ON records REFERENCING OLD TABLE AS deleted "
    "FOR EACH STATEMENT EXECUTE FUNCTION record_words_deleted()",
]

# The insert trigger looks up each word of the new records among the known words (NOT EXISTS,
# an anti-join). Once search_words has statistics (autovacuum analyzes it as it grows), a
# transaction of 100 records or more was planned as a hash anti-join reading and hashing every
# known word (105,000 at 100,000 entries: 22 ms of server CPU for 100 records, against 6 probing
# the words' hash index for each of their 2,000 words; 42 against 36 for 500): the trigger's
# function never hashes nor merges, whatever the statistics (for 2,000 records too: the look-up
# of their 40,000 words took 31-64 ms probing, 53-69 hashing). A GIN index keeps new entries in a pending list that
# every search through it reads whole, until the list outgrows gin_pending_list_limit (4 MB by
# default) or (auto)vacuum merges it: right after ingesting 100,000 entries, 330-350 pages of
# each words index, 8-9 ms of each search's candidates' look-up, against 1 ms merged. 1 MB keeps
# that to a quarter; the writes merging it more often cost no server CPU measurable here.
_V6 = [
    "ALTER FUNCTION record_words_inserted() SET enable_hashjoin = off",
    "ALTER FUNCTION record_words_inserted() SET enable_mergejoin = off",
    "ALTER INDEX record_words_gin SET (gin_pending_list_limit = 1024)",
    "ALTER INDEX search_words_trgm SET (gin_pending_list_limit = 1024)",
]

# The look-ups by schema id and by name serve schemas and labels only (schema_candidates,
# label_candidates), yet every record had an entry in both B-trees, keyed by its account at random:
# two more indexes each new entry (98 % of the records) wrote a page of. Each is now partial, on the
# collection its look-up names (as the SQLite store's migration 6). A look-up planned for its values
# reads the partial index; a generic plan (psycopg prepares a statement run often, and the server
# may then plan it once for any values) cannot, the collection being a parameter, and reads the
# account's records of the collection through records_by_repo (did, collection, ...): an index
# either way, with or without statistics (EXPLAIN at 52,000 records).
_SCHEMA, _LABEL = "'science.alt.dataset.schema'", "'science.alt.dataset.label'"
_V7 = [
    "DROP INDEX records_by_schema_id",
    "DROP INDEX records_by_name",
    f"CREATE INDEX records_by_schema_id ON records (did, schema_id) WHERE collection = {_SCHEMA}",
    f"CREATE INDEX records_by_schema_name ON records (did, name) WHERE collection = {_SCHEMA}",
    f"CREATE INDEX records_by_label_name ON records (did, name) WHERE collection = {_LABEL}",
]

#: Versioned migrations: (version, name, statements). Append; never edit one that shipped.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "records, tags, trigram and full-text indexes, accounts, cursors, quarantine, stats", _V1),
    (2, "changes: what subscribeChanges streams", _V2),
    (3, "accounts.data: the tree root of the last commit indexed (Sync 1.1 prevData checks)", _V3),
    (4, "record_tags.sort_time: a tag's records listed newest first from its own index", _V4),
    (5, "search_words, record_words: text search through each record's words, kept by triggers", _V5),
    (6, "the words' insert trigger probes the words' index whatever the statistics; short GIN pending lists", _V6),
    (7, "the look-ups by schema id and by name indexed for schemas and labels only", _V7),
]

# An arbitrary constant: the advisory lock that keeps two processes from migrating at once.
_MIGRATION_LOCK = 0x61746461  # "atda"

#: The white space that separates the words of search_words (the split of _WORDS_OF).
_SPACE = re.compile("[ \t\n\r\f\v]+")

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")

#: The rows of a tag gathered into an array: the planner then starts from them (with ``uri IN``
#: it may walk the time index, testing each row, expecting the tag's rows to come early).
_TAG_ROWS_FIRST = "uri = ANY(ARRAY(SELECT uri FROM record_tags WHERE tag = ?))"
#: A search whose words' candidates are at most this many names them by id (see _text_filter).
_CANDIDATES_NAMED = 10_000
#: How many of the newest entries are read to tell how common the words of a search are.
_SAMPLED = 2000


def _like_pattern(word: str) -> str:
    """``%word%`` with ``\\``, ``%`` and ``_`` escaped: the user's text is never a wildcard."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return _PASSWORD.sub(r"\1***@", url)


class PostgresStore(SqlStore):
    """The AppView's index in a PostgreSQL database (``postgresql://user:password@host:port/database``)."""

    dialect = "postgresql"
    migrations = MIGRATIONS
    _placeholder = "%s"
    _instr = "strpos"
    # psycopg costs tens of microseconds of Python per statement, and a record took seven or eight
    # (the row, its tags, its change, the quarantine, the account): new records are copied in
    # (COPY), a table at a time, which costs a few microseconds a row.
    _bulk_writes = True

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0):
        self.url = url
        self._connect_timeout = connect_timeout
        self._writer: ThreadPoolExecutor | None = None
        self._writer_lock = threading.Lock()
        super().__init__(self._connect, pool_size=pool_size)

    def __repr__(self) -> str:
        return f"PostgresStore({redact(self.url)!r})"

    def _among(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        # One array parameter: the statement's text is the same however many values there are, so
        # psycopg parses it once (parsing a statement of 500 placeholders each time cost about
        # 12 microseconds a record written).
        return f"{column} = ANY(?)", [list(values)]

    def start_apply_many(self, batches: Sequence[CommitBatch]) -> Future:
        """:meth:`apply_many` on a thread of the store's own; the future's result is None, or the
        error apply_many would have raised. For a consumer that goes on while the server writes:
        the rows are made on the calling thread, and only the statements are sent and waited for
        there (the server does half the work of ingesting a record). One transaction at a time;
        the next waits for the last."""
        made = self._make(batches)
        with self._writer_lock:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="appview-store-writer")
            return self._writer.submit(self._apply_made, batches, made)

    def close(self) -> None:
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)
        super().close()

    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))
            # Queries here read a page: starting parallel workers costs more than it saves, most on a busy machine.
            conn.execute("SET max_parallel_workers_per_gather = 0")
            return conn
        except psycopg.Error as err:
            raise StoreError(f"cannot connect to the AppView store {redact(self.url)}: {err}") from err

    def _is_broken(self, conn: Any) -> bool:
        return bool(conn.closed or getattr(conn, "broken", False))

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[None]:
        with conn.transaction():
            yield

    def _write_bulk(self, db: _Db, bulk: _Bulk) -> None:
        cursor = db.conn.cursor()
        if bulk.unquarantined:
            cursor.execute("DELETE FROM quarantine WHERE uri = ANY(%s)", (bulk.unquarantined,))
        if bulk.records:
            with cursor.copy(f"COPY records ({self._RECORD_COLUMNS}) FROM STDIN") as copy:
                for row in bulk.records:
                    copy.write_row(row)
        if bulk.tags:
            with cursor.copy("COPY record_tags (uri, tag, sort_time) FROM STDIN") as copy:
                for row in bulk.tags:
                    copy.write_row(row)
        if bulk.changes:
            # In order: the log's sequence numbers are drawn row by row as they are copied.
            with cursor.copy("COPY changes (action, uri, did, collection, rkey, cid, value, at) FROM STDIN") as copy:
                for row in bulk.changes:
                    copy.write_row(row)
        if bulk.accounts:
            dids = list(bulk.accounts)
            revs, datas, times = zip(*bulk.accounts.values())
            cursor.execute(
                "INSERT INTO accounts (did, active, rev, data, updated_at) "
                "SELECT did, 1, rev, data, updated_at FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) "
                "AS gathered (did, rev, data, updated_at) "
                "ON CONFLICT (did) DO UPDATE SET rev = excluded.rev, data = excluded.data, updated_at = excluded.updated_at",
                (dids, list(revs), list(datas), list(times)),
            )

    # A store just filled has no statistics until autovacuum analyzes its tables (a minute or more
    # later, the longer the busier the server): the planner then takes each equality for one row in
    # 200, expects `collection = ? AND visible = 1` to keep a handful of the records, and sorts
    # them rather than walk the time index, reading every record (a tag listing or a search's
    # sample of the newest entries: 23,000 pages at 100,000 entries); it reads the words table
    # whole rather than through its trigram index. The statements of a search or a listing are
    # run in a transaction that forbids those plans where they are never right (_planner).
    _tag_lateral = True

    @contextmanager
    def _search_read(self) -> Iterator[_Db]:
        with self._read() as db, ExitStack() as scope:
            db.settings = (scope, {})
            yield db

    def _planner(self, db: _Db, **enabled: bool) -> None:
        if db.settings is None:
            return
        scope, current = db.settings
        changed = {name: on for name, on in enabled.items() if current.get(name, True) != on}
        if not changed:
            return
        if not current:
            # SET LOCAL lasts until the transaction ends: the read's own, begun with the first setting.
            scope.enter_context(self._transaction(db.conn))
        values: list[Any] = []
        for name, on in changed.items():
            values.extend([f"enable_{name}", "on" if on else "off"])
        db.one("SELECT " + ", ".join("set_config(?, ?, true)" for _ in changed), values)
        current.update(changed)

    def _lock_migrations(self, db: _Db) -> None:
        db.run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _plan(self, db: _Db, *, text: bool = False, tags: Sequence[str] = ()) -> tuple[str, dict[str, str]]:
        # The planner's statistics tell how many rows a tag has, not where they fall in time: for a
        # rare tag it may walk the time index expecting the tag's rows early. Start from its rows.
        tag_tests = {tag: _TAG_IN for tag in tags}
        if text:
            # The records of a text search come from its words: the collection is tested on each,
            # never looked up in an index (without statistics the planner takes it for one record
            # in 200 and reads a collection's 100,000 entries of records_by_ref_b, to AND with
            # the candidates' ids or instead of them: 8-10 ms and more, against 0.3 for the ids).
            return "(collection = ?) IS TRUE", tag_tests
        rarest = self._rarest_tag(db, tags)
        if rarest is not None:
            tag_tests[rarest] = _TAG_ROWS_FIRST
        return "collection = ?", tag_tests

    def _matches_over(self, db: _Db, words: Sequence[str], n: int) -> bool:
        # Counting through the trigram index reads and tests every candidate row (many for a common
        # word, and for a word of few distinct trigrams); the newest entries are a sample that the
        # time index reads cheaply, scaled to the table's size (its largest id: no statistics needed).
        clause, values = self._text_test(words)
        self._planner(db, sort=False)  # the newest entries from the time index, never all of them sorted
        row = db.one(
            "SELECT (SELECT COUNT(*) FROM (SELECT search_f FROM records WHERE collection = ? AND visible = 1 "
            f"ORDER BY sort_time DESC, uri DESC LIMIT ?) AS newest WHERE {clause}), (SELECT MAX(id) FROM records)",
            [ENTRY_NSID, _SAMPLED, *values],
        )
        if not row or not row[0]:
            return False
        return row[0] * max(1.0, (row[1] or 0) / _SAMPLED) > n

    def _text_filter(self, words: Sequence[str], db: _Db | None = None) -> tuple[str, list[Any]]:
        # The records holding a word that holds each search word (LIKE on the trigram-indexed words,
        # for words of 3+ characters), then the text itself tested. Text with white space (a listing's
        # phrase) is looked up by its pieces between white space, each of which lies within one word.
        pieces = list(dict.fromkeys(piece for word in words for piece in _SPACE.split(word) if piece))
        test, values = self._text_test(words)
        if not pieces:
            return test, values
        holds = " AND ".join(
            "words && ARRAY(SELECT hash FROM search_words WHERE word LIKE ? ESCAPE '\\')" for _ in pieces
        )
        patterns = [_like_pattern(piece) for piece in pieces]
        if db is not None:
            # A search's candidates are fetched first and named by id: the plan of the search then
            # does not hang on statistics of the words' tables (a store just filled has none, and
            # the planner may choose to read every record). The words are found through their
            # trigram index, never by reading the words' table whole (its plan without statistics).
            self._planner(db, sort=True, seqscan=False)
            rows = db.all(f"SELECT id FROM record_words WHERE {holds} LIMIT ?", [*patterns, _CANDIDATES_NAMED + 1])
            if len(rows) <= _CANDIDATES_NAMED:
                return f"id = ANY(?::bigint[]) AND {test}", [[row[0] for row in rows], *values]
        return f"id IN (SELECT id FROM record_words WHERE {holds}) AND {test}", [*patterns, *values]

    def _name_word_test(self, word: str) -> tuple[str, list[Any]]:
        # Full-text: the word (letters, digits and _ only; checked by the caller) as a lexeme of the name.
        return "name_tsv @@ to_tsquery('simple'::regconfig, ?)", [f"'{word}'"]

