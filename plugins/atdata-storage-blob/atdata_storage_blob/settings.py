"""``[blob]`` settings of the blob storage backend (``ATDATA_BLOB_<KEY>`` in the environment)."""

from __future__ import annotations

import attrs

__all__ = ["BlobSettings"]


def _non_negative(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value < 0:
        raise ValueError(f"blob.{attribute.name} must be 0 or more, not {value}")


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise ValueError(f"blob.{attribute.name} must be more than 0, not {value}")


@attrs.frozen
class BlobSettings:
    """How blobs are read.

    ``resumes``: how many times a blob download that drops is started again.
    ``getBlob`` ignores ``Range``, so a resumed download reads from the first
    byte and skips what was already delivered (and hashed).

    ``max_blob_bytes``: a download is stopped past this many bytes. A blob is
    at most its PDS's upload limit (5 MiB on the reference PDS), so this only
    stops a server that sends an endless body.

    Requests follow the core's ``[http]`` retry settings and its ``[atproto]``
    and ``[plc]`` settings (identity resolution, the upload limit used when a
    PDS advertises none).
    """

    resumes: int = attrs.field(default=3, validator=_non_negative)
    max_blob_bytes: int = attrs.field(default=1 << 30, validator=_positive)
