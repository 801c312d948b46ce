"""What ingestion hands the store: the write side of the AppView's index.

The firehose consumer and backfill decode, verify and validate; the store
only writes. One :class:`CommitBatch` is one verified commit of one repository,
reduced to its ``science.alt.dataset.*`` operations, and the store applies it
in one transaction together with the repository's revision and the firehose
cursor, so that killing the service at any moment loses and duplicates
nothing. The SQLite and PostgreSQL stores implement :class:`IngestStore`;
:class:`~atdata_index_appview.ingest.MemoryIngestStore` is the in-memory one
tests use.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class RecordOp:
    """One record written or deleted by a commit."""

    action: str  # "create" | "update" | "delete"
    uri: str  # at://did/collection/rkey
    cid: str | None  # the record's CID (None for delete)
    record: dict | None  # the record in JSON form (bytes -> {"$bytes": b64}, links -> {"$link": cid}); None for delete
    raw: bytes | None  # the record's DAG-CBOR block exactly as published; None for delete


@attrs.frozen
class CommitBatch:
    """The indexed operations of one commit; applying it moves the cursor of ``source`` to ``seq``."""

    source: str  # the subscribed host URL (cursor key)
    seq: int  # firehose sequence number (cursor value after this batch)
    did: str
    rev: str  # repo revision (TID); ops apply in rev order per repo
    ops: tuple[RecordOp, ...]


@runtime_checkable
class IngestStore(Protocol):
    """The store's write side, as ingestion uses it."""

    def apply(self, batch: CommitBatch) -> None:
        """In ONE transaction: write ``batch.ops``, set the repo's rev to ``batch.rev``, set the cursor."""

    def quarantine(self, source: str, seq: int, uri: str, reason: str, raw: bytes | None) -> None:
        """Keep a record that did not validate aside with the reason; also advances the cursor."""

    def cursor(self, source: str) -> int | None:
        """The last firehose sequence number applied from ``source``, None before the first."""

    def repo_rev(self, did: str) -> str | None:
        """The revision of the last commit applied for ``did``, None if none was."""

    def set_handle(self, did: str, handle: str | None) -> None:
        """Record the account's current handle (None: it has none that verifies)."""

    def set_account_active(self, did: str, active: bool) -> None:
        """Hide (False) or show again (True) every record of the account."""

    def count(self, metric: str, n: int = 1) -> None:
        """Add ``n`` to a statistic: records_indexed, quarantined, bad_signature, bad_block, undecodable..."""
