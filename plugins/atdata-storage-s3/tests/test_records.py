"""storageS3 records: what they map to, and which endpoints a stranger's record may name."""

from __future__ import annotations

import hashlib

import pytest

from atdata_core.errors import NetworkPolicyError, RecordError, StorageError
from atdata_core.plugins import (
    STORAGE_S3_NSID,
    NetworkPolicy,
    RecordUrl,
    ShardRef,
    get_config,
    storage_backend,
    storage_record_mapper,
)
from atdata_storage_s3.settings import S3Settings
from atdata_storage_s3.storage import S3Storage

BUCKET = "atdata-tests"
DIGEST = "ab" * 32


def record(bucket: str = BUCKET, endpoint: str | None = None, region: str | None = None, key: str = "set/a.tar"):
    value = {"$type": STORAGE_S3_NSID, "bucket": bucket, "shards": [
        {"key": key, "checksum": {"algorithm": "sha256", "digest": DIGEST}}]}
    if endpoint is not None:
        value["endpoint"] = endpoint
    if region is not None:
        value["region"] = region
    return value


@pytest.fixture
def mapper(s3_config):
    return storage_record_mapper(STORAGE_S3_NSID)


def test_the_configured_endpoint_of_a_bucket_maps_to_s3_urls(mapper, moto_endpoint):
    # Spelled differently (case, trailing slash): the same endpoint.
    shards = mapper.from_storage_record(record(endpoint=moto_endpoint.upper().replace("HTTP", "http") + "/"))
    assert shards == [ShardRef(f"s3://{BUCKET}/set/a.tar", DIGEST)]


def test_a_per_bucket_endpoint_is_recorded_and_maps_back(mapper, cutting_proxy):
    written = mapper.to_storage_record([ShardRef("s3://atdata-proxied/set/a.tar", DIGEST)])
    assert written["endpoint"] == cutting_proxy.endpoint
    assert written["region"] == "us-east-1"
    assert mapper.from_storage_record(written) == [ShardRef("s3://atdata-proxied/set/a.tar", DIGEST)]


def test_another_https_endpoint_maps_to_a_qualified_url(mapper):
    shards = mapper.from_storage_record(record(endpoint="https://Storage.Example.org:443/"))
    assert shards == [ShardRef(f"s3+https://storage.example.org/{BUCKET}/set/a.tar", DIGEST)]
    # ... which the same backend serves, and which records back to the same endpoint.
    assert storage_backend(shards[0].url) is mapper
    assert mapper.to_storage_record(shards)["endpoint"] == "https://storage.example.org"


def test_a_record_for_aws_maps_to_aws_when_the_bucket_is_configured_elsewhere(mapper):
    assert mapper.from_storage_record(record(region="eu-west-2"))[0].url == (
        f"s3+https://s3.eu-west-2.amazonaws.com/{BUCKET}/set/a.tar"
    )
    assert mapper.from_storage_record(record())[0].url == f"s3+https://s3.amazonaws.com/{BUCKET}/set/a.tar"


def test_a_record_for_aws_maps_to_s3_urls_when_nothing_points_the_bucket_elsewhere():
    backend = S3Storage(S3Settings())
    assert backend.from_storage_record(record(region="eu-west-2"))[0].url == f"s3://{BUCKET}/set/a.tar"


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://storage.example.org",
        "https://127.0.0.1:9000",
        "https://10.1.2.3",
        "https://169.254.169.254",
        "https://[::1]:9000",
        "https://localhost:9000",
        "https://[::ffff:127.0.0.1]",
    ],
)
def test_a_stranger_cannot_point_the_loader_at_private_or_clear_text_endpoints(mapper, endpoint):
    with pytest.raises(NetworkPolicyError, match="refused") as caught:
        mapper.from_storage_record(record(endpoint=endpoint))
    assert "for bucket 'atdata-tests'" in str(caught.value)


def test_the_user_may_configure_such_an_endpoint_for_a_bucket(s3_config, moto_endpoint):
    # The moto server is on loopback over http: configured by the user, it is the user's.
    mapper = storage_record_mapper(STORAGE_S3_NSID)
    assert mapper.from_storage_record(record(endpoint=moto_endpoint))[0].url.startswith("s3://")
    s3_config(tables='[s3.buckets.elsewhere]\nendpoint = "http://127.0.0.1:1"\n')
    mapper = storage_record_mapper(STORAGE_S3_NSID)
    assert mapper.from_storage_record(record(bucket="elsewhere", endpoint="http://127.0.0.1:1"))[0].url == (
        "s3://elsewhere/set/a.tar"
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"$type": "com.example.other"}, "expected a science.alt.dataset.storageS3"),
        ({"bucket": ""}, "bucket must be a bucket name"),
        ({"bucket": "a/b"}, "bucket must be a bucket name"),
        ({"shards": []}, "non-empty list"),
        ({"shards": [{"checksum": {}}]}, r"shards\[0\].key"),
        ({"endpoint": "https://user:pw@storage.example.org"}, "user name or password"),
        ({"endpoint": "ftp://storage.example.org"}, "http:// or https://"),
        ({"endpoint": "https://storage.example.org/base/path"}, "without a path"),
    ],
)
def test_malformed_records_are_refused_saying_what_is_wrong(mapper, bad, message):
    value = {**record(), **bad}
    with pytest.raises(RecordError, match=message):
        mapper.from_storage_record(value)


