"""attrs models of the ``science.alt.dataset`` records.

The classes say what a record holds in Python terms (snake_case names,
``datetime``, tuples, a decoded metadata dict); :mod:`._converter` maps them
to and from the wire shape (camelCase, ``$type``, RFC 3339 strings, bytes,
blob refs). Fields a newer or foreign client wrote that a class does not know
are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, ClassVar, Union

import attrs

from atdata_core._nsids import (
    ENTRY_NSID,
    JSON_SCHEMA_FORMAT_NSID,
    LABEL_NSID,
    LENS_NSID,
    LENS_VERIFICATION_NSID,
    NAMESPACE,
    SCHEMA_NSID,
    STORAGE_BLOBS_NSID,
    STORAGE_HTTP_NSID,
    STORAGE_S3_NSID,
)

JSON_SCHEMA_DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def utc_now() -> datetime:
    """Now, in UTC, at millisecond precision (what RFC 3339 records usually carry)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _aware(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    # A naive datetime is taken to be UTC: records always carry a zone.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _extra() -> Any:
    return attrs.field(factory=dict, kw_only=True, hash=False)


# --- small pieces -----------------------------------------------------------


@attrs.frozen
class ShardChecksum:
    """A content hash: ``{algorithm, digest}`` with a hex digest.

    Also the shape of a lens verification's ``codeHash``.
    """

    algorithm: str
    digest: str

    @classmethod
    def sha256(cls, data: bytes) -> "ShardChecksum":
        """The sha256 checksum of ``data``."""
        return cls("sha256", hashlib.sha256(data).hexdigest())

    def matches(self, data: bytes) -> bool:
        """True when ``data`` hashes to this digest (hex compared case-insensitively)."""
        try:
            actual = hashlib.new(self.algorithm, data).hexdigest()
        except ValueError:
            return False
        return actual == self.digest.lower()


@attrs.frozen
class BlobRef:
    """A reference to a blob in a PDS: CID, MIME type and size in bytes.

    ``size`` is None only for blobs read from the legacy ``{cid, mimeType}`` form.
    """

    cid: str
    mime_type: str
    size: int | None = None


@attrs.frozen
class DatasetSize:
    samples: int | None = None
    bytes: int | None = None
    shards: int | None = None


@attrs.frozen
class CodeReference:
    """A function in a source repository, pinned to a commit (DESIGN D3).

    ``path`` reads ``module/file.py:function``.
    """

    repository: str
    commit: str
    path: str
    branch: str | None = None
    language: str | None = None


# --- storage union members --------------------------------------------------


@attrs.frozen
class HttpShard:
    url: str
    checksum: ShardChecksum


@attrs.frozen
class S3Shard:
    key: str
    checksum: ShardChecksum


@attrs.frozen
class BlobShard:
    blob: BlobRef
    checksum: ShardChecksum | None = None


def _tuple(value: Any) -> tuple:
    return tuple(value)


@attrs.frozen
class StorageHttp:
    """Shards served over HTTP(S)."""

    TYPE: ClassVar[str] = STORAGE_HTTP_NSID
    shards: tuple[HttpShard, ...] = attrs.field(converter=_tuple)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class StorageS3:
    """Shards stored as S3 objects."""

    TYPE: ClassVar[str] = STORAGE_S3_NSID
    bucket: str
    shards: tuple[S3Shard, ...] = attrs.field(converter=_tuple)
    region: str | None = None
    endpoint: str | None = None
    extra: dict[str, Any] = _extra()


@attrs.frozen
class StorageBlobs:
    """Shards stored as blobs in the publisher's PDS."""

    TYPE: ClassVar[str] = STORAGE_BLOBS_NSID
    blobs: tuple[BlobShard, ...] = attrs.field(converter=_tuple)
    extra: dict[str, Any] = _extra()


#: What an entry's ``storage`` holds: a known member, or the raw dict of an
#: unknown one (the union is open; a storage plugin may understand it).
Storage = Union[StorageHttp, StorageS3, StorageBlobs, dict]

STORAGE_TYPES: dict[str, type] = {cls.TYPE: cls for cls in (StorageHttp, StorageS3, StorageBlobs)}


# --- schema body --------------------------------------------------------------


@attrs.frozen
class JsonSchemaFormat:
    """The built-in schema format: a JSON Schema draft-07 object schema.

    ``extra`` holds any other JSON Schema keywords (``$defs``, ``title``...).
    On the wire it is the member ``science.alt.dataset.schema#jsonSchemaFormat``
    with ``$schema`` and ``type: object`` added.
    """

    TYPE: ClassVar[str] = JSON_SCHEMA_FORMAT_NSID
    properties: dict[str, Any] = attrs.field(hash=False)
    required: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    array_format_versions: dict[str, str] | None = attrs.field(default=None, hash=False)
    extra: dict[str, Any] = _extra()


#: What a schema record's ``schema`` holds: the JSON Schema member, or the
#: raw dict of another format (protobuf, ...), ``$type`` included.
SchemaBody = Union[JsonSchemaFormat, dict]


@attrs.frozen
class SchemaMetadata:
    license: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    extra: dict[str, Any] = _extra()


# --- records ----------------------------------------------------------------


@attrs.frozen
class SchemaRecord:
    """``science.alt.dataset.schema``: one version of a sample type."""

    NSID: ClassVar[str] = SCHEMA_NSID
    name: str
    version: str
    schema: SchemaBody = attrs.field(hash=False)
    schema_type: str = "jsonSchema"
    description: str | None = None
    metadata: SchemaMetadata | None = None
    atdata_schema_version: int | None = None
    created_at: datetime = attrs.field(factory=utc_now, converter=_aware)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class EntryRecord:
    """``science.alt.dataset.entry``: a dataset and where its shards are.

    ``metadata`` is the decoded map; on the wire it is msgpack bytes.
    """

    NSID: ClassVar[str] = ENTRY_NSID
    name: str
    schema_ref: str
    storage: Storage = attrs.field(hash=False)
    description: str | None = None
    metadata: dict[str, Any] | None = attrs.field(default=None, hash=False)
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    size: DatasetSize | None = None
    license: str | None = None
    metadata_schema_ref: str | None = None
    content_metadata: dict[str, Any] | None = attrs.field(default=None, hash=False)
    created_at: datetime = attrs.field(factory=utc_now, converter=_aware)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class LensRecord:
    """``science.alt.dataset.lens``: references to a getter and a putter."""

    NSID: ClassVar[str] = LENS_NSID
    name: str
    source_schema: str
    target_schema: str
    getter_code: CodeReference
    putter_code: CodeReference
    description: str | None = None
    metadata: dict[str, Any] | None = attrs.field(default=None, hash=False)
    source_schema_version: str | None = None
    target_schema_version: str | None = None
    created_at: datetime = attrs.field(factory=utc_now, converter=_aware)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class LabelRecord:
    """``science.alt.dataset.label``: a name for a dataset entry, like a git tag."""

    NSID: ClassVar[str] = LABEL_NSID
    name: str
    dataset_uri: str
    version: str | None = None
    description: str | None = None
    created_at: datetime = attrs.field(factory=utc_now, converter=_aware)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class LensVerificationRecord:
    """``science.alt.dataset.lensVerification``: the repository owner vouches for a lens."""

    NSID: ClassVar[str] = LENS_VERIFICATION_NSID
    lens: str
    lens_commit: str
    verification_method: str
    code_hash: ShardChecksum | None = None
    proof_ref: CodeReference | None = None
    description: str | None = None
    created_at: datetime = attrs.field(factory=utc_now, converter=_aware)
    extra: dict[str, Any] = _extra()


RECORD_TYPES: dict[str, type] = {
    cls.NSID: cls for cls in (SchemaRecord, EntryRecord, LensRecord, LabelRecord, LensVerificationRecord)
}
