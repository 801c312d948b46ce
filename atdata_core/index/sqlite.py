"""The embedded index: published records kept in one SQLite file, searchable offline.

The default location is ``<config dir>/index.sqlite`` (config ``[index]
sqlite_path`` or ``ATDATA_INDEX_SQLITE_PATH`` to change it)::

    index = SqliteIndex("catalog.sqlite")
    index.put_record("at://did:plc:abc/science.alt.dataset.entry/3kabc", record)
    index.list_records("science.alt.dataset.entry", query="mnist")
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from atdata_core.errors import RecordNotFound
from atdata_core._aturi import AtUri
from atdata_core._bytes import decode_bytes, encode_bytes, is_bytes_object
from atdata_core._nsids import LABEL_NSID, SCHEMA_NSID
from atdata_core.index._select import search_records, select_label, select_schema
from atdata_core.plugins import IndexedRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    uri        TEXT PRIMARY KEY,
    did        TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey       TEXT NOT NULL,
    cid        TEXT,
    created_at TEXT,
    value      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_collection ON records (collection, did, created_at);
"""


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return encode_bytes(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a record")


def _decode_bytes(value: Any) -> Any:
    if isinstance(value, dict):
        data = decode_bytes(value) if is_bytes_object(value) else None
        if data is not None:
            return data
        return {k: _decode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_bytes(v) for v in value]
    return value


def default_path() -> Path:
    from atdata_core.plugins import get_config

    configured = get_config().get("index.sqlite_path")
    if configured:
        return Path(os.path.expanduser(str(configured)))
    from atdata_core.config import config_dir

    return config_dir() / "index.sqlite"


class SqliteIndex:
    """An :class:`~atdata_core.plugins.IndexProvider` over a local SQLite file (``":memory:"`` works)."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = str(path) if path is not None else str(default_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteIndex({self.path!r})"

    def close(self) -> None:
        self._db.close()

    # -- writing

    def put_record(self, uri: str, value: Mapping[str, Any], cid: str | None = None) -> None:
        """Insert or replace the record at ``uri``."""
        parsed = AtUri.parse(uri)
        did, collection, rkey = parsed.authority, parsed.collection, parsed.rkey
        text = json.dumps(dict(value), default=_json_default, separators=(",", ":"))
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uri, did, collection, rkey, cid, value.get("createdAt"), text),
            )

    def delete_record(self, uri: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM records WHERE uri = ?", (uri,))

    # -- the IndexProvider contract

    def get_record(self, uri: str) -> IndexedRecord:
        AtUri.parse(uri)
        with self._lock:
            row = self._db.execute("SELECT uri, cid, value FROM records WHERE uri = ?", (uri,)).fetchone()
        if row is None:
            raise RecordNotFound(f"no record at {uri} in the local index {self.path}")
        return self._record(row)

    def list_records(
        self,
        collection: str,
        *,
        repo: str | None = None,
        query: str | None = None,
        tags: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[IndexedRecord]:
        return search_records(self._rows(collection, repo), query=query, tags=tags, limit=limit)

    def resolve_schema(self, repo: str, schema_id: str, version: str | None = None) -> IndexedRecord:
        return select_schema(self._rows(SCHEMA_NSID, repo), repo, schema_id, version)

    def resolve_label(self, repo: str, name: str, version: str | None = None) -> IndexedRecord:
        return select_label(self._rows(LABEL_NSID, repo), repo, name, version)

    def resolve_repo(self, handle_or_did: str) -> str:
        """The DID of an account: a DID as it is, a handle through the network (this index keys by DID)."""
        text = handle_or_did.strip().lstrip("@")
        if text.startswith("did:"):
            return text
        from atdata_core.atproto import resolve_identity

        return resolve_identity(text).did

    # -- internals

    def _rows(self, collection: str, repo: str | None) -> Iterable[IndexedRecord]:
        sql = "SELECT uri, cid, value FROM records WHERE collection = ?"
        args: list[Any] = [collection]
        if repo is not None:
            sql += " AND did = ?"
            args.append(repo)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [self._record(row) for row in rows]

    @staticmethod
    def _record(row: tuple[str, str | None, str]) -> IndexedRecord:
        return IndexedRecord(uri=row[0], value=_decode_bytes(json.loads(row[2])), cid=row[1])
