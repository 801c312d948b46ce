"""HTTP(S) storage: streaming reads that resume with ``Range`` when a connection drops.

Reading: ``open`` sends one GET and streams the body. If the connection drops
or stalls mid-body, the stream reopens with ``Range: bytes=<offset>-`` and
carries on where it stopped, so the reader sees one unbroken byte stream. It
gives up after ``[http] retries`` consecutive failures without progress (5 by
default), sleeping ``[http] backoff`` seconds (0.5), doubling each time, in
between. A server that ignores ``Range`` is read again from the start and the
bytes already delivered are skipped; one whose object changed (a different
``ETag``) fails the read instead.

Writing: ``put`` sends the file with HTTP ``PUT`` and ``delete`` sends
``DELETE``, which works with WebDAV servers, presigned upload URLs and object
stores that speak plain HTTP. A server that refuses answers with an error
status, raised as :class:`StorageError`. HTTP has no listing, so ``list`` (and
the ``glob`` derived from it) raise :class:`StorageError`: name shards by URL
or brace pattern (``expand`` of a brace pattern sends no request).

Records: ``HttpStorage`` is also a
:class:`~atdata_core.plugins.StorageRecordMapper` for the entry's storage
member ``science.alt.dataset.storageHttp``:
``{"shards": [{"url": ..., "checksum": {"algorithm": "sha256", "digest": hex}}]}``.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import attrs
import requests
import urllib3.exceptions

from atdata_core._nsids import STORAGE_HTTP_NSID
from atdata_core._shardref import ShardRef, as_shard_ref
from atdata_core._retry import RetryPolicy, is_name_resolution_failure, retryable_status
from atdata_core.config import Config, HttpSettings
from atdata_core.errors import RateLimited, RecordError, StorageError, StorageNotFound
from atdata_core.storage._base import StorageBase

__all__ = ["STORAGE_HTTP", "HttpStorage", "shards_from_http_record", "shards_to_http_record"]

#: The storage-union member this backend maps (kept under its old name).
STORAGE_HTTP = STORAGE_HTTP_NSID
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_CHUNK = 1 << 16

# Failures of a connection, as opposed to answers from the server.
_DROPPED = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    urllib3.exceptions.IncompleteRead,
    ConnectionError,
    TimeoutError,
)


class HttpStorage(StorageBase):
    """Shard storage over HTTP and HTTPS, with ``requests``.

    Requests follow the core's one retry policy (:mod:`atdata_core._retry`)
    with ``settings``, an :class:`~atdata_core.config.HttpSettings` (the
    ``[http]`` section; :meth:`from_config` reads it, the built-in defaults
    otherwise); ``retries``, ``backoff`` (seconds) and ``timeout`` (seconds
    per connect / read) override single values.
    """

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        session: requests.Session | None = None,
    ):
        if isinstance(settings, Config):  # the configuration itself: read its [http] section
            settings = HttpSettings.from_config(settings)
        given = {key: value for key, value in (("retries", retries), ("backoff", backoff), ("timeout", timeout))
                 if value is not None}
        self.policy = attrs.evolve(RetryPolicy.of(settings), **given)
        self.retries = self.policy.retries
        self.backoff = self.policy.backoff
        self.timeout = self.policy.timeout
        self._session = session
        self._session_pid = os.getpid()

    @classmethod
    def from_config(cls, config: Config) -> HttpStorage:
        """The backend as the registry builds it: ``[http]`` read into :class:`HttpSettings`."""
        return cls(HttpSettings.from_config(config))

    @property
    def session(self) -> requests.Session:
        # A forked data-loader worker must not share the parent's pooled sockets:
        # two processes reading one connection would interleave shard bytes.
        if self._session is None or self._session_pid != os.getpid():
            session = requests.Session()
            session.headers["User-Agent"] = "atdata-core"
            self._session = session
            self._session_pid = os.getpid()
        return self._session

    # -- reading -----------------------------------------------------------

    def open(self, url: str) -> BinaryIO:
        response = self._request("GET", url, stream=True, headers={"Accept-Encoding": "identity"})
        body = _ResumableBody(self, url, response)
        return io.BufferedReader(body, buffer_size=_CHUNK)  # type: ignore[return-value]

    def size(self, url: str) -> int | None:
        response = self._head(url)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def _head(self, url: str) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}
        try:
            return self._request("HEAD", url, allow_redirects=True, headers=headers)
        except _StatusError as err:
            if err.status not in (405, 501):
                raise
        # Some servers refuse HEAD: start a GET, keep its headers, drop the body.
        response = self._request("GET", url, stream=True, headers=headers)
        response.close()
        return response

    def list(self, prefix: str) -> list[str]:
        raise StorageError(
            f"cannot list {prefix}: HTTP has no listing, so * ? [ patterns cannot match. Name the "
            "shards by URL or by a brace pattern such as https://host/data-{000000..000009}.tar"
        )

    # -- writing -----------------------------------------------------------

    def put(self, local_path: str | os.PathLike[str], url: str) -> str:
        source = os.fspath(local_path)
        if not os.path.isfile(source):
            raise StorageNotFound(f"cannot put {source} at {url}: no such local file")
        length = os.path.getsize(source)
        with open(source, "rb") as body:

            def rewind() -> None:
                body.seek(0)

            self._request(
                "PUT",
                url,
                data=body,
                headers={"Content-Length": str(length), "Content-Type": "application/x-tar"},
                before_retry=rewind,
            )
        return url

    def delete(self, url: str) -> None:
        self._request("DELETE", url)

    # -- records -----------------------------------------------------------

    def to_storage_record(self, shards: Sequence[ShardRef]) -> dict[str, Any]:
        """A ``storageHttp`` member listing ``shards`` (http(s) URLs, each with its sha256)."""
        return shards_to_http_record(shards)

    def from_storage_record(self, record: Mapping[str, Any]) -> list[ShardRef]:
        """The shards a ``storageHttp`` member lists, in order (sha256 None when not recorded)."""
        return shards_from_http_record(record)

    # -- plumbing ----------------------------------------------------------

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.policy.sleep_before(attempt))

    def _request(self, method: str, url: str, *, before_retry: Any = None, **kwargs: Any) -> requests.Response:
        """One request under the retry policy: dropped connections and passing server errors are
        tried again, a 429 waits for its reset time, a host name that does not resolve is final."""
        kwargs.setdefault("timeout", self.timeout)
        attempts = self.policy.attempts(what=f"{method} {url}")
        retrying = False
        while True:
            if retrying and before_retry is not None:
                before_retry()
            retrying = True
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.exceptions.InvalidURL as err:
                raise StorageError(f"{url}: not a valid URL ({err})") from err
            except _DROPPED as err:
                if is_name_resolution_failure(err):
                    raise StorageError(
                        f"{method} {url} failed: its host name does not resolve (DNS), so it was not retried; "
                        "check the URL"
                    ) from err
                reason = f"{type(err).__name__}: {err}"
            except requests.RequestException as err:
                raise StorageError(f"{method} {url} failed: {err}") from err
            else:
                if response.status_code < 400:
                    return response
                response.close()
                if response.status_code in (404, 410):
                    raise StorageNotFound(f"no object at {url} (HTTP {response.status_code})")
                if response.status_code == 429:
                    try:
                        attempts.rate_limited(response.headers)
                    except RateLimited as err:
                        raise StorageError(f"{method} {url}: {err}") from err
                    continue
                if not retryable_status(response.status_code):
                    message = f"{method} {url} failed with HTTP {response.status_code} {response.reason}"
                    if response.status_code in (405, 501) and method in ("PUT", "DELETE"):
                        message += f": this server does not accept {method}; put the shards there another way"
                    raise _StatusError(message, response.status_code)
                reason = f"HTTP {response.status_code} {response.reason}"
            if not attempts.failed(reason):
                tried = len(attempts.failures)
                late = f" (stopped at the {self.policy.deadline:g} s [http] deadline)" if attempts.out_of_time else ""
                raise StorageError(f"{method} {url} failed after {tried} attempt{'s' if tried != 1 else ''}{late}: {reason}")

    def __repr__(self) -> str:
        return f"HttpStorage(retries={self.retries}, backoff={self.backoff}, timeout={self.timeout})"


class _StatusError(StorageError):
    """An HTTP error status, kept so callers inside this module can react to it."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class _ResumableBody(io.RawIOBase):
    """A response body that reopens itself with ``Range`` when the connection drops."""

    def __init__(self, storage: HttpStorage, url: str, response: requests.Response):
        self._storage = storage
        self._url = url
        self._response = response
        self._offset = 0
        length = response.headers.get("Content-Length")
        self._total = int(length) if length and length.isdigit() else None
        self._etag = response.headers.get("ETag")
        self._failures = 0  # consecutive, without progress in between
        # We ask for identity; a server that compresses anyway is decoded, but
        # its byte offsets are not ours, so such a stream cannot resume.
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        self._encoded = encoding not in ("", "identity")
        if self._encoded:
            self._total = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        while True:
            try:
                if self._response is None:
                    self._reopen()
                    if self._response is None:
                        continue
                data = self._response.raw.read(len(view), decode_content=self._encoded)
            except _DROPPED as err:
                if self._encoded:
                    raise StorageError(
                        f"reading {self._url} failed at byte {self._offset} of its decoded body: "
                        f"{type(err).__name__}: {err} (the server compressed it, so it cannot resume)"
                    ) from err
                self._dropped(f"{type(err).__name__}: {err}")
                continue
            if not data and self._total is not None and self._offset < self._total:
                self._dropped(f"body ended at byte {self._offset} of {self._total}")
                continue
            if data:
                self._failures = 0
            view[: len(data)] = data
            self._offset += len(data)
            return len(data)

    def _dropped(self, reason: str) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        self._failures += 1
        if self._failures > self._storage.retries:
            of = f" of {self._total}" if self._total is not None else ""
            raise StorageError(
                f"reading {self._url} failed at byte {self._offset}{of} after "
                f"{self._storage.retries} resumes: {reason}"
            )
        self._storage._sleep(self._failures - 1)

    def _reopen(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self._offset:
            headers["Range"] = f"bytes={self._offset}-"
        try:
            response = self._storage.session.get(
                self._url, stream=True, headers=headers, timeout=self._storage.timeout
            )
        except _DROPPED:
            raise  # readinto counts it and tries again
        except requests.RequestException as err:
            raise StorageError(f"resuming {self._url} at byte {self._offset} failed: {err}") from err
        status = response.status_code
        etag = response.headers.get("ETag")
        if self._etag and etag and etag != self._etag:
            response.close()
            raise StorageError(
                f"{self._url} changed while it was being read (ETag {self._etag} became {etag}); read it again"
            )
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != self._offset:
                response.close()
                raise StorageError(
                    f"{self._url}: resumed at byte {self._offset} but the server sent "
                    f"Content-Range {response.headers.get('Content-Range')!r}"
                )
            self._response = response
        elif status == 200:
            # The server ignored Range: read from the start and skip what was delivered.
            self._response = response
            try:
                self._skip(self._offset)
            except BaseException:
                self._response = None
                response.close()
                raise
        elif status == 416 and self._total is not None and self._offset >= self._total:
            response.close()
            self._response = _EmptyResponse()  # type: ignore[assignment]
        elif status == 416:
            response.close()
            raise StorageError(
                f"{self._url} changed while it was being read: it no longer reaches byte {self._offset}; read it again"
            )
        elif status in (404, 410):
            response.close()
            raise StorageNotFound(f"{self._url} disappeared while it was being read (HTTP {status})")
        elif status in _RETRY_STATUS:
            response.close()
            self._dropped(f"HTTP {status} on resume")
        else:
            response.close()
            raise StorageError(f"resuming {self._url} at byte {self._offset} failed with HTTP {status}")

    def _skip(self, count: int) -> None:
        remaining = count
        while remaining:
            data = self._response.raw.read(min(remaining, _CHUNK), decode_content=False)
            if not data:
                raise urllib3.exceptions.ProtocolError(f"body ended while skipping to byte {count}")
            remaining -= len(data)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()


class _EmptyResponse:
    class raw:  # noqa: N801 - mimics requests.Response.raw
        @staticmethod
        def read(_n: int, decode_content: bool = False) -> bytes:
            return b""

    def close(self) -> None:
        return None


def shards_to_http_record(shards: Iterable[ShardRef | tuple[str, str]]) -> dict[str, Any]:
    """A ``science.alt.dataset.storageHttp`` member for shards (ShardRefs or ``(url, sha256_hex)`` pairs)."""
    refs = [as_shard_ref(shard) for shard in shards]
    if not refs:
        raise StorageError("a storage record needs at least one shard")
    entries = []
    for url, digest, _count, _size in refs:
        if not isinstance(url, str) or not re.match(r"^https?://", url, re.IGNORECASE):
            raise StorageError(f"storageHttp records hold http(s) URLs only, got {url!r}")
        if len(url) > 2000:
            raise StorageError(f"shard URL longer than 2000 characters: {url[:80]}...")
        digest = (digest or "").lower()
        if not _HEX64.match(digest):
            raise StorageError(f"shard {url} needs a sha256 hex digest (64 hex digits), got {digest!r}")
        entries.append({"url": url, "checksum": {"algorithm": "sha256", "digest": digest}})
    return {"$type": STORAGE_HTTP_NSID, "shards": entries}


def shards_from_http_record(record: Mapping[str, Any]) -> list[ShardRef]:
    """The shards of a ``storageHttp`` member: URL and sha256 hex (None when absent or another algorithm)."""
    record_type = record.get("$type")
    if record_type not in (STORAGE_HTTP_NSID, f"{STORAGE_HTTP_NSID}#main", None):
        raise RecordError(f"expected a {STORAGE_HTTP_NSID} storage record, got $type {record_type!r}")
    shards = record.get("shards")
    if not isinstance(shards, list) or not shards:
        raise RecordError(f"{STORAGE_HTTP_NSID} record: $.shards must be a non-empty list")
    out: list[ShardRef] = []
    for index, shard in enumerate(shards):
        url = shard.get("url") if isinstance(shard, Mapping) else None
        if not isinstance(url, str) or not url:
            raise RecordError(f"{STORAGE_HTTP_NSID} record: $.shards[{index}].url is missing")
        checksum = shard.get("checksum")
        digest = None
        if isinstance(checksum, Mapping) and str(checksum.get("algorithm", "")).lower() == "sha256":
            value = checksum.get("digest")
            if isinstance(value, str) and _HEX64.match(value.lower()):
                digest = value.lower()
        out.append(ShardRef(url, digest))
    return out
