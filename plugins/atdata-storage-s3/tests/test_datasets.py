"""Datasets on S3: written by ShardWriter straight to a bucket, read back typed, published as storageS3
entries on the local PDS and loaded by another account."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core.errors import ShardError, StorageError
from atdata_core.plugins import STORAGE_S3_NSID, Client, ShardRef

BUCKET = "atdata-tests"


@atdata_core.packable
class Patch:
    pixels: NDArray[np.uint8]
    label: str


def patches(count: int) -> list[Patch]:
    rng = np.random.default_rng(3)
    return [Patch(pixels=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), label=f"patch-{i}") for i in range(count)]


def test_shard_writer_writes_straight_to_s3(s3_config, admin, prefix):
    samples = patches(25)
    with atdata_core.ShardWriter(f"s3://{BUCKET}/{prefix}/patches-%06d.tar", maxcount=10) as sink:
        for sample in samples:
            sink.write(sample)
    assert [shard.url for shard in sink.shards] == [f"s3://{BUCKET}/{prefix}/patches-{i:06d}.tar" for i in range(3)]
    assert [shard.count for shard in sink.shards] == [10, 10, 5]
    keys = [item["Key"] for item in admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")["Contents"]]
    assert keys == [f"{prefix}/patches-{i:06d}.tar" for i in range(3)]

    by_pattern = atdata_core.Dataset(f"s3://{BUCKET}/{prefix}/patches-*.tar", sample_type=Patch)
    read = sorted(by_pattern, key=lambda patch: int(patch.label.split("-")[1]))
    assert [patch.label for patch in read] == [sample.label for sample in samples]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(read, samples, strict=True))
    verified = atdata_core.Dataset(shards=[ShardRef(s.url, s.sha256) for s in sink.shards], sample_type=Patch)
    assert len(list(verified)) == 25


def test_shard_writer_reports_a_bucket_that_does_not_exist(s3_config):
    with pytest.raises(ShardError, match="no bucket 'not-a-bucket'.*its bytes are kept at") as caught:
        with atdata_core.ShardWriter("s3://not-a-bucket/p-%06d.tar", maxcount=2) as sink:
            for sample in patches(3):
                sink.write(sample)
    kept = re.search(r"its bytes are kept at (\S+\.tar)", str(caught.value)).group(1)
    assert os.path.getsize(kept) > 0
    os.unlink(kept)


@pytest.fixture
def alice(federation, make_account):
    account = make_account("alice")
    return account, Client.login(account.handle, account.password, pds_url=account.pds_url)


def test_publish_local_shards_to_s3_and_load_them_typed(
    s3_config, moto_endpoint, alice, make_account, admin, prefix, tmp_path
):
    account, client = alice
    samples = patches(12)
    with atdata_core.ShardWriter(str(tmp_path / "shards" / "patches-%06d.tar"), maxcount=5) as sink:
        for sample in samples:
            sink.write(sample)
    schema = atdata_core.publish_schema(client, Patch, schema_id="com.example.patch", version="1.0.0")
    entry = atdata_core.publish_dataset(
        client, "patches", sink.shards, schema=schema, storage=f"s3://{BUCKET}/{prefix}/"
    )
    storage = entry.record["storage"]
    assert storage["$type"] == STORAGE_S3_NSID
    assert storage["bucket"] == BUCKET
    assert [shard["key"] for shard in storage["shards"]] == [f"{prefix}/patches-{i:06d}.tar" for i in range(3)]
    assert [shard["checksum"]["digest"] for shard in storage["shards"]] == [s.sha256 for s in sink.shards]
    assert storage["endpoint"] == moto_endpoint
    assert admin.head_object(Bucket=BUCKET, Key=f"{prefix}/patches-000000.tar")["ContentLength"] == sink.shards[0].size

    # Bob, on another machine with the same bucket configured, loads it typed by reference.
    bob = make_account("bob")
    Client.login(bob.handle, bob.password, pds_url=bob.pds_url)
    dataset = atdata_core.load(f"@{account.handle}/patches", Patch)
    read = sorted(dataset, key=lambda patch: int(patch.label.split("-")[1]))
    assert [patch.label for patch in read] == [sample.label for sample in samples]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(read, samples, strict=True))
    # Without a class: one built from the published schema.
    assert sorted(p.label for p in atdata_core.load(entry.uri))[:2] == ["patch-0", "patch-1"]


def test_publishing_to_a_missing_bucket_places_nothing(s3_config, alice, tmp_path):
    _account, client = alice
    with atdata_core.ShardWriter(str(tmp_path / "shards" / "patches-%06d.tar"), maxcount=5) as sink:
        for sample in patches(6):
            sink.write(sample)
    schema = atdata_core.publish_schema(client, Patch, schema_id="com.example.patch", version="1.0.0")
    with pytest.raises(StorageError, match=r"(?s)2 of 2 shards cannot be placed.*no bucket 'no-such-bucket'") as caught:
        atdata_core.publish_dataset(client, "patches", sink.shards, schema=schema, storage="s3://no-such-bucket/x/")
    assert "nothing was placed or published" in str(caught.value)
