"""Ingestion: the firehose consumer, backfill and the verification they share.

:func:`run_ingest` follows the firehoses of PDSes and relays into an
:class:`IngestStore`; :func:`backfill` reads whole repositories into it. Both
verify what they index: every CAR block against its CID, every commit's
signature against the account's key from its DID document, every operation
against the signed tree; records are validated tolerantly and the invalid
ones quarantined. See ``_ingestor`` for the rules.
"""

from atdata_index_appview.ingest._identities import Identities
from atdata_index_appview.ingest._ingestor import Ingestor, StoreFailed
from atdata_index_appview.ingest._interface import CommitBatch, IngestStore, RecordOp
from atdata_index_appview.ingest._memory import MemoryIngestStore, StoredRecord
from atdata_index_appview.ingest._service import backfill, firehose_client, run_ingest
from atdata_index_appview.ingest._settings import IngestSettings
from atdata_index_appview.ingest._status import IngestStatus, SourceStatus

__all__ = [
    "CommitBatch",
    "Identities",
    "IngestSettings",
    "IngestStatus",
    "IngestStore",
    "Ingestor",
    "MemoryIngestStore",
    "RecordOp",
    "SourceStatus",
    "StoreFailed",
    "StoredRecord",
    "backfill",
    "firehose_client",
    "run_ingest",
]
