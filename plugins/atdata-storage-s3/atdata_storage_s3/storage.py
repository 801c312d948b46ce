"""Shards in S3 and S3-compatible object stores, through boto3.

:class:`S3Storage` is a :class:`~atdata_core.plugins.StorageBase` for
``s3://bucket/key`` (and ``s3+https://host/bucket/key``, see
:mod:`atdata_storage_s3._location`) and a
:class:`~atdata_core.plugins.StorageRecordMapper` for
``science.alt.dataset.storageS3`` records.

Reading streams the object with one GET. When the connection drops mid-body
the stream asks again with ``Range: bytes=<first byte not yet delivered>-``
and ``If-Match: <ETag>``, so the reader sees one unbroken byte stream of one
version of the object; it gives up after ``[http] retries`` failures in a
row without progress, sleeping ``[http] backoff`` seconds (doubling) between
them. An object replaced while it is read fails the read instead of mixing
two versions. (The core's loader keeps two remote shards in flight, so
one request's round trip and the service's work on it are hidden behind the
other's body.)

Writing: an object up to ``[s3] part_size`` bytes is one PUT; a larger one is
a multipart upload of parts of that size, ``[s3] max_concurrency`` at a time,
completed at the end (so readers never see part of it) and aborted when a part
fails (so no half upload is left behind).

Credentials come from the standard AWS chain (environment, ``~/.aws`` files,
``[s3] profile`` or a bucket's profile, an instance role); when the chain has
none, requests go unsigned, which reads public buckets. They are never
written into records.

The backend is built once per process and shared between threads: boto3
clients are thread-safe, and they are built under a lock and rebuilt in a
forked child.
"""

from __future__ import annotations

import http.client
import io
import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any, BinaryIO

import attrs
import boto3
import botocore.exceptions
import botocore.response
import urllib3.exceptions
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig

from atdata_core.errors import RecordError, StorageError, StorageNotFound
from atdata_core.plugins import STORAGE_S3_NSID, RecordUrl, RetryPolicy, ShardRef, StorageBase, get_config

from atdata_storage_s3._location import S3Location
from atdata_storage_s3._policy import check_record_endpoint
from atdata_storage_s3.settings import MAX_PART_SIZE, S3Settings, normalize_endpoint

__all__ = ["S3Storage"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_READ_BUFFER = 1 << 20
# One read from the connection at most: a dropped connection loses the bytes of the read in
# progress, so this bounds what a resume asks for again.
_READ_CHUNK = 1 << 20
_MAX_PARTS = 10_000  # S3's limit on the parts of one upload
_MISSING_OBJECT = {"NoSuchKey", "404", "NotFound"}
_REFUSED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
}

# Failures of the connection, as opposed to answers from the server: a read resumes after them.
_DROPPED = (
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.EndpointConnectionError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
    http.client.IncompleteRead,
    ConnectionError,
    TimeoutError,
)


@attrs.frozen
class _Target:
    """How to reach one bucket: which service, as whom."""

    endpoint: str | None  # None: AWS S3
    region: str | None
    profile: str | None
    addressing_style: str
    signed: bool  # False: anonymous requests

    def describe(self) -> str:
        where = self.endpoint or "AWS S3"
        if not self.signed:
            return f"{where}, anonymously"
        who = f"AWS profile {self.profile!r}" if self.profile else "the default AWS credential chain"
        return f"{where}, with credentials from {who}"