def test_a_record_lists_one_bucket_on_one_endpoint(mapper):
    with pytest.raises(StorageError, match="one bucket"):
        mapper.to_storage_record([ShardRef(f"s3://{BUCKET}/a.tar", DIGEST), ShardRef("s3://other/b.tar", DIGEST)])
    with pytest.raises(StorageError, match="one bucket"):
        mapper.to_storage_record([
            ShardRef(f"s3://{BUCKET}/a.tar", DIGEST),
            ShardRef(f"s3+https://storage.example.org/{BUCKET}/b.tar", DIGEST),
        ])


def test_an_unknown_checksum_algorithm_reads_as_unverifiable(mapper):
    value = record()
    value["shards"][0]["checksum"] = {"algorithm": "md5", "digest": "00" * 16}
    assert mapper.from_storage_record(value)[0].sha256 is None


def test_a_qualified_url_is_read_anonymously(s3_config, admin, moto_endpoint, prefix):
    """Credentials only go to configured endpoints: a URL naming another one reads public objects only."""
    public, private = f"{prefix}/public.tar", f"{prefix}/private.tar"
    admin.put_object(Bucket=BUCKET, Key=public, Body=b"public bytes", ACL="public-read")
    admin.put_object(Bucket=BUCKET, Key=private, Body=b"private bytes")
    # No endpoint configured: the loopback endpoint in the URL is not one of the user's.
    backend = S3Storage(S3Settings())
    host = moto_endpoint.removeprefix("http://")
    with backend.open(f"s3+http://{host}/{BUCKET}/{public}") as stream:
        assert stream.read() == b"public bytes"
    with pytest.raises(StorageError, match="anonymously"):
        backend.open(f"s3+http://{host}/{BUCKET}/{private}")
    # Configured for that bucket, the same URL is signed with the user's credentials.
    configured = S3Storage(S3Settings(endpoint=moto_endpoint))
    with configured.open(f"s3+http://{host}/{BUCKET}/{private}") as stream:
        assert stream.read() == b"private bytes"


def test_records_round_trip_through_the_registry_with_checksums(s3_config, tmp_path, prefix):
    backend = storage_backend("s3://x/y")
    source = tmp_path / "a.tar"
    source.write_bytes(b"shard")
    url = backend.put(source, f"s3://{BUCKET}/{prefix}/a.tar")
    digest = hashlib.sha256(b"shard").hexdigest()
    written = backend.to_storage_record([ShardRef(url, digest)])
    assert written["shards"] == [{"key": f"{prefix}/a.tar", "checksum": {"algorithm": "sha256", "digest": digest}}]
    assert backend.from_storage_record(written) == [ShardRef(url, digest)]


def test_the_network_policy_may_allow_a_record_named_endpoint(s3_config, admin, moto_endpoint, prefix):
    """[network] allow_hosts lets records name a server of your own; it is still read anonymously."""
    admin.put_object(Bucket=BUCKET, Key=f"{prefix}/public.tar", Body=b"public bytes", ACL="public-read")
    host = moto_endpoint.removeprefix("http://")
    backend = S3Storage(S3Settings())  # the moto endpoint is not configured for any bucket here
    value = record(endpoint=moto_endpoint, key=f"{prefix}/public.tar")
    with pytest.raises(NetworkPolicyError, match=r"allow_hosts"):
        backend.from_storage_record(value)

    s3_config(tables=f'[network]\nallow_hosts = ["{host}"]\n')
    [shard] = backend.from_storage_record(value)
    assert shard.url == f"s3+http://{host}/{BUCKET}/{prefix}/public.tar"
    # load() hands the backend the URL as a RecordUrl carrying the policy it passed.
    url = RecordUrl(shard.url, policy=NetworkPolicy.from_config(get_config()), named_by="at://did:plc:x/e/1",
                    recorded_bytes=12)
    with backend.open(url) as stream:
        assert stream.read() == b"public bytes"
    # The same URL under the default policy is refused when opened, not only when mapped.
    refused = RecordUrl(shard.url, policy=NetworkPolicy(), named_by="at://did:plc:x/e/1")
    with pytest.raises(NetworkPolicyError, match="at://did:plc:x/e/1"):
        backend.open(refused)


def test_an_object_larger_than_its_record_says_is_not_read(s3_config, admin, prefix):
    admin.put_object(Bucket=BUCKET, Key=f"{prefix}/big.tar", Body=b"x" * (3 << 20))
    backend = storage_backend("s3://x/y")
    url = RecordUrl(f"s3://{BUCKET}/{prefix}/big.tar", policy=NetworkPolicy(), named_by="at://did:plc:x/e/1",
                    recorded_bytes=1000)
    with pytest.raises(StorageError, match="more than its record .*at://did:plc:x/e/1.* says the shard holds"):
        backend.open(url)
