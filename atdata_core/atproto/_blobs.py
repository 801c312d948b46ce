"""Blobs: what an upload sends (body, size, MIME type) and the stream a download reads.

A blob must be uploaded with its real ``Content-Type``: a PDS that stored one
as ``*/*`` later refuses a record that references it with another type
(DESIGN, section 5), so wildcards are refused here, before anything is sent.
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
from collections.abc import Mapping
from typing import Any, BinaryIO

import attrs

from atdata_core.errors import StorageError, StorageNotFound

__all__ = ["BlobStream", "BlobUpload", "blob_cid"]

_MIME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]*/[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]*(\s*;.*)?$")


@attrs.frozen
class BlobUpload:
    """What one ``uploadBlob`` sends: ``body`` (bytes or a file object) or the file at ``path``."""

    size: int
    mime_type: str
    body: Any = None
    path: str | None = None

    @classmethod
    def prepare(cls, data_or_path: bytes | str | os.PathLike[str] | BinaryIO, mime_type: str | None) -> BlobUpload:
        """Measure the blob and settle its MIME type (guessed from a path, else ``application/octet-stream``)."""
        path = None
        if isinstance(data_or_path, (bytes, bytearray, memoryview)):
            body: Any = bytes(data_or_path)
            size = len(body)
        elif isinstance(data_or_path, (str, os.PathLike)):
            path = os.fspath(data_or_path)
            try:
                size = os.path.getsize(path)
            except OSError as err:
                raise StorageNotFound(f"cannot upload {path}: {err.strerror or err}") from err
            body = None
        elif hasattr(data_or_path, "read"):
            body = data_or_path
            try:
                here = body.tell()
                size = os.fstat(body.fileno()).st_size - here
            except (OSError, AttributeError, io.UnsupportedOperation):
                body = body.read()
                size = len(body)
        else:
            raise StorageError(f"upload_blob takes bytes, a path or a binary file, not {type(data_or_path).__name__}")
        if mime_type is None:
            guessed = mimetypes.guess_type(path)[0] if path else None
            mime_type = guessed or "application/octet-stream"
        if "*" in mime_type or not _MIME_RE.match(mime_type):
            raise StorageError(f"{mime_type!r} is not a MIME type for a blob (like image/png or application/x-tar)")
        return cls(size=size, mime_type=mime_type, body=body, path=path)


def blob_cid(cid_or_ref: str | Mapping[str, Any]) -> str:
    """The CID of a blob, given as a CID or as a blob ref ``{"ref": {"$link": cid}, ...}``."""
    if isinstance(cid_or_ref, Mapping):
        found = (cid_or_ref.get("ref") or {}).get("$link") or cid_or_ref.get("cid")
        if not isinstance(found, str):
            raise StorageError(f"a blob ref without a CID: {dict(cid_or_ref)!r}")
        return found
    return cid_or_ref


class BlobStream(io.RawIOBase):
    """A blob being downloaded: a read-only binary file object over the HTTP response.

    ``content_type`` is what the PDS serves it as, ``size`` its length when known.
    Use it as a context manager, or close it, to release the connection.
    """

    def __init__(self, response, *, did: str, cid: str):
        super().__init__()
        self._response = response
        self._raw = response.raw
        self._raw.decode_content = True
        self.did = did
        self.cid = cid
        self.content_type = response.headers.get("Content-Type", "")
        length = response.headers.get("Content-Length")
        self.size = int(length) if length and length.isdigit() else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()

    def __repr__(self) -> str:
        return f"<BlobStream {self.cid} of {self.did} {self.content_type or '?'} {self.size or '?'} bytes>"
