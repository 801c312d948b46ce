"""A batch's columns as numpy arrays and as an Arrow record batch; writers that share a dataset.

``SampleBatch.to_numpy()`` gives every field as an array (scalars too);
``SampleBatch.to_arrow()`` gives a ``pyarrow.RecordBatch`` whose array fields
are fixed-shape tensors over the batch's own memory. ``ShardWriter(key_prefix=)``
lets parallel writers fill one dataset without their keys colliding.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import Dataset, DictSample, SampleBatch, ShardWriter, packable
from atdata_core.errors import SampleTypeError


@packable
class Reading:
    image: NDArray[np.uint8]
    weights: NDArray[np.float32]
    label: int
    name: str
    score: float
    ok: bool
    tags: list[str]
    note: str | None = None


def readings(count: int) -> list[Reading]:
    rng = np.random.default_rng(1)
    return [
        Reading(
            image=rng.integers(0, 255, (3, 4, 5), dtype=np.uint8),
            weights=rng.standard_normal(6).astype(np.float32),
            label=i,
            name=f"r{i}",
            score=i / 4,
            ok=i % 2 == 0,
            tags=["t"] * (i % 3),
            note=None if i % 4 else f"note {i}",
        )
        for i in range(count)
    ]


@pytest.fixture
def batch(tmp_path) -> tuple[SampleBatch, list[Reading]]:
    samples = readings(40)
    with ShardWriter(str(tmp_path / "r-%06d.tar")) as sink:
        for sample in samples:
            sink.write(sample)
    batch = next(iter(Dataset[Reading](sink.shards).ordered(batch_size=32)))
    return batch, samples[:32]


def test_to_numpy_gives_every_field_as_an_array(batch):
    batch, samples = batch
    columns = batch.to_numpy()
    assert list(columns) == ["image", "weights", "label", "name", "score", "ok", "tags", "note"]
    assert columns["image"].shape == (32, 3, 4, 5) and columns["image"].dtype == np.uint8
    assert columns["label"].dtype == np.int64 and columns["label"].tolist() == list(range(32))
    assert columns["score"].dtype == np.float64
    assert columns["ok"].dtype == np.bool_
    assert columns["name"].dtype == object and columns["name"].tolist() == [s.name for s in samples]
    assert columns["tags"].tolist() == [s.tags for s in samples]  # lists stay lists, one per sample
    assert columns["note"].tolist() == [s.note for s in samples]
    np.testing.assert_array_equal(columns["image"], np.stack([s.image for s in samples]))
    assert columns["image"] is batch.image  # the stacked column itself, not a copy


def test_to_arrow_types_every_column_and_keeps_the_values(batch):
    pa = pytest.importorskip("pyarrow")
    batch, samples = batch
    record_batch = batch.to_arrow()
    assert isinstance(record_batch, pa.RecordBatch) and record_batch.num_rows == 32
    schema = record_batch.schema
    assert schema.field("image").type == pa.fixed_shape_tensor(pa.uint8(), [3, 4, 5])
    assert schema.field("weights").type == pa.fixed_shape_tensor(pa.float32(), [6])
    assert schema.field("label").type == pa.int64()
    assert schema.field("name").type == pa.string()
    assert schema.field("score").type == pa.float64()
    assert schema.field("ok").type == pa.bool_()
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("note").type == pa.string()
    np.testing.assert_array_equal(record_batch.column("image").to_numpy_ndarray(), np.stack([s.image for s in samples]))
    np.testing.assert_array_equal(record_batch.column("weights").to_numpy_ndarray(), np.stack([s.weights for s in samples]))
    assert record_batch.column("note").to_pylist() == [s.note for s in samples]
    assert record_batch.column("tags").to_pylist() == [s.tags for s in samples]


def test_to_arrow_shares_the_array_columns_memory(batch):
    pytest.importorskip("pyarrow")
    batch, _ = batch
    tensor = batch.to_arrow(["image"]).column("image")
    values = np.frombuffer(tensor.storage.values.buffers()[1], dtype=np.uint8)
    assert np.shares_memory(values, batch.image)


def test_to_arrow_chooses_and_orders_fields(batch):
    pytest.importorskip("pyarrow")
    batch, _ = batch
    assert batch.to_arrow(["label", "image"]).schema.names == ["label", "image"]
    assert list(batch.to_numpy(["name"])) == ["name"]
    assert batch.to_arrow([]).num_rows == 32  # no columns, as many rows (a count needs nothing more)
    with pytest.raises(AttributeError, match="nope"):
        batch.to_arrow(["nope"])


def test_arrays_of_differing_shapes_are_an_object_column_and_no_arrow_tensor():
    pytest.importorskip("pyarrow")
    batch = SampleBatch([DictSample(x=np.zeros(2), n=1), DictSample(x=np.zeros(3), n=2)])
    column = batch.to_numpy()["x"]
    assert column.dtype == object and [a.shape for a in column] == [(2,), (3,)]
    assert batch.to_numpy()["n"].dtype == np.int64
    with pytest.raises(SampleTypeError, match="'x'.*differing shapes"):
        batch.to_arrow()
    assert batch.to_arrow(["n"]).column("n").to_pylist() == [1, 2]


def test_untyped_batches_convert_too(tmp_path):
    pa = pytest.importorskip("pyarrow")
    with ShardWriter(str(tmp_path / "d-%06d.tar")) as sink:
        for sample in readings(5):
            sink.write(sample)
    batch = next(iter(Dataset(sink.shards).ordered(batch_size=5)))
    record_batch = batch.to_arrow()
    assert record_batch.schema.field("image").type == pa.fixed_shape_tensor(pa.uint8(), [3, 4, 5])
    assert record_batch.column("label").to_pylist() == [0, 1, 2, 3, 4]


def test_importing_the_core_does_not_import_pyarrow():
    probe = "import sys, atdata_core; atdata_core.SampleBatch; print('pyarrow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- writers sharing a dataset


def keys_of(shards) -> list[str]:
    keys = []
    for info in shards:
        with tarfile.open(info.path) as tar:
            keys += [member.name.removesuffix(".msgpack") for member in tar.getmembers()]
    return keys


def test_writers_with_key_prefixes_fill_one_dataset_without_colliding_keys(tmp_path):
    samples = readings(10)
    shards = []
    for task in range(3):
        with ShardWriter(str(tmp_path / f"part-{task:05d}-%06d.tar"), maxcount=2, key_prefix=f"{task:05d}-") as sink:
            for sample in samples:
                sink.write(sample)
        shards += sink.shards
    keys = keys_of(shards)
    assert len(keys) == 30 and len(set(keys)) == 30
    assert keys[:2] == ["00000-0000000000", "00000-0000000001"]
    assert [s.label for s in Dataset[Reading](shards)] == [s.label for s in samples] * 3


def test_writer_keys_start_at_zero_by_default(tmp_path):
    with ShardWriter(str(tmp_path / "a-%06d.tar")) as sink:
        sink.write(readings(1)[0])
    assert keys_of(sink.shards) == ["0000000000"]


def test_a_key_prefix_with_a_dot_is_refused(tmp_path):
    with pytest.raises(ValueError, match="key_prefix"):
        ShardWriter(str(tmp_path / "a-%06d.tar"), key_prefix="task.1-")


def test_to_ray_without_the_plugin_says_what_to_install(tmp_path, monkeypatch):
    with ShardWriter(str(tmp_path / "a-%06d.tar")) as sink:
        sink.write(readings(1)[0])
    monkeypatch.setitem(sys.modules, "atdata_ray", None)  # as if atdata-ray were not installed
    with pytest.raises(ImportError, match="pip install atdata-ray"):
        Dataset[Reading](sink.shards).to_ray()


@packable
class Plain:
    label: int
    name: str


@packable
class Point:
    x: int
    y: int


@packable
class Path:
    points: list[Point]
    start: Point | None
    name: str


@pytest.mark.parametrize("cls", [Plain, Path])
def test_batches_of_a_class_without_arrays_or_with_nested_classes_hold_the_samples_written(tmp_path, cls):
    def make(i):
        if cls is Plain:
            return Plain(label=i, name=f"s-{i}")
        return Path(points=[Point(i, j) for j in range(i % 3)], start=Point(i, -i) if i % 2 else None, name=f"s-{i}")

    with ShardWriter(str(tmp_path / "p-%02d.tar"), maxcount=10) as sink:
        for i in range(25):
            sink.write(make(i))
    batches = list(Dataset[cls](sink.shards).ordered(batch_size=8))
    assert [len(batch) for batch in batches] == [8, 8, 8, 1]
    assert [sample for batch in batches for sample in batch] == [make(i) for i in range(25)]
    assert batches[0].name == [f"s-{i}" for i in range(8)]
