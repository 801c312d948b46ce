"""What goes wrong with S3, against a real S3-compatible server: missing buckets and keys, refused
credentials, connections dropped mid-shard, objects replaced while read, damaged shards, and
multipart uploads (their parts, and their failures)."""

from __future__ import annotations

import hashlib
import os

import botocore.exceptions
import pytest
import requests

import atdata_core
from atdata_core.errors import ChecksumError, StorageError, StorageNotFound
from atdata_core.plugins import RetryPolicy, ShardRef, storage_backend
from atdata_storage_s3._location import S3Location
from atdata_storage_s3.settings import S3Settings
from atdata_storage_s3.storage import S3Storage

BUCKET = "atdata-tests"
PROXIED = "atdata-proxied"
MiB = 1024 * 1024


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def put(backend, tmp_path, url: str, data: bytes) -> str:
    local = tmp_path / f"upload-{hashlib.sha256(url.encode()).hexdigest()[:12]}.bin"
    local.write_bytes(data)
    return backend.put(local, url)


def read_in_chunks(stream, size: int = 65536) -> bytes:
    chunks = []
    with stream:
        while chunk := stream.read(size):
            chunks.append(chunk)
    return b"".join(chunks)


# -- missing things -----------------------------------------------------------


def test_a_missing_bucket_is_named(s3_config, tmp_path):
    backend = storage_backend("s3://x/y")
    url = "s3://no-such-bucket-here/data-000000.tar"
    for operation in (backend.open, backend.size, backend.delete):
        with pytest.raises(StorageNotFound, match="there is no bucket 'no-such-bucket-here'"):
            operation(url)
    with pytest.raises(StorageNotFound, match="no bucket"):
        backend.list("s3://no-such-bucket-here/set")
    assert backend.exists(url) is False
    source = tmp_path / "shard.tar"
    source.write_bytes(b"x")
    with pytest.raises(StorageError, match="no bucket 'no-such-bucket-here'.*create it first"):
        backend.put(source, url)


def test_a_missing_key(s3_config, prefix):
    backend = storage_backend("s3://x/y")
    url = f"s3://{BUCKET}/{prefix}/absent.tar"
    with pytest.raises(StorageNotFound, match=f"no object at {url}"):
        backend.open(url)
    with pytest.raises(StorageNotFound):
        atdata_core.storage.open_shard(url)


def test_a_bucket_is_not_an_object(s3_config):
    backend = storage_backend("s3://x/y")
    with pytest.raises(StorageNotFound, match="names a bucket, not an object"):
        backend.open(f"s3://{BUCKET}")


def test_urls_of_another_form_are_refused_saying_the_form(s3_config):
    backend = storage_backend("s3://x/y")
    with pytest.raises(StorageError, match="names no bucket"):
        backend.open("s3:///key.tar")
    with pytest.raises(StorageError, match="not an S3 URL.*use s3://bucket/key"):
        backend.open("s3+ftp://host/bucket/key")
    with pytest.raises(StorageError, match="user name or password"):
        backend.open("s3+https://user:secret@storage.example.org/bucket/key")


# -- credentials ----------------------------------------------------------------


