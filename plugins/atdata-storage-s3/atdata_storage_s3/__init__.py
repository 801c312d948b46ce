"""atdata-storage-s3: dataset shards in S3 and S3-compatible object stores.

This is the module the plugin's entry point names, so atdata imports it at
discovery: it only describes the backend. The implementation (and boto3) is
imported the first time an ``s3://`` URL or a ``storageS3`` record is used.

- URLs: ``s3://bucket/key`` (the bucket as your ``[s3]`` configuration says,
  else AWS S3) and ``s3+https://host[:port]/bucket/key`` (a named endpoint).
- Records: ``science.alt.dataset.storageS3`` (``bucket``, ``region``,
  ``endpoint``, ``shards[{key, checksum}]``).
- Settings: the ``[s3]`` section, :class:`atdata_storage_s3.settings.S3Settings`.
"""

from __future__ import annotations

from atdata_core.plugins import STORAGE_S3_NSID, StorageBackendSpec, hookimpl

from atdata_storage_s3.settings import S3Settings

__version__ = "0.1.0"
__all__ = ["S3Settings", "atdata_storage_backends"]


@hookimpl
def atdata_storage_backends() -> list[StorageBackendSpec]:
    return [
        StorageBackendSpec(
            name="s3",
            schemes=("s3", "s3+https", "s3+http"),
            record_types=(STORAGE_S3_NSID,),
            factory="atdata_storage_s3.storage:S3Storage",
            settings=S3Settings,
            section="s3",
            description="S3 and S3-compatible object stores (boto3): s3://bucket/key, storageS3 records",
        )
    ]
