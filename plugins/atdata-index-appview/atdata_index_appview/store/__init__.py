"""Where the AppView keeps its index: SQLite (embedded, the default) or PostgreSQL.

A store is chosen by URL (``[appview] store``)::

    open_store("sqlite:///appview.db")                 # relative to the current folder
    open_store("sqlite:////var/lib/appview/index.db")  # absolute
    open_store("/var/lib/appview/index.db")            # a plain path is a SQLite file too
    open_store("postgresql://appview:secret@db.internal:5432/appview")

Both stores are :class:`~atdata_index_appview.store._sql.SqlStore`\\ s: the
write side ingestion uses (:class:`~atdata_index_appview.ingest.IngestStore`:
``apply`` writes a commit's operations, the repository's revision and the
firehose cursor in one transaction) and the reads the XRPC API makes. Each
brings its schema up to date with versioned migrations when opened. Records
are kept as published (the DAG-CBOR block and its JSON form) and served as
they were stored, byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from atdata_index_appview.store._model import (
    MAX_WORDS,
    Page,
    PageKey,
    StoredRecord,
    decode_cursor,
    encode_cursor,
    fold,
    normalize_time,
    search_words,
)
from atdata_index_appview.store._sql import Change, SqlStore, StoreError

__all__ = [
    "Change",
    "MAX_WORDS",
    "Page",
    "PageKey",
    "SqlStore",
    "StoreError",
    "StoredRecord",
    "decode_cursor",
    "encode_cursor",
    "fold",
    "normalize_time",
    "open_store",
    "parse_store_url",
    "search_words",
]


def parse_store_url(url: str) -> tuple[str, str]:
    """``("sqlite", path)`` or ``("postgresql", url)`` for a store URL; ``ValueError`` saying what is accepted."""
    text = url.strip()
    if not text:
        raise ValueError("the store URL is empty")
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(text)
        if not parts.hostname and "host=" not in (parts.query or ""):
            raise ValueError(f"a PostgreSQL store URL names a host: postgresql://user:password@host:port/database, not {text!r}")
        return "postgresql", text
    if scheme == "sqlite":
        rest = text[len("sqlite://"):]
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"a SQLite store URL is sqlite:///relative/path.db or sqlite:////absolute/path.db, not {text!r}")
        path = unquote(rest[1:])
        if not path:
            raise ValueError(f"the SQLite store URL {text!r} names no file")
        return "sqlite", path
    if scheme:
        raise ValueError(
            f"unknown store {text!r}: use sqlite:///path.db (or a plain path) or postgresql://user@host/database"
        )
    return "sqlite", text


def open_store(url: str, *, pool_size: int = 8) -> SqlStore:
    """The store a URL names, opened and migrated to the current schema version.

    Raises :class:`StoreError` when it cannot be opened (or is newer than this
    version of the plugin), ``ValueError`` for a malformed URL.
    """
    kind, target = parse_store_url(url)
    if kind == "postgresql":
        from atdata_index_appview.store.postgres import PostgresStore

        return PostgresStore(target, pool_size=pool_size)
    from atdata_index_appview.store.sqlite import SqliteStore

    return SqliteStore(Path(target).expanduser(), pool_size=pool_size)