class S3Storage(StorageBase):
    """Shard storage in S3 buckets (see the module docstring).

    ``settings`` is the ``[s3]`` section as :class:`~atdata_storage_s3.settings.S3Settings`
    (atdata passes it; the defaults otherwise). ``retry`` is the core's
    :class:`~atdata_core.plugins.RetryPolicy`, ``[http]`` unless given: its
    ``retries`` and ``timeout`` apply to every request and its ``retries``
    and ``backoff`` to resuming a dropped read.

    >>> storage = S3Storage(S3Settings(endpoint="https://minio.example.com"))  # doctest: +SKIP
    >>> storage.list("s3://datasets/mnist")                                      # doctest: +SKIP
    ['s3://datasets/mnist/train-000000.tar', 's3://datasets/mnist/train-000001.tar']
    """

    def __init__(self, settings: S3Settings | None = None, *, retry: RetryPolicy | None = None):
        self.settings = settings if settings is not None else S3Settings()
        self.policy = retry if retry is not None else RetryPolicy.from_config(get_config())
        self._lock = threading.Lock()
        self._clients: dict[_Target, Any] = {}
        self._checked_buckets: set[tuple[_Target, str]] = set()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        endpoint = self.settings.endpoint or "AWS S3"
        return f"S3Storage(endpoint={endpoint!r}, buckets={sorted(self.settings.buckets)!r})"

    # -- where a URL goes ----------------------------------------------------

    def _configured(self, bucket: str) -> _Target:
        own = self.settings.for_bucket(bucket)
        return _Target(own.endpoint, own.region, own.profile, own.addressing_style or "auto", True)

    def _target(self, location: S3Location) -> _Target:
        configured = self._configured(location.bucket)
        if location.endpoint is None or location.endpoint == configured.endpoint:
            return configured
        # An endpoint named by the URL (a stranger's record) and not configured for this bucket:
        # anonymous, so that no credential of yours is ever sent to it.
        return _Target(location.endpoint, None, None, "path", False)

    def _client(self, target: _Target) -> Any:
        if self._pid != os.getpid():
            # A forked data-loader worker must not share the parent's pooled sockets, nor wait on a
            # lock another thread of the parent held when it forked.
            self._lock = threading.Lock()
        with self._lock:
            if self._pid != os.getpid():
                self._clients = {}
                self._checked_buckets = set()
                self._pid = os.getpid()
            client = self._clients.get(target)
            if client is None:
                client = self._clients[target] = self._build_client(target)
            return client

    def _build_client(self, target: _Target) -> Any:
        # boto3 sessions are not thread-safe: one per client, built under the lock.
        try:
            session = boto3.session.Session(profile_name=target.profile)
            signed = target.signed and session.get_credentials() is not None
        except botocore.exceptions.ProfileNotFound:
            raise StorageError(
                f"the AWS profile {target.profile!r} set in [s3] (or a [s3.buckets.NAME] table) is not in "
                "your AWS config files (~/.aws/config, ~/.aws/credentials); add it or change the setting"
            ) from None
        except botocore.exceptions.BotoCoreError as err:
            raise StorageError(f"cannot load AWS credentials for {target.describe()}: {err}") from err
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "total_max_attempts": self.policy.retries + 1},
            "connect_timeout": self.policy.timeout,
            "read_timeout": self.policy.timeout,
            "max_pool_connections": max(10, 2 * self.settings.max_concurrency),
            "s3": {"addressing_style": target.addressing_style},
            "user_agent_extra": "atdata-storage-s3",
        }
        if target.endpoint is not None:
            # Many S3-compatible services refuse the newer default checksum headers; shards carry
            # their own sha256, which readers verify.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        if not signed:
            options["signature_version"] = UNSIGNED
        return session.client(
            "s3", endpoint_url=target.endpoint, region_name=target.region, config=BotoConfig(**options)
        )

    def _locate(self, url: str, *, object_required: bool = True) -> tuple[S3Location, _Target, Any]:
        location = S3Location.parse(url)
        if object_required and not location.key:
            raise StorageNotFound(f"{url} names a bucket, not an object: add the key (s3://bucket/key)")
        target = self._target(location)
        return location, target, self._client(target)

    # -- reading -------------------------------------------------------------

    def open(self, url: str) -> BinaryIO:
        location, target, client = self._locate(url)
        if isinstance(url, RecordUrl) and not target.signed and location.endpoint is not None:
            # Judged when the record was mapped; again now, by what its host name resolves to today.
            check_record_endpoint(location.endpoint, record=url.named_by or "a record", policy=url.policy)
        response = self._call("GET", url, target, client.get_object, Bucket=location.bucket, Key=location.key)
        limit = url.max_bytes if isinstance(url, RecordUrl) else None
        if limit is not None and int(response["ContentLength"]) > limit:
            response["Body"].close()
            raise StorageError(
                f"{url} is {int(response['ContentLength']):,} bytes, more than its record "
                f"({url.named_by or 'the entry'}) says the shard holds; not read"
            )
        body = _ResumableBody(self, url, target, client, location, response)
        return io.BufferedReader(body, buffer_size=_READ_BUFFER)  # type: ignore[return-value]

    def size(self, url: str) -> int | None:
        location, target, client = self._locate(url)
        return int(self._head(url, location, target, client)["ContentLength"])

    def _head(self, url: str, location: S3Location, target: _Target, client: Any) -> Any:
        try:
            return self._call("HEAD", url, target, client.head_object, Bucket=location.bucket, Key=location.key)
        except StorageNotFound:
            # A HEAD answer has no body to say whether the key or the whole bucket is missing: ask.
            try:
                client.head_bucket(Bucket=location.bucket)
            except botocore.exceptions.ClientError as err:
                if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket", "NotFound"):
                    raise StorageNotFound(
                        f"HEAD {url}: there is no bucket {location.bucket!r} at {target.endpoint or 'AWS S3'}"
                    ) from None
            except botocore.exceptions.BotoCoreError:
                pass
            raise

    def list(self, prefix: str) -> list[str]:
        location, target, client = self._locate(prefix, object_required=False)
        folder = location.key.rstrip("/")
        found: list[str] = []
        if folder:
            # The object named exactly `folder` sorts first among the keys starting with it.
            first = self._call("LIST", prefix, target, client.list_objects_v2,
                               Bucket=location.bucket, Prefix=folder, MaxKeys=1)
            if any(item["Key"] == folder for item in first.get("Contents", ())):
                found.append(location.url(folder))
        below = f"{folder}/" if folder else ""
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=below)
        try:
            for page in pages:
                found.extend(location.url(item["Key"]) for item in page.get("Contents", ()))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            raise self._error(err, "LIST", prefix, target) from err
        return sorted(found)

    # -- writing -------------------------------------------------------------

    def put(self, local_path: str | os.PathLike[str], url: str) -> str:
        source = os.fspath(local_path)
        if not os.path.isfile(source):
            raise StorageNotFound(f"cannot put {source} at {url}: no such local file")
        location, target, client = self._locate(url)
        size = os.path.getsize(source)
        if size <= self.settings.part_size:
            with open(source, "rb") as body:  # botocore rewinds a seekable body before a retry
                self._call("PUT", url, target, client.put_object, Bucket=location.bucket, Key=location.key,
                           Body=body, ContentType="application/x-tar")
        else:
            self._put_multipart(source, size, url, location, target, client)
        return url

    def _put_multipart(self, source: str, size: int, url: str, location: S3Location, target: _Target,
                       client: Any) -> None:
        part_size = self.settings.part_size
        if math.ceil(size / part_size) > _MAX_PARTS:
            # S3 takes at most 10,000 parts: grow them (to a whole MiB) rather than fail.
            part_size = min(MAX_PART_SIZE, math.ceil(size / _MAX_PARTS / (1 << 20)) * (1 << 20))
        count = math.ceil(size / part_size)
        where = {"Bucket": location.bucket, "Key": location.key}
        created = self._call("PUT", url, target, client.create_multipart_upload, **where,
                             ContentType="application/x-tar")
        upload_id = created["UploadId"]

        def send(number: int) -> dict[str, Any]:
            with open(source, "rb") as handle:
                handle.seek((number - 1) * part_size)
                data = handle.read(part_size)
            sent = self._call(f"PUT (part {number} of {count})", url, target, client.upload_part, **where,
                              UploadId=upload_id, PartNumber=number, Body=data)
            return {"ETag": sent["ETag"], "PartNumber": number}

        try:
            with ThreadPoolExecutor(max_workers=min(self.settings.max_concurrency, count),
                                    thread_name_prefix="atdata-s3-part") as pool:
                futures = [pool.submit(send, number) for number in range(1, count + 1)]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = next((f for f in done if f.exception() is not None), None)
                if failed is not None:
                    for future in futures:
                        future.cancel()
                    raise failed.exception()  # type: ignore[misc]
                parts = [future.result() for future in futures]
            self._call("PUT", url, target, client.complete_multipart_upload, **where, UploadId=upload_id,
                       MultipartUpload={"Parts": parts})
        except BaseException:
            # Leave no upload behind: an unfinished one keeps its parts (and their cost) until aborted.
            try:
                client.abort_multipart_upload(**where, UploadId=upload_id)
            except Exception:  # the failure that got us here matters more
                pass
            raise

    def check_put(self, local_path: str | os.PathLike[str], url: str) -> None:
        """Raise what :meth:`put` would for ``url``'s bucket, before anything is uploaded.

        Publishing local shards calls it for every shard first, so a missing
        bucket or refused credentials stop a dataset before its first shard
        is placed. A bucket that answered is not asked again.
        """
        location, target, client = self._locate(url)
        if len(location.key) > 1024:
            raise StorageError(f"{url}: S3 keys are at most 1024 characters")
        with self._lock:
            if (target, location.bucket) in self._checked_buckets:
                return
        try:
            self._call("PUT", url, target, client.head_bucket, Bucket=location.bucket)
        except StorageNotFound:
            raise StorageError(
                f"PUT {url}: there is no bucket {location.bucket!r} at {target.endpoint or 'AWS S3'}; create it "
                "first, or check the bucket name and [s3] endpoint"
            ) from None
        with self._lock:
            self._checked_buckets.add((target, location.bucket))

    def delete(self, url: str) -> None:
        location, target, client = self._locate(url)
        # S3 answers a DELETE of a missing key with success; the contract says StorageNotFound.
        self._head(url, location, target, client)
        self._call("DELETE", url, target, client.delete_object, Bucket=location.bucket, Key=location.key)

    # -- records -------------------------------------------------------------

    def to_storage_record(self, shards: Sequence[ShardRef]) -> dict[str, Any]:
        """A ``storageS3`` member for shards in one bucket: bucket, its endpoint and region, keys and sha256s.

        The endpoint and region are the ones the shards' URLs reach (your
        configuration for ``s3://``, the URL's own for ``s3+https://``), so
        anyone who may read the bucket can. Credentials are never recorded.
        """
        refs = [_as_ref(shard) for shard in shards]
        if not refs:
            raise StorageError("a storage record needs at least one shard")
        locations = [S3Location.parse(ref.url) for ref in refs]
        places = {(loc.bucket, self._target(loc).endpoint) for loc in locations}
        if len(places) > 1:
            listed = ", ".join(f"{bucket} at {endpoint or 'AWS S3'}" for bucket, endpoint in sorted(places, key=str))
            raise StorageError(
                f"a storageS3 record lists shards of one bucket; these are in {listed}: publish one entry per bucket"
            )
        entries = []
        for ref, location in zip(refs, locations, strict=True):
            if not location.key:
                raise StorageError(f"{ref.url} names a bucket, not a shard")
            if len(location.key) > 1024:
                raise StorageError(f"shard key longer than 1024 characters: {location.key[:80]}...")
            digest = (ref.sha256 or "").lower()
            if not _HEX64.match(digest):
                raise StorageError(f"shard {ref.url} needs a sha256 hex digest (64 hex digits), got {ref.sha256!r}")
            entries.append({"key": location.key, "checksum": {"algorithm": "sha256", "digest": digest}})
        first = locations[0]
        target = self._target(first)
        record: dict[str, Any] = {"$type": STORAGE_S3_NSID, "bucket": first.bucket}
        if target.endpoint is not None:
            record["endpoint"] = target.endpoint
        region = target.region
        if region is None and target.endpoint is None:
            region = self._client(target).meta.region_name
        if region and _REGION.match(region) and region != "aws-global":
            record["region"] = region
        record["shards"] = entries
        return record

    def from_storage_record(self, record: Mapping[str, Any]) -> list[ShardRef]:
        """The shards of a ``storageS3`` member, as URLs this backend opens, in order.

        A record naming the endpoint you configured for its bucket (or no
        endpoint, for a bucket you did not point elsewhere) maps to
        ``s3://bucket/key``, read with your credentials. Any other endpoint
        maps to ``s3+https://host/bucket/key``, read anonymously, and only
        if the network policy (``[network]``) allows the endpoint: by default
        https, and a host that neither names nor resolves to a loopback,
        link-local or private address. A refused endpoint raises
        :class:`~atdata_core.errors.NetworkPolicyError`.
        """
        record_type = record.get("$type") if isinstance(record, Mapping) else None
        if not isinstance(record, Mapping) or record_type not in (STORAGE_S3_NSID, f"{STORAGE_S3_NSID}#main", None):
            raise RecordError(f"expected a {STORAGE_S3_NSID} storage record, got $type {record_type!r}")
        bucket = record.get("bucket")
        if not isinstance(bucket, str) or not bucket or len(bucket) > 255 or any(c in bucket for c in "/\\?# \t\r\n"):
            raise RecordError(f"{STORAGE_S3_NSID} record: $.bucket must be a bucket name, got {bucket!r:.100}")
        shards = record.get("shards")
        if not isinstance(shards, list) or not shards:
            raise RecordError(f"{STORAGE_S3_NSID} record: $.shards must be a non-empty list")
        endpoint = record.get("endpoint")
        if endpoint is not None:
            try:
                endpoint = normalize_endpoint(endpoint)
            except ValueError as err:
                raise RecordError(f"{STORAGE_S3_NSID} record: $.endpoint: {err}") from None
        region = record.get("region")
        region = region if isinstance(region, str) and _REGION.match(region) else None

        base = S3Location(bucket, "")
        if endpoint != self._configured(bucket).endpoint:
            if endpoint is None:
                # AWS S3, while your configuration sends this bucket name elsewhere.
                endpoint = f"https://s3.{region}.amazonaws.com" if region else "https://s3.amazonaws.com"
            else:
                check_record_endpoint(endpoint, record=f"the {STORAGE_S3_NSID} record for bucket {bucket!r}")
            base = S3Location(bucket, "", endpoint)

        out: list[ShardRef] = []
        for index, shard in enumerate(shards):
            key = shard.get("key") if isinstance(shard, Mapping) else None
            if not isinstance(key, str) or not key or len(key) > 1024:
                raise RecordError(f"{STORAGE_S3_NSID} record: $.shards[{index}].key must be an object key")
            checksum = shard.get("checksum")
            digest = None
            if isinstance(checksum, Mapping) and str(checksum.get("algorithm", "")).lower() == "sha256":
                value = checksum.get("digest")
                if isinstance(value, str) and _HEX64.match(value.lower()):
                    digest = value.lower()
            out.append(ShardRef(base.url(key), digest))
        return out

    # -- errors --------------------------------------------------------------

    def _call(self, what: str, url: str, target: _Target, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
            raise self._error(err, what, url, target) from err

    def _error(self, err: Exception, what: str, url: str, target: _Target) -> StorageError:
        """The atdata error for a boto3 failure: what happened, to which URL, and what to do."""
        if isinstance(err, botocore.exceptions.ClientError):
            error = err.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = error.get("Message") or ""
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                bucket = S3Location.parse(url).bucket
                text = f"{what} {url}: there is no bucket {bucket!r} at {target.endpoint or 'AWS S3'}"
                if what.startswith("PUT"):
                    return StorageError(f"{text}; create it first, or check the bucket name and [s3] endpoint")
                return StorageNotFound(text)
            if code in _MISSING_OBJECT:
                return StorageNotFound(f"no object at {url}")
            if code in _REFUSED or status == 403:
                return StorageError(
                    f"{what} {url} was refused ({code or status}{': ' + message if message else ''}). It was sent "
                    f"to {target.describe()}: check those credentials and their permissions on the bucket "
                    "(AWS_PROFILE or AWS_ACCESS_KEY_ID, ~/.aws/credentials, [s3] profile or [s3.buckets.NAME] "
                    "profile)"
                )
            return StorageError(f"{what} {url} failed: {code or status} {message}".rstrip())
        if isinstance(err, botocore.exceptions.EndpointConnectionError):
            return StorageError(f"{what} {url}: cannot reach {target.endpoint or 'AWS S3'} ({err}); check the "
                                "endpoint and your network")
        return StorageError(f"{what} {url} failed: {type(err).__name__}: {err}")


def _as_ref(shard: Any) -> ShardRef:
    if isinstance(shard, ShardRef):
        return shard
    if isinstance(shard, (tuple, list)):
        return ShardRef(*shard)
    return ShardRef(shard.url, getattr(shard, "sha256", None))


class _ResumableBody(io.RawIOBase):
    """An object's body that asks again from the first byte not yet delivered when the connection drops."""

    def __init__(self, storage: S3Storage, url: str, target: _Target, client: Any, location: S3Location,
                 response: Mapping[str, Any]):
        self._storage = storage
        self._url = url
        self._target = target
        self._client = client
        self._location = location
        self._body: Any = None
        self._wire: _Wire | None = None
        self._use(response["Body"])
        self._etag = response.get("ETag")
        self._total = int(response["ContentLength"])
        self._offset = 0
        self._failures = 0  # in a row, without progress in between

    def readable(self) -> bool:
        return True

    @property
    def length(self) -> int:
        """The bytes still to come: a reader may ask for large pieces, or read the object whole ahead."""
        return self._total - self._offset

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view) or self._offset >= self._total:
            return 0
        view = view[: min(self._total - self._offset, _READ_CHUNK)]
        while True:
            try:
                if self._body is None:
                    self._reopen()
                count = self._wire.readinto(view) if self._wire is not None else self._body.readinto(view)
            except _DROPPED as err:
                self._dropped(f"{type(err).__name__}: {err}")
                continue
            if not count:
                self._dropped(f"the body ended at byte {self._offset} of {self._total}")
                continue
            self._failures = 0
            self._offset += count
            if self._wire is not None and self._offset >= self._total:
                self._wire.done()
            return count

    def _use(self, body: Any) -> None:
        self._body = body
        self._wire = _Wire.of(body)

    def readall(self) -> bytes:
        # io.RawIOBase.readall reads 8 KiB at a time; read(-1) of a whole shard lands here.
        out = bytearray(self._total - self._offset)
        view = memoryview(out)
        filled = 0
        while filled < len(out):
            filled += self.readinto(view[filled:])
        view.release()
        return bytes(out)

    def _dropped(self, reason: str) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
            self._wire = None
        self._failures += 1
        retries = self._storage.policy.retries
        if self._failures > retries:
            raise StorageError(
                f"reading {self._url} failed at byte {self._offset} of {self._total} after {retries} "
                f"resumes: {reason}"
            )
        time.sleep(self._storage.policy.sleep_before(self._failures - 1))

    def _reopen(self) -> None:
        request: dict[str, Any] = {
            "Bucket": self._location.bucket,
            "Key": self._location.key,
            "Range": f"bytes={self._offset}-",
        }
        if self._etag:
            request["IfMatch"] = self._etag
        try:
            response = self._client.get_object(**request)
        except botocore.exceptions.ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "InvalidRange", "416"):
                raise StorageError(
                    f"{self._url} changed while it was being read (stopped at byte {self._offset} of "
                    f"{self._total}); read it again"
                ) from None
            raise self._storage._error(err, f"resuming at byte {self._offset}:", self._url, self._target) from err
        body = response["Body"]
        content_range = response.get("ContentRange")
        match = _CONTENT_RANGE.match(content_range or "")
        if match and int(match.group(1)) == self._offset:
            self._use(body)
            return
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 206 and content_range is None:
            # A partial answer without its Content-Range: its headers were cut off with the connection.
            body.close()
            raise ConnectionError("the answer to the resumed request ended inside its headers")
        if not match and int(response.get("ContentLength", -1)) == self._total:
            # A service that ignores Range sends the whole object: skip what was delivered.
            remaining = self._offset
            while remaining:
                chunk = body.read(min(remaining, _READ_BUFFER))
                if not chunk:
                    body.close()
                    raise http.client.IncompleteRead(b"", remaining)
                remaining -= len(chunk)
            self._use(body)
            return
        body.close()
        raise StorageError(
            f"{self._url}: resumed at byte {self._offset} but the service sent Content-Range "
            f"{response.get('ContentRange')!r}"
        )

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
            self._wire = None
        super().close()


