"""atdata-storage-blob: dataset shards as blobs of your own PDS repository.

A PDS account is all you need to publish: each tar shard is uploaded as a blob
of your repository, and the dataset entry lists the blobs
(``science.alt.dataset.storageBlobs``). Readers stream them from your PDS and
check each against its CID (the CID is the blob's sha256).

URLs, scheme ``atblob``:

``atblob://<did>/<cid>``
    one blob of a repository, by its CID: what a loaded entry's shards are.
``atblob://<did>/<path>``
    a shard placed under a path (``mnist/data-000000.tar``) by ``put``: a
    ``science.alt.dataset.shardBlob`` record in the repository names the blob
    and keeps it referenced, so it can be listed, globbed, replaced and
    deleted like a file.

Publishing local shards::

    atdata publish dataset mnist "shards/*.tar" --schema at://... --storage blob

    from atdata_core.publish import publish_dataset
    publish_dataset(client, "mnist", writer.shards, schema=schema, storage="blob")

Removing a dataset and the blobs nothing else references:
:func:`delete_dataset`. This module holds the hook implementations only and
stays cheap to import; the backend loads when first used.
"""

from __future__ import annotations

from typing import Any

from atdata_core.plugins import STORAGE_BLOBS_NSID, StorageBackendSpec, hookimpl

from atdata_storage_blob.settings import BlobSettings

__all__ = ["SCHEME", "SHARD_BLOB_NSID", "BlobSettings", "delete_dataset"]

#: The URL scheme of blob storage.
SCHEME = "atblob"
#: The record that places a blob under a path (this plugin's lexicon; ships in the package).
SHARD_BLOB_NSID = "science.alt.dataset.shardBlob"


@hookimpl
def atdata_storage_backends() -> list[StorageBackendSpec]:
    return [
        StorageBackendSpec(
            name="blob",
            schemes=(SCHEME,),
            record_types=(STORAGE_BLOBS_NSID,),
            factory="atdata_storage_blob.storage:BlobStorage",
            settings=BlobSettings,
            section="blob",
            description="shards as blobs of your own PDS repository (storageBlobs records)",
        )
    ]


def delete_dataset(client: Any, entry_uri: str) -> Any:
    """Delete one of your dataset entries and the blobs no other record references; a
    :class:`~atdata_storage_blob.deletion.DatasetDeletion` says which blobs went. See
    :mod:`atdata_storage_blob.deletion`."""
    from atdata_storage_blob.deletion import delete_dataset as delete

    return delete(client, entry_uri)
