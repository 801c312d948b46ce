"""HTTP(S) storage: streaming reads that resume with ``Range`` when a connection drops.

Reading: ``open`` sends one GET and streams the body; an uncompressed body is
read straight from the connection into the buffer each read hands out (one
copy, each read a buffer of its own). If the connection drops
or stalls mid-body, the stream reopens with ``Range: bytes=<offset>-`` and
carries on where it stopped, so the reader sees one unbroken byte stream. It
gives up after ``[http] retries`` consecutive failures without progress (5 by
default), sleeping ``[http] backoff`` seconds (0.5), doubling each time, in
between. A server that ignores ``Range`` is read again from the start and the
bytes already delivered are skipped; one whose object changed (a different
``ETag``) fails the read instead.

Deadlines and bounds: reading one shard, from its first request through
every redirect, resume and body byte, stops ``[http] shard_deadline``
seconds after it started (1800 by default), even when the server keeps the
connection alive by dripping a byte at a time (a watchdog shuts the socket
down). Redirects are followed one hop at a time, at most ``[http]
max_redirects`` (10); a redirect that leaves a public server for a loopback,
private or link-local address is refused unless ``[network]`` allows it.

URLs named by records: a shard URL that an entry record named arrives as a
:class:`~atdata_core._netpolicy.RecordUrl`. Every hop of it must pass the
network policy it was checked against (scheme and host), every connection
made for it must reach an address that policy allows, and its body is read
to at most the size the record gives plus a little slack: an endless body
stops there with a :class:`StorageError`.

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
Both directions take ``http(s)://`` URLs only; a URL carrying credentials (a
password, a presigned signature or token) is never written into a record.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import attrs
import requests
import urllib3.exceptions

from atdata_core._netguard import Deadline, guarded_session, send_checked
from atdata_core._netpolicy import NetworkPolicy, RecordUrl, redact_credentials, url_credentials
from atdata_core._nsids import STORAGE_HTTP_NSID
from atdata_core._shardref import ShardRef, as_shard_ref
from atdata_core._retry import RetryPolicy, is_name_resolution_failure, retryable_status
from atdata_core.config import Config, HttpSettings, NetworkSettings
from atdata_core.errors import AtdataError, RateLimited, RecordError, StorageError, StorageNotFound
from atdata_core.storage._base import StorageBase

__all__ = ["STORAGE_HTTP", "HttpStorage", "shards_from_http_record", "shards_to_http_record"]

#: The storage-union member this backend maps (kept under its old name).
STORAGE_HTTP = STORAGE_HTTP_NSID
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_HTTP_URL = re.compile(r"^https?://[^/?#\s]", re.IGNORECASE)
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
    per connect / read) override single values. ``network``, a
    :class:`~atdata_core.config.NetworkSettings` (``[network]``), says which
    private hosts a redirect from a public server may lead to. A ``session``
    of your own is used as it is: the addresses its connections reach are
    not judged (URLs and redirect hops still are).
    """

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        network: NetworkSettings | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        session: requests.Session | None = None,
    ):
        if isinstance(settings, Config):  # the configuration itself: read its [http] and [network] sections
            network = network or NetworkSettings.from_config(settings)
            settings = HttpSettings.from_config(settings)
        given = {key: value for key, value in (("retries", retries), ("backoff", backoff), ("timeout", timeout))
                 if value is not None}
        self.policy = attrs.evolve(RetryPolicy.of(settings), **given)
        self.retries = self.policy.retries
        self.backoff = self.policy.backoff
        self.timeout = self.policy.timeout
        self.network = NetworkPolicy.of(network)
        self._session = session
        self._session_pid = os.getpid()

    @classmethod
    def from_config(cls, config: Config) -> HttpStorage:
        """The backend as the registry builds it: ``[http]`` and ``[network]`` read into settings."""
        return cls(HttpSettings.from_config(config), network=NetworkSettings.from_config(config))

    @property
    def session(self) -> requests.Session:
        # A forked data-loader worker must not share the parent's pooled sockets:
        # two processes reading one connection would interleave shard bytes.
        if self._session is None or self._session_pid != os.getpid():
            self._session = guarded_session()
            self._session_pid = os.getpid()
        return self._session

    # -- reading -----------------------------------------------------------

    def open(self, url: str) -> BinaryIO:
        """Stream the object at ``url``; a :class:`~atdata_core._netpolicy.RecordUrl` is held to its policy."""
        deadline = Deadline(self.policy.shard_deadline)
        try:
            response = self._request("GET", url, stream=True, headers={"Accept-Encoding": "identity"}, deadline=deadline)
            body = _ResumableBody(self, url, response, deadline)
        except BaseException:
            deadline.close()
            raise
        return io.BufferedReader(body, buffer_size=_CHUNK)  # type: ignore[return-value]

    def size(self, url: str) -> int | None:
        response = self._head(url)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def _head(self, url: str) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}
        try:
            return self._request("HEAD", url, headers=headers)
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
        """A ``storageHttp`` member listing ``shards`` (http(s) URLs without credentials, each with its sha256)."""
        return shards_to_http_record(shards)

    def from_storage_record(self, record: Mapping[str, Any]) -> list[ShardRef]:
        """The shards a ``storageHttp`` member lists, in order (sha256 None when not recorded).

        A URL that is not ``http(s)://`` raises :class:`RecordError`: a
        record never names a local file or an opaque URL. Which hosts and
        whether plain http are acceptable is the network policy's decision,
        taken where records are loaded.
        """
        return shards_from_http_record(record)

    # -- plumbing ----------------------------------------------------------

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.policy.sleep_before(attempt))

    def _send(self, method: str, url: str, *, deadline: Deadline, rewind: Any = None, **kwargs: Any) -> requests.Response:
        """One attempt: the request and its redirects, each hop and connection judged by the network policy."""
        record = url if isinstance(url, RecordUrl) else None
        named = f" (named by {record.named_by})" if record is not None and record.named_by else ""
        return send_checked(
            self.session, method, url, what=f"{method} {url}{named}",
            policy=record.policy if record is not None else None,
            public_policy=self.network,
            max_redirects=self.policy.max_redirects,
            deadline=deadline,
            rewind=rewind,
            **kwargs,
        )

    def _request(
        self, method: str, url: str, *, before_retry: Any = None, deadline: Deadline | None = None, **kwargs: Any
    ) -> requests.Response:
        """One request under the retry policy: dropped connections and passing server errors are
        tried again, a 429 waits for its reset time, a host name that does not resolve is final.
        Everything stops at ``deadline`` (default: ``shard_deadline`` from now)."""
        kwargs.setdefault("timeout", self.timeout)
        own_deadline = deadline is None
        if deadline is None:
            deadline = Deadline(self.policy.shard_deadline)
        try:
            return self._attempt(method, url, before_retry=before_retry, deadline=deadline, **kwargs)
        finally:
            if own_deadline:
                deadline.close()

    def _attempt(
        self, method: str, url: str, *, before_retry: Any, deadline: Deadline, **kwargs: Any
    ) -> requests.Response:
        attempts = self.policy.attempts(what=f"{method} {url}", until=deadline.at)
        retrying = False
        while True:
            if retrying and before_retry is not None:
                before_retry()
            retrying = True
            try:
                if deadline.expired:
                    raise _late(url, deadline, f"{method} {url}")
                response = self._send(method, url, deadline=deadline, rewind=before_retry, **kwargs)
                if deadline.expired:  # the watchdog cut it short: what arrived is not an answer
                    response.close()
                    raise _late(url, deadline, f"{method} {url}")
            except requests.exceptions.InvalidURL as err:
                raise StorageError(f"{url}: not a valid URL ({err})") from err
            except _DROPPED as err:
                if deadline.expired:
                    raise _late(url, deadline, f"{method} {url}") from err
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
                late = (
                    f" (stopped at the {self.policy.deadline:g} s [http] deadline, or the "
                    f"{self.policy.shard_deadline:g} s [http] shard_deadline)" if attempts.out_of_time else ""
                )
                raise StorageError(f"{method} {url} failed after {tried} attempt{'s' if tried != 1 else ''}{late}: {reason}")

    def __repr__(self) -> str:
        return f"HttpStorage(retries={self.retries}, backoff={self.backoff}, timeout={self.timeout})"


