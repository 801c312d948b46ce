"""Deleting a dataset published as blobs: its entry, and the blobs nothing else needs.

A PDS deletes a blob once no record of the repository references it. A
published dataset's blobs are referenced by its entry and by the
``shardBlob`` records that placed them, so deleting the dataset deletes the
entry and, in the same ``applyWrites`` call, the placements of every blob no
other dataset entry lists. Blobs another entry lists stay, with their
placements; blobs some other record references stay too (the PDS keeps them).

Labels that point at the deleted entry are left as they are: they are yours
to delete or to point elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from atdata_core.errors import AuthError, RecordError
from atdata_core.plugins import ENTRY_NSID, STORAGE_BLOBS_NSID, AtUri

from atdata_storage_blob import SHARD_BLOB_NSID

__all__ = ["DatasetDeletion", "delete_dataset"]


@attrs.frozen
class DatasetDeletion:
    """What :func:`delete_dataset` did: the entry deleted, and which of its blobs are gone or kept.

    ``removed``: CIDs of the entry's blobs the PDS no longer holds.
    ``kept``: CIDs of its blobs still referenced (by another entry or another record).
    """

    entry: str
    removed: tuple[str, ...]
    kept: tuple[str, ...]


def delete_dataset(client: Any, entry_uri: str) -> DatasetDeletion:
    """Delete one of your dataset entries and the blobs no other record references.

    ``client`` is logged in to the repository holding the entry; the entry
    is the ``at://`` URI :func:`~atdata_core.publish.publish_dataset` returned.

    >>> delete_dataset(client, "at://did:plc:.../science.alt.dataset.entry/3k...")  # doctest: +SKIP
    DatasetDeletion(entry='at://...', removed=('bafkrei...', ...), kept=())
    """
    did = getattr(client, "did", None)
    if not did:
        raise AuthError("deleting a dataset needs a logged-in client of the repository holding it")
    uri = AtUri.parse(entry_uri)
    if uri.collection != ENTRY_NSID:
        raise RecordError(f"{entry_uri} is not a dataset entry ({ENTRY_NSID})")
    if uri.authority not in (did, getattr(client, "handle", None)):
        raise AuthError(f"{entry_uri} is in the repository of {uri.authority}; this client can delete only {did}'s")
    entry = client.get_record(did, ENTRY_NSID, uri.rkey)
    blobs = list(dict.fromkeys(_entry_blobs(entry.get("value"))))

    used_elsewhere: set[str] = set()
    for item in client.list_records(did, ENTRY_NSID):
        if str(item.get("uri", "")).rsplit("/", 1)[-1] != uri.rkey:
            used_elsewhere.update(_entry_blobs(item.get("value")))
    dropping = {cid for cid in blobs if cid not in used_elsewhere}

    writes = [{"action": "delete", "collection": ENTRY_NSID, "rkey": uri.rkey}]
    for item in client.list_records(did, SHARD_BLOB_NSID):
        value = item.get("value")
        blob = value.get("blob") if isinstance(value, Mapping) else None
        if _blob_cid(blob) in dropping:
            writes.append({"action": "delete", "collection": SHARD_BLOB_NSID, "rkey": str(item["uri"]).rsplit("/", 1)[-1]})
    # One call for up to 200 deletes, the entry among them: readers never see the entry without its blobs.
    client.apply_writes(writes)

    remaining = set(_repo_blobs(client, did)) if blobs else set()
    return DatasetDeletion(
        entry=str(AtUri.record(did, ENTRY_NSID, uri.rkey)),
        removed=tuple(cid for cid in blobs if cid not in remaining),
        kept=tuple(cid for cid in blobs if cid in remaining),
    )


def _entry_blobs(value: Any) -> list[str]:
    """The blob CIDs a dataset entry's ``storageBlobs`` member lists (none for other storage)."""
    storage = value.get("storage") if isinstance(value, Mapping) else None
    if not isinstance(storage, Mapping):
        return []
    if str(storage.get("$type", "")).removesuffix("#main") != STORAGE_BLOBS_NSID:
        return []
    items = storage.get("blobs")
    found = []
    for item in items if isinstance(items, list) else []:
        cid = _blob_cid(item.get("blob") if isinstance(item, Mapping) else None)
        if cid:
            found.append(cid)
    return found


def _blob_cid(blob: Any) -> str | None:
    if not isinstance(blob, Mapping):
        return None
    ref = blob.get("ref")
    cid = ref.get("$link") if isinstance(ref, Mapping) else blob.get("cid")
    return cid if isinstance(cid, str) else None


def _repo_blobs(client: Any, did: str) -> Iterator[str]:
    """Every blob CID the repository holds (``com.atproto.sync.listBlobs``, page by page)."""
    cursor = None
    while True:
        page = client.call("com.atproto.sync.listBlobs", params={"did": did, "limit": 1000, "cursor": cursor}).json()
        cids = page.get("cids") or []
        yield from (cid for cid in cids if isinstance(cid, str))
        cursor = page.get("cursor")
        if not cursor or not cids:
            return
