"""What ingestion hands the store: the write side of the AppView's index.

The firehose consumer and backfill decode, verify and validate; the store
only writes. One :class:`CommitBatch` is one verified commit of one repository
(or one verified snapshot of it, from ``getRepo``), reduced to its
``science.alt.dataset.*`` operations. The store applies it in one transaction
together with the repository's revision and the firehose cursor, so that
killing the service at any moment loses and duplicates nothing.

Ingestion calls the store from one thread only (the one running
:func:`~atdata_index_appview.ingest.run_ingest` or ``backfill``); the API may
read it from others at the same time. The SQLite and PostgreSQL stores
implement :class:`IngestStore`; ``MemoryIngestStore`` in this package is the
in-memory one the ingestion tests use.

Rules the store relies on (ingestion keeps them, the store need not check):

- batches of one repository arrive in increasing ``rev``; a batch whose rev is
  not above :meth:`IngestStore.repo_rev` is never applied;
- a ``create`` or ``update`` is an upsert of ``uri`` (a replayed create is an
  update of the same bytes), a ``delete`` of a URI the store lacks is a no-op;
- ``snapshot=True``: ``ops`` are every indexed record of the repository at
  ``rev`` (all ``create``); every other record of ``did`` is deleted;
- ``ops`` may be empty: the batch then only moves the repository's rev and the
  cursor.

A store may also offer ``apply_many(batches)``: the batches applied in order
in one transaction (all or none). Ingestion uses it when events arrive faster
than one transaction each can be written, and :meth:`IngestStore.apply` otherwise.
A store whose writes are mostly a database server's work may offer
``start_apply_many(batches)``, the same on a thread of its own, returning a
``concurrent.futures.Future``: ingestion then checks the next events while
the server writes, and waits for the run before any other store call. And
``set_handles({did: handle})``: :meth:`IngestStore.set_handle` of each, in
order, in one transaction (the handles of the new accounts of a run).
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
    warnings: tuple[str, ...] = ()  # deviations the tolerant validator accepted (DESIGN D6), one line each


@attrs.frozen
class CommitBatch:
    """The indexed operations of one commit; applying it moves the cursor of ``source`` to ``seq``."""

    source: str  # the subscribed host URL (cursor key); for backfill, the host the repo came from
    seq: int | None  # firehose sequence number (cursor value after this batch); None: backfill, cursor untouched
    did: str
    rev: str  # repo revision (TID); ops apply in rev order per repo
    ops: tuple[RecordOp, ...]
    snapshot: bool = False  # True: ops are the repo's whole indexed content; delete the rest of did's records
    data: str | None = None  # the CID of the repo's tree root at ``rev`` (the commit's ``data``), when known


@runtime_checkable
class IngestStore(Protocol):
    """The store's write side, as ingestion uses it."""

    def apply(self, batch: CommitBatch) -> None:
        """In ONE transaction: write ``batch.ops``, set the repo's rev to ``batch.rev``, set the cursor
        (when ``batch.seq`` is not None)."""

    def quarantine(self, source: str, seq: int | None, uri: str, reason: str, raw: bytes | None) -> None:
        """Keep a record that did not validate aside with the reason (an upsert by ``uri``, the newest
        reason winning); also advances the cursor of ``source`` to ``seq`` when it is not None."""

    def advance(self, source: str, seq: int) -> None:
        """Move the cursor of ``source`` to ``seq``: events up to it held nothing to index."""

    def cursor(self, source: str) -> int | None:
        """The last firehose sequence number applied from ``source``, None before the first."""

    def repo_rev(self, did: str) -> str | None:
        """The revision of the last batch applied for ``did``, None if none was."""

    def repo_state(self, did: str) -> tuple[str | None, str | None]:
        """``(rev, data)`` of the last batch applied for ``did``: its revision and its tree root's
        CID (``batch.data``; None when that batch did not say), ``(None, None)`` if none was."""

    def set_handle(self, did: str, handle: str | None) -> None:
        """Record the account's current handle (None: it has none that verifies)."""

    def set_account_active(self, did: str, active: bool) -> None:
        """Hide (False) or show again (True) every record of the account."""

    def count(self, metric: str, n: int = 1) -> None:
        """Add ``n`` to a statistic: records_indexed, quarantined, bad_signature, bad_block, undecodable..."""