class _Wire:
    """A body read straight from its HTTP response into the reader's buffer.

    botocore's body reads through urllib3, which reads each piece into memory
    of its own and copies it into the buffer given; this reads from the
    standard library's response underneath, so the socket fills the buffer
    itself: one copy of each byte instead of two. Used only for a plain body
    of announced length (neither chunked nor read before, nor checked by
    botocore against a checksum the service sent); any other is read through
    botocore as before. Once all of it is read, the connection goes back to
    the pool for the next request, as urllib3 would do.
    """

    __slots__ = ("_fp", "_raw")

    def __init__(self, raw: Any, fp: http.client.HTTPResponse):
        self._raw = raw
        self._fp = fp

    @classmethod
    def of(cls, body: Any) -> _Wire | None:
        if type(body) is not botocore.response.StreamingBody:
            return None  # botocore checks this one as it is read (against a checksum the service sent)
        raw = getattr(body, "_raw_stream", None)
        fp = getattr(raw, "_fp", None)
        if (
            not isinstance(fp, http.client.HTTPResponse)
            or fp.chunked
            or fp.length is None
            or getattr(raw, "_fp_bytes_read", None) != 0
            or not hasattr(raw, "release_conn")
        ):
            return None
        return cls(raw, fp)

    def readinto(self, view: memoryview) -> int:
        try:
            return self._fp.readinto(view)
        except (OSError, http.client.HTTPException) as err:
            # What urllib3 reports as a broken connection: resumed as one.
            raise ConnectionError(f"{type(err).__name__}: {err}") from err

    def done(self) -> None:
        """All the body was read: the connection may serve another request."""
        if self._fp.isclosed():
            self._raw.release_conn()
