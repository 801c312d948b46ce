"""A blob download checked against its CID while it streams, resumed from the start when it drops.

``com.atproto.sync.getBlob`` ignores ``Range`` (a PDS answers 200 with the
whole body), so a download that drops is started again from the first byte
and the bytes already received are read and skipped. The sha256 is taken of
exactly the bytes received, so what was skipped is not hashed twice, and at
the end it must equal the digest the blob's CID pins, or
:class:`~atdata_core.errors.ChecksumError` names the shard.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3.exceptions

from atdata_core.errors import ChecksumError, StorageError

__all__ = ["VerifiedBlob"]

# Failures of the connection, as opposed to answers from the server.
_DROPPED = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)
_SKIP_CHUNK = 1 << 16


class VerifiedBlob(io.RawIOBase):
    """The bytes of one blob, from ``fetch()`` (a readable stream of the whole blob), checked against ``digest``.

    The download is read one chunk ahead of the reader, so the end of the
    blob is seen before its last chunk is handed out: a blob whose bytes are
    not the ones its CID names raises :class:`~atdata_core.errors.ChecksumError`
    (naming ``url``) instead of giving its last bytes, even to a reader that
    stops at the shard's recorded size and never asks for the end of the
    stream. ``resumes`` bounds how many times a dropped download starts again
    without progress in between; ``backoff`` seconds (doubling) are slept
    before each. More than ``max_bytes`` bytes stop the download.

    ``verifies_sha256`` says so to the reader (see ``StorageBase.open``): a
    shard whose recorded checksum is the digest the CID pins is then not
    hashed a second time.
    """

    def __init__(
        self,
        fetch: Callable[[], Any],
        *,
        digest: bytes,
        cid: str,
        url: str,
        resumes: int,
        max_bytes: int,
        backoff: float = 0.2,
        chunk: int = 1 << 20,
    ):
        super().__init__()
        self._fetch = fetch
        self._digest = digest
        self._cid = cid
        self._url = url
        self._resumes = resumes
        self._max_bytes = max_bytes
        self._backoff = backoff
        self._chunk = chunk
        self._hash = hashlib.sha256()
        self.verifies_sha256 = digest.hex()
        self._received = 0  # bytes taken from the download (and hashed), the chunk ahead included
        self._failures = 0  # consecutive, without progress in between
        self._current = memoryview(b"")  # what the reader gets next
        self._ahead: bytes | None = None  # the chunk after it; b"" at the end
        self._finished = False
        self._stream: Any = None  # set first: a failed fetch still leaves an object its finaliser can close
        self._stream = fetch()  # opened now, so a missing blob fails at open()
        size = getattr(self._stream, "size", None)  # Content-Length, unless the PDS compressed the body
        self._size = size if isinstance(size, int) and size >= 0 else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        if not len(self._current):
            if self._finished and not self._ahead:
                return 0
            if self._ahead is None:
                self._ahead = self._next_chunk()
            current, self._ahead = self._ahead, b""
            if current:
                self._ahead = self._next_chunk()
            if not self._ahead:
                self._finish()  # raises before the last chunk is handed out if the bytes are wrong
            self._current = memoryview(current)
            if not current:
                return 0
        n = min(len(view), len(self._current))
        view[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def _next_chunk(self) -> bytes:
        """The next bytes of the download, hashed (``b""`` at its end), restarting it when it drops."""
        while True:
            try:
                if self._stream is None:
                    self._reopen()
                data = self._stream.read(self._chunk)
            except _DROPPED as err:
                self._dropped(f"{type(err).__name__}: {err}")
                continue
            if not data and self._size is not None and self._received < self._size:
                # The body ended early without the connection saying so: start again.
                self._dropped(f"the body ended at byte {self._received:,} of {self._size:,}")
                continue
            if data:
                self._failures = 0
                self._received += len(data)
                if self._received > self._max_bytes:
                    self.close()
                    raise StorageError(
                        f"{self._url}: the PDS sent more than {self._max_bytes:,} bytes for one blob; stopped. "
                        "A shard blob is at most its PDS's upload limit ([blob] max_blob_bytes raises this bound)"
                    )
                self._hash.update(data)
            return data

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._close_stream()
        actual = self._hash.digest()
        if actual != self._digest:
            self.close()
            raise ChecksumError(self._url, self._digest.hex(), actual.hex(), algorithm=f"sha256 (blob CID {self._cid})")

    def _dropped(self, reason: str) -> None:
        self._close_stream()
        self._failures += 1
        if self._failures > self._resumes:
            raise StorageError(
                f"reading {self._url} failed at byte {self._received:,} after {self._resumes} restarts: {reason}. "
                "[blob] resumes sets how often a dropped download starts again"
            )
        time.sleep(self._backoff * 2 ** (self._failures - 1))

    def _reopen(self) -> None:
        stream = self._fetch()
        try:
            remaining = self._received
            while remaining:
                skipped = stream.read(min(remaining, _SKIP_CHUNK))
                if not skipped:
                    raise urllib3.exceptions.ProtocolError(
                        f"the blob ended after {self._received - remaining:,} bytes while skipping to byte "
                        f"{self._received:,}"
                    )
                remaining -= len(skipped)
        except BaseException:
            stream.close()
            raise
        self._stream = stream

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            finally:
                self._stream = None

    def close(self) -> None:
        self._close_stream()
        self._current = memoryview(b"")
        super().close()
