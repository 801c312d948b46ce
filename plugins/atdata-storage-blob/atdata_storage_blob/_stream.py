"""A blob download checked against its CID while it streams, resumed from the start when it drops.

``com.atproto.sync.getBlob`` ignores ``Range`` (a PDS answers 200 with the
whole body), so a download that drops is started again from the first byte
and the bytes already delivered are read and skipped. The sha256 is taken of
exactly the bytes the reader received, so what was skipped is not hashed
twice, and at the end it must equal the digest the blob's CID pins: the
reader gets every byte, then :class:`~atdata_core.errors.ChecksumError`
naming the shard if they are not the blob's.
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

    ``url`` names the shard in errors. ``resumes`` bounds how many times a
    dropped download starts again without progress in between; ``backoff``
    seconds (doubling) are slept before each. More than ``max_bytes`` bytes
    stop the download.
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
    ):
        super().__init__()
        self._fetch = fetch
        self._digest = digest
        self._cid = cid
        self._url = url
        self._resumes = resumes
        self._max_bytes = max_bytes
        self._backoff = backoff
        self._hash = hashlib.sha256()
        self._delivered = 0
        self._failures = 0  # consecutive, without progress in between
        self._finished = False
        self._stream: Any = fetch()  # opened now, so a missing blob fails at open()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view) or self._finished:
            return 0
        while True:
            try:
                if self._stream is None:
                    self._reopen()
                n = self._stream.readinto(view) or 0
            except _DROPPED as err:
                self._dropped(f"{type(err).__name__}: {err}")
                continue
            if not n:
                self._finish()
                return 0
            self._failures = 0
            self._delivered += n
            if self._delivered > self._max_bytes:
                self.close()
                raise StorageError(
                    f"{self._url}: the PDS sent more than {self._max_bytes:,} bytes for one blob; stopped. "
                    "A shard blob is at most its PDS's upload limit ([blob] max_blob_bytes raises this bound)"
                )
            self._hash.update(view[:n])
            return n

    def _finish(self) -> None:
        self._finished = True
        actual = self._hash.digest()
        if actual != self._digest:
            self.close()
            raise ChecksumError(self._url, self._digest.hex(), actual.hex(), algorithm=f"sha256 (blob CID {self._cid})")

    def _dropped(self, reason: str) -> None:
        self._close_stream()
        self._failures += 1
        if self._failures > self._resumes:
            raise StorageError(
                f"reading {self._url} failed at byte {self._delivered:,} after {self._resumes} restarts: {reason}. "
                "[blob] resumes sets how often a dropped download starts again"
            )
        time.sleep(self._backoff * 2 ** (self._failures - 1))

    def _reopen(self) -> None:
        stream = self._fetch()
        try:
            remaining = self._delivered
            while remaining:
                skipped = stream.read(min(remaining, _SKIP_CHUNK))
                if not skipped:
                    raise urllib3.exceptions.ProtocolError(
                        f"the blob ended after {self._delivered - remaining:,} bytes while skipping to byte "
                        f"{self._delivered:,}"
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
        super().close()
