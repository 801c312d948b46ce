"""Ingestion: the firehose consumer, backfill and the verification they share."""

from atdata_index_appview.ingest._interface import CommitBatch, IngestStore, RecordOp

__all__ = ["CommitBatch", "IngestStore", "RecordOp"]
