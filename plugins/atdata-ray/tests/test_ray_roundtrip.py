"""atdata shards through Ray Data and back: typed columns, projection, verification, unique keys."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

pytest.importorskip("ray", reason="ray is not installed for this Python (see atdata-ray's pyproject.toml)")

import pyarrow as pa
import ray.cloudpickle
from atdata_ray import AtdataDatasink, AtdataDatasource, read_atdata, write_atdata

import atdata_core
from atdata_core import Dataset, DictSample, ShardWriter, packable

# Ray workers cannot import a test module: its classes and functions travel by value. A user's
# sample classes live in an installed package, which workers import by name.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@packable
class Patch:
    pixels: NDArray[np.uint8]
    features: NDArray[np.float32]
    label: int
    name: str
    score: float | None = None


def patches(count: int, seed: int = 0) -> list[Patch]:
    rng = np.random.default_rng(seed)
    return [
        Patch(
            pixels=rng.integers(0, 255, (2, 4, 4), dtype=np.uint8),
            features=rng.standard_normal(5).astype(np.float32),
            label=i,
            name=f"patch-{i}",
            score=None if i % 3 == 0 else i / 2,
        )
        for i in range(count)
    ]


def write_shards(folder: Path, samples: list[Patch], maxcount: int = 10) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    with ShardWriter(str(folder / "patches-%06d.tar"), maxcount=maxcount) as sink:
        for sample in samples:
            sink.write(sample)
    return sink.shards


def rows_by_label(rds) -> dict[str, np.ndarray]:
    """Every row of a Ray dataset as numpy columns, ordered by label (tasks finish in any order)."""
    batch = rds.take_batch(batch_size=1_000_000, batch_format="numpy")
    order = np.argsort(batch["label"], kind="stable")
    return {name: column[order] for name, column in batch.items()}


def assert_columns_equal(columns: dict[str, np.ndarray], samples: list[Patch]) -> None:
    assert columns["label"].tolist() == [s.label for s in samples]
    assert columns["name"].tolist() == [s.name for s in samples]
    np.testing.assert_array_equal(columns["pixels"], np.stack([s.pixels for s in samples]))
    np.testing.assert_array_equal(columns["features"], np.stack([s.features for s in samples]))
    assert columns["pixels"].dtype == np.uint8 and columns["features"].dtype == np.float32


def member_keys(shards) -> list[str]:
    keys = []
    for info in shards:
        with tarfile.open(info.path) as tar:
            keys += [m.name.removesuffix(".msgpack") for m in tar.getmembers()]
    return keys


# --------------------------------------------------------------------------- reading


def test_local_shards_read_as_typed_columns_equal_to_the_source(ray_session, tmp_path):
    samples = patches(35)
    shards = write_shards(tmp_path / "shards", samples)
    rds = read_atdata(str(tmp_path / "shards" / "patches-{000000..000003}.tar"), Patch)

    schema = rds.schema().base_schema
    assert schema.field("pixels").type == pa.fixed_shape_tensor(pa.uint8(), [2, 4, 4])
    assert schema.field("features").type == pa.fixed_shape_tensor(pa.float32(), [5])
    assert schema.field("label").type == pa.int64()
    assert schema.field("name").type == pa.string()
    columns = rows_by_label(rds)
    assert_columns_equal(columns, samples)
    assert rds.count() == 35 == sum(info.count for info in shards)


def test_one_read_task_per_shard_with_counts_and_sizes(ray_session, tmp_path):
    shards = write_shards(tmp_path / "shards", patches(35))
    datasource = AtdataDatasource(shards, Patch)
    tasks = datasource.get_read_tasks(parallelism=1)
    assert len(tasks) == 4
    assert [t.metadata.num_rows for t in tasks] == [10, 10, 10, 5]
    assert [t.metadata.input_files for t in tasks] == [(info.url,) for info in shards]
    assert datasource.estimate_inmemory_data_size() == sum(info.size for info in shards)
    # a pattern's shards have no recorded sizes: their storage says
    from_pattern = AtdataDatasource(str(tmp_path / "shards" / "*.tar"), Patch)
    assert from_pattern.estimate_inmemory_data_size() == sum(os.path.getsize(info.path) for info in shards)


def test_read_tasks_ignore_rank_and_world_size(ray_session, tmp_path, monkeypatch):
    """Ray Train sets RANK / WORLD_SIZE in its workers; a read task still reads its whole shard."""
    samples = patches(20)
    write_shards(tmp_path / "shards", samples)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    datasource = AtdataDatasource(str(tmp_path / "shards" / "*.tar"), Patch)
    read_in_process = [block for task in datasource.get_read_tasks(1) for block in task()]
    assert sum(block.num_rows for block in read_in_process) == 20

    env = {"RANK": "1", "WORLD_SIZE": "4"}
    rds = read_atdata(str(tmp_path / "shards" / "*.tar"), Patch, ray_remote_args={"runtime_env": {"env_vars": env}})
    assert sorted(rds.take_batch(100, batch_format="numpy")["label"].tolist()) == list(range(20))


def test_projection_reads_only_the_fields_asked_for(ray_session, tmp_path):
    samples = patches(12)
    write_shards(tmp_path / "shards", samples)
    source = str(tmp_path / "shards" / "*.tar")

    only = read_atdata(source, Patch, columns=["label", "pixels"])
    assert only.schema().names == ["label", "pixels"]
    batch = only.take_batch(100, batch_format="numpy")
    assert sorted(batch["label"].tolist()) == list(range(12))

    selected = read_atdata(source, Patch).select_columns(["name"])  # pushed down to the read tasks
    assert selected.schema().names == ["name"]
    assert sorted(selected.take_batch(100, batch_format="numpy")["name"].tolist()) == sorted(s.name for s in samples)

    with pytest.raises(ValueError, match="no field.*'nope'"):
        AtdataDatasource(source, Patch, columns=["nope"])


def test_a_dataset_goes_to_ray_with_its_stages(ray_session, tmp_path):
    samples = patches(30)
    shards = write_shards(tmp_path / "shards", samples)
    rds = Dataset[Patch](shards).filter(lambda s: s.label % 2 == 0).to_ray(columns=["label", "features"])
    batch = rds.take_batch(100, batch_format="numpy")
    assert sorted(batch["label"].tolist()) == list(range(0, 30, 2))
    assert batch["features"].shape == (15, 5)


def test_untyped_shards_read_as_their_columns(ray_session, tmp_path):
    samples = patches(8)
    write_shards(tmp_path / "shards", samples)
    columns = rows_by_label(read_atdata(str(tmp_path / "shards" / "*.tar")))
    assert_columns_equal(columns, samples)


def test_arrays_of_differing_shapes_become_ray_tensor_columns(ray_session, tmp_path):
    with ShardWriter(str(tmp_path / "ragged-%06d.tar")) as sink:
        for i in range(4):
            sink.write(DictSample(points=np.arange(i + 1, dtype=np.float64), label=i))
    batch = read_atdata(sink.shards).take_batch(10, batch_format="numpy")
    order = np.argsort(batch["label"])
    assert [batch["points"][i].tolist() for i in order] == [list(range(i + 1)) for i in range(4)]


def test_a_corrupt_shard_fails_the_read_naming_the_shard(ray_session, tmp_path):
    shards = write_shards(tmp_path / "shards", patches(30))
    bad = Path(shards[1].path)
    data = bytearray(bad.read_bytes())
    data[700] ^= 0xFF  # inside the first member's payload: the tar still parses, the sha256 does not match
    bad.write_bytes(bytes(data))

    with pytest.raises(Exception) as failure:
        read_atdata(shards, Patch).take_all()
    message = str(failure.value)
    assert bad.name in message and "sha256" in message.lower()

    # on_error="skip": the damaged shard is left out whole, the others read
    with pytest.warns(UserWarning, match=bad.name):
        skipped = [block.num_rows for task in AtdataDatasource(shards, Patch, on_error="skip").get_read_tasks(1)
                   for block in task()]
    assert sum(skipped) == 20
    # verify=False reads what is there
    assert read_atdata(shards, Patch, verify=False, on_error="skip").count() >= 20


# --------------------------------------------------------------------------- writing


def test_read_map_write_round_trip_with_keys_unique_across_tasks(ray_session, tmp_path):
    samples = patches(60)
    write_shards(tmp_path / "in", samples, maxcount=15)

    def brighten(batch: dict) -> dict:
        batch["pixels"] = batch["pixels"] // 2
        return batch

    rds = read_atdata(str(tmp_path / "in" / "*.tar"), Patch).map_batches(brighten, batch_format="numpy")
    sink = write_atdata(rds.repartition(3), str(tmp_path / "out"), Patch, maxcount=8)

    assert len({Path(info.path).name.split("-")[1] for info in sink.shards}) == 3  # one writer per task
    keys = member_keys(sink.shards)
    assert len(keys) == 60 == len(set(keys))
    loaded = sorted(Dataset[Patch](sink.shards), key=lambda s: s.label)
    assert [s.label for s in loaded] == list(range(60))
    for got, want in zip(loaded, samples):
        np.testing.assert_array_equal(got.pixels, want.pixels // 2)
        np.testing.assert_array_equal(got.features, want.features)
        assert got.name == want.name
        # a numpy batch has no missing floats: Ray's conversion made the None scores NaN
        assert got.score == want.score or (want.score is None and np.isnan(got.score))
    assert sum(info.count for info in sink.shards) == 60
    assert all(len(info.sha256) == 64 for info in sink.shards)


def test_rows_without_a_class_are_written_as_maps(ray_session, tmp_path):
    import ray.data

    rds = ray.data.from_items([{"x": np.full((2, 2), i, dtype=np.int16), "tag": f"t{i}"} for i in range(6)])
    sink = AtdataDatasink(str(tmp_path / "maps"))
    rds.write_datasink(sink)
    loaded = sorted(Dataset(sink.shards), key=lambda s: s.tag)
    assert [s.tag for s in loaded] == [f"t{i}" for i in range(6)]
    np.testing.assert_array_equal(loaded[3].x, np.full((2, 2), 3, dtype=np.int16))


def test_rows_missing_a_field_of_the_class_are_refused(ray_session, tmp_path):
    import ray.data

    rds = ray.data.from_items([{"label": 1}])
    with pytest.raises(Exception, match="pixels"):
        write_atdata(rds, str(tmp_path / "out"), Patch)


def test_the_datasink_writes_to_s3_from_every_task(ray_session, tmp_path, monkeypatch):
    pytest.importorskip("atdata_storage_s3", reason="atdata-storage-s3 is not installed")
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    from atdata_core.plugins import reset_plugins

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # the same settings here and, through Ray's runtime environment, in the write tasks
        env = {
            "ATDATA_S3_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_plugins()
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="ray-out")

        samples = patches(40)
        write_shards(tmp_path / "in", samples)
        rds = read_atdata(str(tmp_path / "in" / "*.tar"), Patch).repartition(2)
        sink = write_atdata(rds, "s3://ray-out/patches", Patch, maxcount=15,
                            ray_remote_args={"runtime_env": {"env_vars": env}})

        assert sink.shards and all(info.url.startswith("s3://ray-out/patches/part-") for info in sink.shards)
        listed = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(Bucket="ray-out")
        assert sorted(item["Key"] for item in listed["Contents"]) == sorted(
            info.url.removeprefix("s3://ray-out/") for info in sink.shards
        )
        loaded = sorted(Dataset[Patch](sink.shards), key=lambda s: s.label)  # read back, sha256 verified
        assert [s.name for s in loaded] == [s.name for s in samples]
        np.testing.assert_array_equal(loaded[9].pixels, samples[9].pixels)
        assert len(set(member_keys_of_remote(sink.shards, endpoint))) == 40
    finally:
        server.stop()


def member_keys_of_remote(shards, endpoint: str) -> list[str]:
    import io

    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = []
    for info in shards:
        bucket, key = info.url.removeprefix("s3://").split("/", 1)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            keys += [m.name.removesuffix(".msgpack") for m in tar.getmembers()]
    return keys


# --------------------------------------------------------------------------- the command line


def atdata(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "atdata_core.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300, check=False)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_atdata_ray_appears_among_the_plugins_commands():
    assert "ray" in atdata("--help").stdout
    listing = atdata("plugins").stdout
    assert "atdata-ray" in listing and "atdata_cli_commands" in listing


def test_atdata_ray_inspect_plans_the_read_without_a_cluster(tmp_path):
    write_shards(tmp_path / "shards", patches(25))
    out = atdata("ray", "inspect", str(tmp_path / "shards" / "*.tar")).stdout
    assert "read tasks: 3 (one per shard)" in out
    assert "pixels: extension<arrow.fixed_shape_tensor[value_type=uint8, shape=[2,4,4]" in out
    missing = atdata("ray", "inspect", str(tmp_path / "nothing-*.tar"), ok=False)
    assert missing.returncode != 0 and "no shards match" in missing.stderr


def test_atdata_ray_copy_reshards_on_a_running_cluster(ray_session, tmp_path):
    samples = patches(30)
    write_shards(tmp_path / "shards", samples)
    address = ray_session.get_runtime_context().gcs_address
    out = atdata("ray", "copy", str(tmp_path / "shards" / "*.tar"), str(tmp_path / "copy"),
                 "--maxcount", "7", "--address", address).stdout
    assert "30 samples" in out
    copied = sorted(Dataset(str(tmp_path / "copy" / "*.tar")), key=lambda s: s.label)
    assert [s.name for s in copied] == [s.name for s in samples]
    np.testing.assert_array_equal(copied[5].pixels, samples[5].pixels)


# --------------------------------------------------------------------------- published datasets


@pytest.mark.pds
def test_a_published_dataset_reads_by_reference_and_a_write_publishes(ray_session, login, federation, tmp_path):
    account, client = login("alice")
    schema = atdata_core.publish_schema(client, Patch, schema_id="com.example.patch", version="1.0.0")
    samples = patches(24)
    shards = write_shards(tmp_path / "shards", samples)
    entry = atdata_core.publish_dataset(client, "patches", shards, schema=schema, storage="blob")
    atdata_core.publish_label(client, "patches", entry, version="v1")

    remote = {"runtime_env": {"env_vars": federation.worker_env}}
    for ref in (f"@{account.handle}/patches", entry.uri, f"@{account.handle}/patches@v1"):
        columns = rows_by_label(read_atdata(ref, ray_remote_args=remote))
        assert_columns_equal(columns, samples)

    from atdata_ray import Publication

    rds = read_atdata(f"@{account.handle}/patches", Patch, ray_remote_args=remote)
    sink = AtdataDatasink(str(tmp_path / "halves"), Patch, maxcount=10, client=client,
                          publish=Publication(name="patches-copy", schema=schema, storage="blob"))
    rds.repartition(2).write_datasink(sink)
    assert sink.published is not None and sink.published.uri.startswith(f"at://{account.did}/")
    loaded = sorted(atdata_core.load(f"@{account.handle}/patches-copy", Patch), key=lambda s: s.label)
    assert [s.name for s in loaded] == [s.name for s in samples]
    np.testing.assert_array_equal(loaded[7].features, samples[7].features)
