"""An :class:`IngestStore` in memory: for tests, and the reference for what a store must do."""

from __future__ import annotations

import threading
from collections import Counter

import attrs

from atdata_index_appview.ingest._interface import CommitBatch

__all__ = ["MemoryIngestStore", "StoredRecord"]


@attrs.frozen
class StoredRecord:
    uri: str
    did: str
    cid: str
    record: dict
    raw: bytes
    rev: str
    warnings: tuple[str, ...] = ()


class MemoryIngestStore:
    """Everything in dicts, behind one lock. ``applied`` logs every op applied, in order, for
    tests that check nothing was applied twice."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, StoredRecord] = {}
        self.quarantined: dict[str, tuple[str, bytes | None]] = {}
        self.cursors: dict[str, int] = {}
        self.revs: dict[str, str] = {}
        self.datas: dict[str, str | None] = {}
        self.handles: dict[str, str | None] = {}
        self.inactive: set[str] = set()
        self.stats: Counter[str] = Counter()
        self.applied: list[tuple[str, str, str | None]] = []

    # --- the write side -----------------------------------------------------------

    def apply(self, batch: CommitBatch) -> None:
        with self.lock:
            if batch.snapshot:
                keep = {op.uri for op in batch.ops}
                for uri in [uri for uri, rec in self.records.items() if rec.did == batch.did and uri not in keep]:
                    del self.records[uri]
                    self.applied.append(("delete", uri, None))
            for op in batch.ops:
                if op.action == "delete":
                    self.records.pop(op.uri, None)
                else:
                    self.records[op.uri] = StoredRecord(
                        uri=op.uri, did=batch.did, cid=op.cid, record=op.record, raw=op.raw, rev=batch.rev,
                        warnings=op.warnings,
                    )
                    self.quarantined.pop(op.uri, None)
                self.applied.append((op.action, op.uri, op.cid))
            self.revs[batch.did] = batch.rev
            self.datas[batch.did] = batch.data
            if batch.seq is not None:
                self.cursors[batch.source] = batch.seq

    def apply_many(self, batches) -> None:
        with self.lock:
            for batch in batches:
                self.apply(batch)

    def quarantine(self, source: str, seq: int | None, uri: str, reason: str, raw: bytes | None) -> None:
        with self.lock:
            self.quarantined[uri] = (reason, raw)
            if seq is not None:
                self.cursors[source] = seq

    def advance(self, source: str, seq: int) -> None:
        with self.lock:
            self.cursors[source] = seq

    def cursor(self, source: str) -> int | None:
        with self.lock:
            return self.cursors.get(source)

    def repo_rev(self, did: str) -> str | None:
        with self.lock:
            return self.revs.get(did)

    def repo_state(self, did: str) -> tuple[str | None, str | None]:
        with self.lock:
            return self.revs.get(did), self.datas.get(did)

    def set_handle(self, did: str, handle: str | None) -> None:
        with self.lock:
            self.handles[did] = handle

    def set_account_active(self, did: str, active: bool) -> None:
        with self.lock:
            (self.inactive.discard if active else self.inactive.add)(did)

    def count(self, metric: str, n: int = 1) -> None:
        with self.lock:
            self.stats[metric] += n

    # --- reading, as the tests do -------------------------------------------------

    def visible(self) -> dict[str, StoredRecord]:
        """The records a reader sees: those of active accounts."""
        with self.lock:
            return {uri: rec for uri, rec in self.records.items() if rec.did not in self.inactive}
