"""Publishing local shards as blobs of your own repository, and loading them from another account.

Alice and bob are two sandbox accounts; this process plays alice's machine,
then bob's (his own configuration folder, nothing of alice's but the network).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.errors import ChecksumError, RecordError, ServiceUnavailable, StorageError
from atdata_core.plugins import ENTRY_NSID, STORAGE_BLOBS_NSID, Client, reset_plugins
from atdata_storage_blob import SHARD_BLOB_NSID
from atdata_storage_blob._cid import blob_cid

LIMIT = 5 * 1024 * 1024  # the reference PDS's blobUploadLimit


@packable
class Patch:
    pixels: NDArray[np.uint8]
    label: str


def patches(count: int, side: int = 8, seed: int = 0) -> list[Patch]:
    rng = np.random.default_rng(seed)
    return [Patch(pixels=rng.integers(0, 255, (side, side), dtype=np.uint8), label=f"patch-{i}") for i in range(count)]


def write_shards(folder: Path, samples: list[Patch], prefix: str = "patches", **writer) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    with ShardWriter(str(folder / f"{prefix}-%06d.tar"), **writer) as sink:
        for sample in samples:
            sink.write(sample)
    return sink.shards


def atdata(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """The ``atdata`` command, as a user runs it (in this test's environment)."""
    done = subprocess.run([sys.executable, "-m", "atdata_core.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def assert_same(loaded: list, expected: list[Patch]) -> None:
    assert [p.label for p in loaded] == [p.label for p in expected]
    for got, want in zip(loaded, expected):
        np.testing.assert_array_equal(got.pixels, want.pixels)


@pytest.fixture
def uploads(monkeypatch):
    """Counts blob uploads; ``uploads.fail_at = n`` makes the n-th one fail as a PDS going away would."""

    class Counter:
        calls = 0
        fail_at: int | None = None

    original = Client.upload_blob

    def upload_blob(self, *args, **kwargs):
        Counter.calls += 1
        if Counter.fail_at is not None and Counter.calls == Counter.fail_at:
            raise ServiceUnavailable(f"{self.pds_url} did not answer com.atproto.repo.uploadBlob (injected)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Client, "upload_blob", upload_blob)
    return Counter


def records(client: Client, collection: str) -> list[dict]:
    return list(client.list_records(client.did, collection))


def on_bobs_machine(tmp_path: Path, monkeypatch, login) -> None:
    """Switch this process to bob's configuration folder, with bob logged in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "bob-config"))
    reset_plugins()
    login("bob")


# --------------------------------------------------------------------------- the story


def test_alice_publishes_local_shards_as_blobs_with_one_command_and_bob_loads_them_typed(
    login, tmp_path, monkeypatch
):
    alice_account, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    samples = patches(10)
    written = write_shards(tmp_path / "shards", samples, maxcount=4)
    assert len(written) == 3

    done = atdata("publish", "dataset", "patches", str(tmp_path / "shards" / "*.tar"), "--schema", schema.uri,
                  "--storage", "blob", "--tag", "toy")
    entry_uri = done.stdout.strip().splitlines()[-1]
    assert entry_uri.startswith(f"at://{alice_account.did}/{ENTRY_NSID}/")
    assert "3 shard(s), 10 samples" in done.stdout

    entry = alice.get_record_at(entry_uri)["value"]
    storage = entry["storage"]
    assert storage["$type"] == STORAGE_BLOBS_NSID
    assert [item["checksum"]["digest"] for item in storage["blobs"]] == [info.sha256 for info in written]
    for item, info in zip(storage["blobs"], written):
        assert item["blob"]["mimeType"] == "application/x-tar"
        assert item["blob"]["size"] == info.size
        assert item["blob"]["ref"]["$link"] == blob_cid(bytes.fromhex(info.sha256))
    assert entry["size"] == {"samples": 10, "bytes": sum(i.size for i in written), "shards": 3}

    on_bobs_machine(tmp_path, monkeypatch, login)
    resolved = atdata_core.resolve(f"@{alice_account.handle}/patches", Patch)
    assert [ref.url for ref in resolved.shards] == [
        f"atblob://{alice_account.did}/{blob_cid(bytes.fromhex(i.sha256))}" for i in written
    ]
    dataset = atdata_core.load(f"@{alice_account.handle}/patches", Patch)
    loaded = list(dataset)
    assert all(isinstance(p, Patch) for p in loaded)
    assert_same(loaded, samples)


def test_the_publish_default_comes_from_configuration_and_atdata_plugins_shows_it(login, tmp_path):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    write_shards(tmp_path / "shards", patches(3))
    pattern = str(tmp_path / "shards" / "*.tar")

    refused = atdata("publish", "dataset", "patches", pattern, "--schema", schema.uri, ok=False)
    assert refused.returncode == 1
    assert "local files cannot be published" in refused.stderr
    assert 'blob (atblob://; storage="blob")' in refused.stderr
    assert records(alice, SHARD_BLOB_NSID) == [] and records(alice, ENTRY_NSID) == []
    assert "publish storage: not set" in atdata("plugins").stdout

    (tmp_path / "atdata.toml").write_text('[publish]\nstorage = "blob"\n')
    shown = atdata("plugins").stdout
    assert f"publish storage: blob (storage backend 'blob'), from {tmp_path / 'atdata.toml'}" in shown
    done = atdata("publish", "dataset", "patches", pattern, "--schema", schema.uri)
    entry = alice.get_record_at(done.stdout.strip().splitlines()[-1])["value"]
    assert entry["storage"]["$type"] == STORAGE_BLOBS_NSID


def test_a_url_prefix_places_the_shards_under_it(login, tmp_path):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    written = write_shards(tmp_path / "shards", patches(4), maxcount=2)
    atdata_core.publish_dataset(alice, "patches", written, schema=schema,
                                storage=f"atblob://{alice.did}/datasets/patches/v1/")
    placed = atdata_core.Dataset(f"atblob://{alice.did}/datasets/patches/v1/*.tar", sample_type=Patch)
    assert [p.label for p in placed] == [f"patch-{i}" for i in range(4)]


def test_shard_writer_writes_straight_to_blobs_and_those_shards_publish(login, tmp_path, monkeypatch):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    samples = patches(5)
    with ShardWriter(f"atblob://{alice.did}/direct/patches-%06d.tar", maxcount=2, maxsize=LIMIT) as sink:
        for sample in samples:
            sink.write(sample)
    assert [info.url for info in sink.shards] == [f"atblob://{alice.did}/direct/patches-{i:06d}.tar" for i in range(3)]
    entry = atdata_core.publish_dataset(alice, "direct", sink.shards, schema=schema)
    assert entry.record["storage"]["$type"] == STORAGE_BLOBS_NSID

    on_bobs_machine(tmp_path, monkeypatch, login)
    assert_same(list(atdata_core.load(entry.uri, Patch)), samples)


# --------------------------------------------------------------------------- the blob limit


def test_a_dataset_over_the_blob_limit_is_refused_before_anything_is_uploaded(login, tmp_path, uploads):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    samples = patches(12, side=800, seed=1)  # 640,000 bytes of pixels each
    small = write_shards(tmp_path / "shards", samples[:2], prefix="small")
    big = write_shards(tmp_path / "shards", samples, prefix="big", maxsize=None)
    assert big[0].size > LIMIT

    with pytest.raises(StorageError) as refused:
        atdata_core.publish_dataset(alice, "patches", [*small, *big], schema=schema, storage="blob")
    message = str(refused.value)
    assert f"{big[0].size:,} bytes" in message and f"{LIMIT:,}-byte" in message
    assert f"ShardWriter(..., maxsize={LIMIT})" in message
    assert "nothing was placed or published" in message
    assert uploads.calls == 0
    assert records(alice, SHARD_BLOB_NSID) == [] and records(alice, ENTRY_NSID) == []

    # The maxsize the message gives makes shards that fit.
    rolled = write_shards(tmp_path / "rolled", samples, maxsize=LIMIT)
    assert len(rolled) > 1 and all(info.size <= LIMIT for info in rolled)
    entry = atdata_core.publish_dataset(alice, "patches", rolled, schema=schema, storage="blob")
    assert [item["blob"]["size"] for item in entry.record["storage"]["blobs"]] == [i.size for i in rolled]
    assert uploads.calls == len(rolled)


# --------------------------------------------------------------------------- failures


def test_a_failure_part_way_says_what_was_placed_and_a_retry_reuses_it(login, tmp_path, monkeypatch, uploads):
    alice_account, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    samples = patches(8)
    written = write_shards(tmp_path / "shards", samples, maxcount=2)
    assert len(written) == 4

    uploads.fail_at = 3
    with pytest.raises(StorageError) as failed:
        atdata_core.publish_dataset(alice, "patches", written, schema=schema, storage="blob")
    placed = failed.value.placed
    assert [ref.sha256 for ref in placed] == [info.sha256 for info in written[:2]]
    message = str(failed.value)
    assert "Placed before it (2 of 4)" in message and "Nothing was published" in message
    assert all(ref.url in message for ref in placed)
    assert "patches-000002.tar" in message and "injected" in message
    assert records(alice, ENTRY_NSID) == []

    uploads.fail_at, uploads.calls = None, 0
    entry = atdata_core.publish_dataset(alice, "patches", written, schema=schema, storage="blob")
    assert uploads.calls == 2  # the two shards placed before the failure were not uploaded again
    assert len(records(alice, SHARD_BLOB_NSID)) == 4

    on_bobs_machine(tmp_path, monkeypatch, login)
    assert_same(list(atdata_core.load(entry.uri, Patch)), samples)


def _blob_file(sandbox, did: str, cid: str) -> Path:
    found = [path for path in Path(sandbox.data_dir).rglob(cid) if did in str(path)]
    assert len(found) == 1, found
    return found[0]


def test_a_tampered_blob_fails_naming_the_shard(login, federation, tmp_path, monkeypatch):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    written = write_shards(tmp_path / "shards", patches(4), maxcount=2)
    entry = atdata_core.publish_dataset(alice, "patches", written, schema=schema, storage="blob")
    cid = entry.record["storage"]["blobs"][1]["blob"]["ref"]["$link"]

    stored = _blob_file(federation, alice.did, cid)
    data = bytearray(stored.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one bit pattern changed on the PDS's disk, same length
    stored.write_bytes(bytes(data))

    on_bobs_machine(tmp_path, monkeypatch, login)
    with pytest.raises(ChecksumError) as caught:
        list(atdata_core.load(entry.uri, Patch))
    message = str(caught.value)
    assert f"atblob://{alice.did}/{cid}" in message
    # Caught by the blob backend itself, against the CID, as the bytes streamed.
    assert f"sha256 (blob CID {cid}) mismatch" in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message


def test_a_record_whose_blob_cid_contradicts_its_checksum_is_refused_naming_the_shard(login, tmp_path, monkeypatch):
    _, alice = login("alice")
    schema = atdata_core.publish_schema(alice, Patch, schema_id="com.example.patch", version="1.0.0")
    written = write_shards(tmp_path / "shards", patches(4), maxcount=2)
    entry = atdata_core.publish_dataset(alice, "patches", written, schema=schema, storage="blob")

    forged = dict(entry.record)
    blobs = [dict(item) for item in forged["storage"]["blobs"]]
    # Shard 1's checksum under shard 0's blob: the CID says one thing, the checksum another.
    blobs[0]["blob"], blobs[1]["blob"] = blobs[1]["blob"], blobs[0]["blob"]
    forged["storage"] = {**forged["storage"], "blobs": blobs}
    forged_uri, _ = alice.create_record(ENTRY_NSID, forged)

    on_bobs_machine(tmp_path, monkeypatch, login)
    with pytest.raises(RecordError) as caught:
        atdata_core.load(forged_uri, Patch)
    wrong_cid = blobs[0]["blob"]["ref"]["$link"]
    assert "shard 0" in str(caught.value) and wrong_cid in str(caught.value)