class _StatusError(StorageError):
    """An HTTP error status, kept so callers inside this module can react to it."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class _ResumableBody(io.RawIOBase):
    """A response body that reopens itself with ``Range`` when the connection drops.

    It stops at ``deadline`` (its sockets are shut down then, so no blocked
    read outlives it) and, for a URL a record named, after the size the
    record gives plus slack.
    """

    def __init__(self, storage: HttpStorage, url: str, response: requests.Response, deadline: Deadline):
        self._storage = storage
        self._url = url
        self._response = response
        self._deadline = deadline
        self._offset = 0
        self._limit = url.max_bytes if isinstance(url, RecordUrl) else None
        length = response.headers.get("Content-Length")
        self._total = int(length) if length and length.isdigit() else None
        self._etag = response.headers.get("ETag")
        self._failures = 0  # consecutive, without progress in between
        self._stalled_since: float | None = None
        # We ask for identity; a server that compresses anyway is decoded, but
        # its byte offsets are not ours, so such a stream cannot resume.
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        self._encoded = encoding not in ("", "identity")
        if self._encoded:
            self._total = None
        if self._limit is not None and self._total is not None and self._total > self._limit:
            response.close()
            raise self._too_long(f"its server announces {self._total:,} bytes")

    def readable(self) -> bool:
        return True

    @property
    def length(self) -> int | None:
        """The body's length as its server announced it (None when it did not, or compressed it):
        a reader may then ask for large pieces of it at once."""
        return self._total

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        while True:
            self._check_deadline()
            want = len(view)
            if self._limit is not None:
                want = min(want, self._limit - self._offset + 1)  # one byte past the bound shows a longer body
            try:
                if self._response is None:
                    self._reopen()
                    if self._response is None:
                        continue
                body = None if self._encoded else _plain_body(self._response)
                if body is not None:
                    # Straight from the connection into the caller's buffer: one copy, and no
                    # fresh memory on the way (urllib3's read would hand out a new bytes object).
                    got = _read_into(body, view[:want] if want < len(view) else view)
                    data = None
                else:
                    data = self._response.raw.read(want, decode_content=self._encoded)
                    got = len(data)
            except _DROPPED as err:
                self._check_deadline()
                if self._encoded:
                    raise StorageError(
                        f"reading {self._url} failed at byte {self._offset} of its decoded body: "
                        f"{type(err).__name__}: {err} (the server compressed it, so it cannot resume)"
                    ) from err
                self._dropped(f"{type(err).__name__}: {err}")
                continue
            except AtdataError:
                raise
            except Exception:
                self._check_deadline()  # a socket shut down under a read surfaces in many shapes
                raise
            if not got:
                self._check_deadline()  # the watchdog's shutdown reads as the end of the body
                if self._total is not None and self._offset < self._total:
                    self._dropped(f"body ended at byte {self._offset} of {self._total}")
                    continue
            else:
                self._failures = 0
                self._stalled_since = None
            if self._limit is not None and self._offset + got > self._limit:
                self.close()
                raise self._too_long(f"it sent more than {self._limit:,} bytes")
            if data is not None:
                view[:got] = data
            elif got and body.isclosed():
                # The whole body is read: nothing more is read under this deadline, and the
                # connection may serve the next request (its socket must not be shut down then).
                self._deadline.close()
                _release(self._response)
            self._offset += got
            return got

    def _check_deadline(self) -> None:
        if self._deadline.expired:
            self.close()
            raise _late(self._url, self._deadline, f"reading {self._url}", at=self._offset)

    def _too_long(self, what: str) -> StorageError:
        record = self._url if isinstance(self._url, RecordUrl) else None
        named = f"its entry {record.named_by}" if record is not None and record.named_by else "its record"
        recorded = record.recorded_bytes if record is not None else None
        return StorageError(
            f"reading {self._url} stopped: {what}, but {named} gives it {recorded:,} bytes "
            f"(at most {self._limit:,} are read). The server is not serving the shard that was published"
        )

    def _dropped(self, reason: str) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        self._failures += 1
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        pause = self._storage.policy.sleep_before(self._failures - 1)
        stalled_for = now - self._stalled_since
        of = f" of {self._total}" if self._total is not None else ""
        if self._failures > self._storage.retries:
            raise StorageError(
                f"reading {self._url} failed at byte {self._offset}{of} after "
                f"{self._storage.retries} resumes: {reason}"
            )
        if stalled_for + pause > self._storage.policy.deadline:
            raise StorageError(
                f"reading {self._url} failed at byte {self._offset}{of}: no progress for {stalled_for:.0f} s, and "
                f"another resume would pass the {self._storage.policy.deadline:g} s [http] deadline: {reason}"
            )
        if pause >= self._deadline.remaining:
            raise _late(self._url, self._deadline, f"reading {self._url}", at=self._offset)
        self._storage._sleep(self._failures - 1)

    def _reopen(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self._offset:
            headers["Range"] = f"bytes={self._offset}-"
        try:
            response = self._storage._send(
                "GET", self._url, deadline=self._deadline, stream=True, headers=headers, timeout=self._storage.timeout
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
            self._check_deadline()
            data = self._response.raw.read(min(remaining, _CHUNK), decode_content=False)
            if not data:
                self._check_deadline()
                raise urllib3.exceptions.ProtocolError(f"body ended while skipping to byte {count}")
            remaining -= len(data)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        self._deadline.close()
        super().close()


def _plain_body(response: Any) -> http.client.HTTPResponse | None:
    """The standard library's response under a ``requests`` one, to read its body without urllib3's copies."""
    body = getattr(getattr(response, "raw", None), "_fp", None)
    if not isinstance(body, http.client.HTTPResponse):
        return None
    _read_whole(body)
    return body


# A large read of a plain-TCP body waits in the kernel until its buffer is full (MSG_WAITALL),
# where the standard library's socket reader takes what one recv returns (a few hundred KiB on
# loopback) and asks for the rest in another call. Every call needs the GIL to return, and while
# another thread decodes, a thread waiting for the GIL gets it only now and then: one wait per
# buffer lets the download run at its own speed beside the decoding. Linux only (where
# SO_RCVTIMEO keeps the read timeout of a blocking socket); TLS sockets read a record a call.
_WHOLE_READS = sys.platform.startswith("linux") and hasattr(socket, "MSG_WAITALL")
_WHOLE_READ_MIN = 1 << 16


def _read_whole(body: http.client.HTTPResponse) -> None:
    """Make the large reads of ``body`` wait for their whole buffer (once per response; see above)."""
    raw = getattr(getattr(body, "fp", None), "raw", None)
    if not _WHOLE_READS or type(raw) is not socket.SocketIO:
        return
    sock = getattr(raw, "_sock", None)
    if type(sock) is socket.socket and sock.type == socket.SOCK_STREAM:
        # The same reader with one method more: its buffered reader and http.client see no difference,
        # and nothing new refers back to it (a socket's file descriptor is freed as soon as before).
        raw.__class__ = _WholeReadsIO


class _WholeReadsIO(socket.SocketIO):
    """A socket's raw reader whose reads of at least :data:`_WHOLE_READ_MIN` bytes fill their buffer
    in one call, unless the connection ends or the read timeout passes first.

    The timeout keeps its meaning for a stall: no byte within it is a :class:`TimeoutError`. A
    body that trickles in returns what came within the timeout, and the next call waits again.
    """

    def readinto(self, b: Any) -> int | None:
        sock = self._sock
        timeout = sock.gettimeout()
        if len(b) < _WHOLE_READ_MIN or timeout == 0 or self._timeout_occurred:
            return super().readinto(b)
        self._checkClosed()
        if timeout is None:
            return sock.recv_into(b, 0, socket.MSG_WAITALL)
        seconds = int(timeout)
        sock.settimeout(None)  # blocking: a non-blocking socket returns what is there
        try:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", seconds, int((timeout - seconds) * 1e6))
            )
            try:
                return sock.recv_into(b, 0, socket.MSG_WAITALL)
            except BlockingIOError as err:  # SO_RCVTIMEO passed with nothing received
                self._timeout_occurred = True  # as the standard reader marks it: no read after a timeout
                raise TimeoutError("timed out") from err
            finally:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 0))
        finally:
            sock.settimeout(timeout)


def _read_into(body: http.client.HTTPResponse, view: memoryview) -> int:
    """``body.readinto(view)``, its failures raised as urllib3 raises them when it reads."""
    try:
        return body.readinto(view)
    except TimeoutError as err:
        raise urllib3.exceptions.ReadTimeoutError(None, None, f"Read timed out. ({err})") from err  # type: ignore[arg-type]
    except (OSError, http.client.HTTPException) as err:
        raise urllib3.exceptions.ProtocolError(f"Connection broken: {err!r}", err) from err


def _release(response: Any) -> None:
    """Hand the connection of a response whose body was read to its end back to the pool."""
    raw = getattr(response, "raw", None)
    if raw is not None and getattr(raw, "_connection", None) is not None:
        with contextlib.suppress(Exception):
            raw.release_conn()


def _late(url: str, deadline: Deadline, doing: str, at: int | None = None) -> StorageError:
    """The error for a shard transfer that ran out of time."""
    where = f" at byte {at:,}" if at else ""
    return StorageError(
        f"{doing} stopped{where}: it took longer than the {deadline.seconds:g} s [http] shard_deadline "
        "(the server stalled, or sends too slowly). Raise [http] shard_deadline for very large shards on slow links"
    )


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
        if not isinstance(url, str) or not _HTTP_URL.match(url):
            raise StorageError(f"storageHttp records hold http(s) URLs only, got {url!r}")
        if len(url) > 2000:
            raise StorageError(f"shard URL longer than 2000 characters: {url[:80]}...")
        secrets = url_credentials(url)
        if secrets:
            shown = redact_credentials(url)
            raise StorageError(
                f"the shard URL {shown[:120]}{'...' if len(shown) > 120 else ''} carries {' and '.join(secrets)}: a "
                "published record is public, so the secret would be too. Publish URLs that need no credentials"
            )
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
        if not _HTTP_URL.match(url):
            shown = repr(url) if len(url) <= 120 else repr(url[:117]) + "..."
            raise RecordError(
                f"{STORAGE_HTTP_NSID} record: $.shards[{index}].url is {shown}, not an http(s):// URL; a "
                "storageHttp record names remote shards only, never local files or other schemes"
            )
        checksum = shard.get("checksum")
        digest = None
        if isinstance(checksum, Mapping) and str(checksum.get("algorithm", "")).lower() == "sha256":
            value = checksum.get("digest")
            if isinstance(value, str) and _HEX64.match(value.lower()):
                digest = value.lower()
        out.append(ShardRef(url, digest))
    return out
