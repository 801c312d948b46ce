"""The ``science.alt.dataset`` records as Python objects, and their wire shape.

::

    from atdata_core.records import EntryRecord, StorageHttp, HttpShard, ShardChecksum, to_record

    entry = EntryRecord(
        name="mnist",
        schema_ref="at://did:plc:abc/science.alt.dataset.schema/com.example.digit:1.0.0",
        storage=StorageHttp([HttpShard("https://example.com/mnist-000.tar", ShardChecksum.sha256(data))]),
    )
    record = to_record(entry)   # camelCase dict with $type and createdAt, ready to validate and send

Record keys and versions: :func:`schema_rkey` builds ``{schemaId}:{version}``
(DESIGN D5), :func:`latest_version` picks the highest semver.
"""

from __future__ import annotations

from typing import Any

from atdata_core.records._converter import (
    Record,
    converter,
    format_datetime,
    from_record,
    parse_datetime,
    to_record,
)
from atdata_core.records._keys import check_schema_id, parse_schema_rkey, schema_rkey
from atdata_core.records._models import (
    JSON_SCHEMA_DRAFT_07,
    NAMESPACE,
    RECORD_TYPES,
    STORAGE_TYPES,
    BlobRef,
    BlobShard,
    CodeReference,
    DatasetSize,
    EntryRecord,
    HttpShard,
    JsonSchemaFormat,
    LabelRecord,
    LensRecord,
    LensVerificationRecord,
    S3Shard,
    SchemaBody,
    SchemaMetadata,
    SchemaRecord,
    ShardChecksum,
    Storage,
    StorageBlobs,
    StorageHttp,
    StorageS3,
    utc_now,
)
from atdata_core.records._semver import (
    Version,
    is_version,
    latest_version,
    parse_version,
    sort_versions,
    version_bump,
)


def read_record(record: dict[str, Any], cls: type | None = None) -> tuple[Any, list]:
    """Validate a record tolerantly, then build its model: ``(model, warnings)``.

    For records read from the network (DESIGN D6): deviations that lose no
    meaning come back as warnings; anything uninterpretable raises
    :class:`~atdata_core.errors.ValidationError` or
    :class:`~atdata_core.errors.RecordError`.
    """
    from atdata_core.lexicon import validate_record

    nsid = cls.NSID if cls is not None else None
    warnings = validate_record(record, nsid, strict=False)
    return from_record(record, cls), warnings


def write_record(obj: Any) -> dict[str, Any]:
    """The wire dict of a record model, validated strictly (raises ValidationError)."""
    from atdata_core.lexicon import validate_record

    record = to_record(obj)
    validate_record(record)
    return record


__all__ = [
    "JSON_SCHEMA_DRAFT_07",
    "NAMESPACE",
    "RECORD_TYPES",
    "STORAGE_TYPES",
    "BlobRef",
    "BlobShard",
    "CodeReference",
    "DatasetSize",
    "EntryRecord",
    "HttpShard",
    "JsonSchemaFormat",
    "LabelRecord",
    "LensRecord",
    "LensVerificationRecord",
    "Record",
    "S3Shard",
    "SchemaBody",
    "SchemaMetadata",
    "SchemaRecord",
    "ShardChecksum",
    "Storage",
    "StorageBlobs",
    "StorageHttp",
    "StorageS3",
    "Version",
    "check_schema_id",
    "converter",
    "format_datetime",
    "from_record",
    "is_version",
    "latest_version",
    "parse_datetime",
    "parse_schema_rkey",
    "parse_version",
    "read_record",
    "schema_rkey",
    "sort_versions",
    "to_record",
    "utc_now",
    "version_bump",
    "write_record",
]