@pytest.fixture
def server_checks_credentials(moto_endpoint):
    """Make the server check signatures against the accounts it knows (none), then stop again."""
    requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    try:
        yield
    finally:
        requests.post(f"{moto_endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_bad_credentials_are_reported_with_where_they_came_from(s3_config, admin, prefix, server_checks_credentials):
    s3_config('profile = "other"\n')
    backend = storage_backend("s3://x/y")
    url = f"s3://{BUCKET}/{prefix}/data.tar"
    with pytest.raises(StorageError, match=r"GET .* was refused \(InvalidAccessKeyId.*AWS profile 'other'") as caught:
        backend.open(url)
    assert not isinstance(caught.value, StorageNotFound)
    with pytest.raises(StorageError, match="was refused"):
        backend.list(f"s3://{BUCKET}/{prefix}")


def test_an_unknown_profile_is_named(s3_config):
    s3_config('profile = "nobody-has-this"\n')
    with pytest.raises(StorageError, match="AWS profile 'nobody-has-this'.*not in your AWS config files"):
        storage_backend("s3://x/y").open(f"s3://{BUCKET}/a.tar")


def test_credentials_are_never_recorded(s3_config, admin, prefix, tmp_path):
    s3_config('profile = "other"\n')
    backend = storage_backend("s3://x/y")
    record = backend.to_storage_record([ShardRef(f"s3://{BUCKET}/{prefix}/a.tar", "ab" * 32)])
    text = repr(record)
    assert "other" not in text and "testing" not in text
    assert set(record) == {"$type", "bucket", "endpoint", "region", "shards"}


# -- dropped connections ----------------------------------------------------------


def test_a_connection_dropped_mid_shard_resumes_with_range(s3_config, cutting_proxy, tmp_path, prefix):
    backend = storage_backend("s3://x/y")
    data = payload(3 * MiB, 1)
    url = put(backend, tmp_path, f"s3://{PROXIED}/{prefix}/data-000000.tar", data)
    cutting_proxy.arm(cut_after=1 * MiB, times=2)
    assert read_in_chunks(backend.open(url)) == data
    assert cutting_proxy.cuts_done == 2
    ranges = cutting_proxy.ranges()
    # The first GET asks for the whole object; each resume asks from the first byte not delivered.
    assert ranges[0] == ""
    resumed = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert len(resumed) == 2 and 0 < resumed[0] < resumed[1] < len(data)


def test_a_dropped_shard_is_resumed_under_a_dataset_and_verified(s3_config, cutting_proxy, prefix):
    with atdata_core.ShardWriter(f"s3://{PROXIED}/{prefix}/notes-%06d.tar", maxcount=4000) as sink:
        for index in range(8000):
            sink.write(Note(f"note {index:05d} " + "x" * 200))
    cutting_proxy.arm(cut_after=300_000, times=2)
    dataset = atdata_core.Dataset(shards=[ShardRef(s.url, s.sha256) for s in sink.shards], sample_type=Note)
    texts = [note.text for note in dataset]
    assert len(texts) == 8000 and texts[0].startswith("note 00000")
    assert cutting_proxy.cuts_done == 2
    assert any(r.startswith("bytes=") for r in cutting_proxy.ranges())


def test_a_connection_that_keeps_dropping_fails_with_where_it_stopped(cutting_proxy, admin, s3_config, tmp_path, prefix):
    backend = S3Storage(S3Settings(endpoint=cutting_proxy.endpoint), retry=RetryPolicy(retries=2, backoff=0.01))
    # Bigger than what loopback socket buffers hold, so the proxy is still sending when it is armed.
    data = payload(32 * MiB, 2)
    admin.put_object(Bucket=BUCKET, Key=f"{prefix}/data.tar", Body=data)
    url = f"s3://{BUCKET}/{prefix}/data.tar"
    stream = backend.open(url)
    assert stream.read(1000) == data[:1000]
    # From now on every connection is cut before its answer's headers end: no resume gets anywhere.
    cutting_proxy.arm(cut_after=100, times=1000)
    with pytest.raises(StorageError, match=r"reading .*data.tar failed at byte \d+ of 33554432 after 2 resumes"):
        read_in_chunks(stream)
    assert len(cutting_proxy.ranges()) >= 2, "each resume asked again"


def test_an_object_replaced_while_read_fails_the_read(s3_config, cutting_proxy, tmp_path, prefix):
    backend = storage_backend("s3://x/y")
    url = put(backend, tmp_path, f"s3://{PROXIED}/{prefix}/data.tar", payload(2 * MiB, 3))
    cutting_proxy.arm(cut_after=1 * MiB, times=1)
    stream = backend.open(url)
    first = stream.read(256 * 1024)
    put(backend, tmp_path, url, payload(2 * MiB, 4))  # a new version, while the old one is being read
    with pytest.raises(StorageError, match="changed while it was being read"):
        read_in_chunks(stream)
    assert first == payload(2 * MiB, 3)[: len(first)]


# -- checksums ------------------------------------------------------------------------


@atdata_core.packable
class Note:
    text: str


def test_a_damaged_shard_fails_its_checksum_naming_it(s3_config, admin, prefix):
    with atdata_core.ShardWriter(f"s3://{BUCKET}/{prefix}/notes-%06d.tar", maxcount=10) as sink:
        for index in range(20):
            sink.write(Note(f"note {index}"))
    damaged = sink.shards[1]
    key = damaged.url.removeprefix(f"s3://{BUCKET}/")
    body = bytearray(admin.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[600] ^= 0xFF  # inside the first sample's payload
    admin.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    dataset = atdata_core.Dataset(shards=[ShardRef(s.url, s.sha256) for s in sink.shards], sample_type=Note)
    with pytest.raises(ChecksumError) as caught:
        list(dataset)
    assert damaged.url in str(caught.value)


# -- multipart uploads ---------------------------------------------------------------------


def test_a_shard_over_the_part_size_is_uploaded_in_parts(s3_config, admin, tmp_path, prefix):
    backend = storage_backend("s3://x/y")
    assert backend.settings.part_size == 5 * MiB
    data = payload(12 * MiB + 123, 5)
    url = put(backend, tmp_path, f"s3://{BUCKET}/{prefix}/big.tar", data)
    head = admin.head_object(Bucket=BUCKET, Key=f"{prefix}/big.tar")
    assert head["ETag"].strip('"').endswith("-3"), "three parts: 5 MiB, 5 MiB and the rest"
    assert head["ContentType"] == "application/x-tar"
    assert read_in_chunks(backend.open(url)) == data
    assert not admin.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_shard_up_to_the_part_size_is_one_put(s3_config, admin, tmp_path, prefix):
    backend = storage_backend("s3://x/y")
    put(backend, tmp_path, f"s3://{BUCKET}/{prefix}/small.tar", payload(5 * MiB, 6))
    assert "-" not in admin.head_object(Bucket=BUCKET, Key=f"{prefix}/small.tar")["ETag"]


def test_a_failed_part_aborts_the_upload_and_leaves_nothing(s3_config, admin, tmp_path, prefix, monkeypatch):
    backend = S3Storage(S3Settings(endpoint=storage_backend("s3://x/y").settings.endpoint, part_size=5 * MiB),
                        retry=RetryPolicy(retries=0))
    url = f"s3://{BUCKET}/{prefix}/big.tar"
    client = backend._client(backend._target(S3Location.parse(url)))
    real = client.upload_part

    # A server that fails one part for good cannot be made here: moto accepts every part.
    def flaky(**kwargs):
        if kwargs["PartNumber"] == 2:
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="part 2")
        return real(**kwargs)

    monkeypatch.setattr(client, "upload_part", flaky)
    source = tmp_path / "big.tar"
    source.write_bytes(payload(11 * MiB, 7))
    with pytest.raises(StorageError, match=r"PUT \(part 2 of 3\)"):
        backend.put(source, url)
    assert not backend.exists(url), "readers never see a partial object"
    assert not admin.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), "the upload was aborted"
    assert os.path.exists(source)
