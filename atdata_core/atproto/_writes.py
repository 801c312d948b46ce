"""Batched writes: ``Create``, ``Update``, ``Delete`` and how ``applyWrites`` calls are cut.

``com.atproto.repo.applyWrites`` takes at most 200 writes and a request body
of at most 1,000,000 bytes, so a batch is split by count *and* by size. Every
record is encoded (and validated) before the first call is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from atdata_core.atproto._encoding import dumps, encode_record
from atdata_core.errors import RecordError

__all__ = [
    "MAX_APPLY_WRITES",
    "MAX_REQUEST_BYTES",
    "Create",
    "Delete",
    "Update",
    "WriteResult",
    "split_batches",
    "write_op",
]

#: A PDS refuses a request body larger than this (createRecord, putRecord, applyWrites).
MAX_REQUEST_BYTES = 1_000_000
#: ``com.atproto.repo.applyWrites`` takes at most this many writes per call.
MAX_APPLY_WRITES = 200


@attrs.frozen
class Create:
    """Create a record in a batch (``rkey`` None: the PDS picks a TID)."""

    collection: str
    value: Any
    rkey: str | None = None


@attrs.frozen
class Update:
    """Create or replace the record at ``collection/rkey`` in a batch."""

    collection: str
    rkey: str
    value: Any


@attrs.frozen
class Delete:
    """Delete the record at ``collection/rkey`` in a batch."""

    collection: str
    rkey: str


@attrs.frozen
class WriteResult:
    """What one write of :meth:`Client.apply_writes` did (``uri``/``cid`` None for a delete)."""

    action: str
    uri: str | None = None
    cid: str | None = None


def write_op(write: Create | Update | Delete | Mapping[str, Any], index: int, validate: bool) -> dict[str, Any]:
    """One ``applyWrites`` operation for a write (a dict may say ``action`` or ``$type``), its record encoded."""
    if isinstance(write, Mapping):
        action = write.get("action") or str(write.get("$type", "")).rsplit("#", 1)[-1]
        collection, rkey, value = write.get("collection"), write.get("rkey"), write.get("value")
    elif isinstance(write, Create):
        action, collection, rkey, value = "create", write.collection, write.rkey, write.value
    elif isinstance(write, Update):
        action, collection, rkey, value = "update", write.collection, write.rkey, write.value
    elif isinstance(write, Delete):
        action, collection, rkey, value = "delete", write.collection, write.rkey, None
    else:
        raise RecordError(f"write {index}: expected Create, Update, Delete or a dict, not {type(write).__name__}")
    if action not in ("create", "update", "delete") or not isinstance(collection, str):
        raise RecordError(f"write {index}: needs an action (create, update or delete) and a collection")
    op: dict[str, Any] = {"$type": f"com.atproto.repo.applyWrites#{action}", "collection": collection}
    if rkey is not None:
        op["rkey"] = rkey
    elif action != "create":
        raise RecordError(f"write {index}: an {action} needs an rkey")
    if action != "delete":
        try:
            op["value"] = encode_record(value, collection, validate=validate)
        except RecordError as err:
            err.add_note(f"in write {index} of the batch ({action} in {collection})")
            raise
    return op


def split_batches(ops: Iterable[dict[str, Any]], repo: str) -> list[list[dict[str, Any]]]:
    """Operations cut into ``applyWrites`` calls of at most 200 writes and 1,000,000 bytes each."""
    envelope = len(dumps({"repo": repo, "writes": []}))
    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    size = envelope
    for op in ops:
        encoded = len(dumps(op)) + 1  # and its comma
        if batch and (len(batch) >= MAX_APPLY_WRITES or size + encoded > MAX_REQUEST_BYTES):
            batches.append(batch)
            batch, size = [], envelope
        batch.append(op)
        size += encoded
    if batch:
        batches.append(batch)
    return batches
