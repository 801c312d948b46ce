"""Hugging Face -> atdata shards -> Hugging Face gives the same features, dtypes and rows, on generated data."""

from __future__ import annotations

import pickle
from typing import Annotated

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core.plugins import Array, ListOf, Nested, Optional, Scalar, sample_fields, schema_format

from atdata_hf import UnsupportedFeature, features_of, from_hf, sample_type_from_features, to_hf
from hf_samples import every_kind_rows


from datasets import Image


def plain(value):
    """Python values, arrays as nested lists: a streamed dataset gives arrays where a map-style one gives lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def arrow_of(hf_dataset):
    return hf_dataset.with_format("arrow")[:]


def test_every_feature_kind_round_trips_with_its_dtypes(every_kind, tmp_path):
    done = from_hf(every_kind, str(tmp_path / "every-%03d.tar"), name="Every", maxcount=3, progress=False)
    assert [s.count for s in done.shards] == [3, 3, 1]

    back = to_hf(done.dataset, cache_dir=str(tmp_path / "cache"))
    assert back.features == every_kind.features
    original, returned = arrow_of(every_kind), arrow_of(back)
    assert returned.schema == original.schema      # uint8 stays uint8, float16 stays float16 in Arrow
    assert returned.equals(original)

    # read back as numpy without Hugging Face's default casts, every array has the dtype it went in with
    arrays = ["grid", "frames", "volume", "video", "point", "matrix", "legacy"]
    row = back.with_format("numpy", columns=arrays, dtype=None)[2]   # (decoding audio would need torchcodec)
    assert row["grid"].dtype == np.uint8 and row["grid"].shape == (3, 4)
    assert row["frames"].dtype == np.float32 and row["frames"].shape == (3, 2, 3)
    assert row["volume"].dtype == np.int16
    assert row["video"].dtype == np.float64
    assert row["point"].dtype == np.float32
    assert row["matrix"].dtype == np.int32 and row["matrix"].shape == (3, 2)
    assert row["legacy"].dtype == np.int8


def test_the_generated_class_types_each_feature(every_kind, tmp_path):
    cls = from_hf(every_kind, str(tmp_path / "every-%03d.tar"), name="Every", progress=False).sample_type
    fields = {f.name: f for f in sample_fields(cls)}
    assert cls.__name__ == "Every"
    assert fields["flag"].type == Scalar(bool)
    assert fields["u64"].type == Scalar(int) and fields["f16"].type == Scalar(float)
    assert fields["text"].type == Scalar(str) and fields["blob"].type == Scalar(bytes)
    # ClassLabel: an int whose names stay in the field's description
    assert fields["label"].type == Scalar(int)
    assert '"names": ["cat", "dog", "bird"]' in fields["label"].description
    # Array2D-5D and lists of numbers: NDArray with dtype and shape
    assert fields["grid"].type == Array(np.dtype("uint8"), (3, 4))
    assert fields["frames"].type == Array(np.dtype("float32"), (None, 2, 3))
    assert fields["video"].type == Array(np.dtype("float64"), (1, 2, 2, 2, 3))
    assert fields["point"].type == Array(np.dtype("float32"), (3,))
    assert fields["scores"].type == Array(np.dtype("float64"), (None,))
    assert fields["matrix"].type == Array(np.dtype("int32"), (3, 2))
    assert fields["rows"].type == Array(np.dtype("uint16"), (None, 2))
    assert fields["words"].type == ListOf(Scalar(str))
    assert fields["ragged"].type == ListOf(Array(np.dtype("float32"), (None,)))
    # nested features: nested classes
    meta = fields["meta"].type
    assert isinstance(meta, Nested)
    inner = {f.name: f.type for f in sample_fields(meta.cls)}
    assert inner["box"] == Array(np.dtype("float32"), (4,)) and isinstance(inner["inner"], Nested)
    assert isinstance(fields["spans"].type, ListOf) and isinstance(fields["spans"].type.item, Nested)
    # media: the encoded file
    assert fields["image"].type == Scalar(bytes) and fields["audio"].type == Scalar(bytes)
    # a column with missing values is optional, found from Arrow's null counts
    assert fields["maybe"].type == Optional(Scalar(int)) and not fields["maybe"].required
    assert all(f.required for name, f in fields.items() if name != "maybe")


def test_samples_read_back_as_the_values_that_went_in(every_kind, tmp_path):
    done = from_hf(every_kind, str(tmp_path / "every-%03d.tar"), name="Every", progress=False)
    samples = list(done.dataset)
    rows = every_kind_rows(7)
    assert len(samples) == 7
    for sample, row in zip(samples, rows):
        assert sample.u64 == row["u64"] and sample.text == row["text"] and sample.label == row["label"]
        np.testing.assert_array_equal(sample.frames, row["frames"])
        assert sample.frames.dtype == np.float32
        assert sample.meta.inner.ok == row["meta"]["inner"]["ok"]
        assert [s.tag for s in sample.spans] == [s["tag"] for s in row["spans"]]
        assert sample.image == row["image"]["bytes"] and sample.audio == row["audio"]["bytes"]
        assert sample.maybe == row["maybe"]


def test_an_iterable_dataset_streams_the_same_rows(every_kind, tmp_path):
    # Audio left out: Hugging Face encodes streamed Audio values through torchcodec, not installed here
    every_kind = every_kind.remove_columns(["audio"])
    done = from_hf(every_kind, str(tmp_path / "every-%03d.tar"), name="Every", maxcount=2, progress=False)
    streamed = to_hf(done.dataset, streaming=True)
    assert streamed.n_shards == 4
    assert streamed.features == every_kind.features
    # rows as Hugging Face gives them (images left encoded)
    undecoded = Image(decode=False)
    got = [plain(row) for row in streamed.cast_column("image", undecoded)]
    want = [plain(row) for row in every_kind.cast_column("image", undecoded)]
    assert got == want


def test_from_hf_reads_an_iterable_dataset_with_the_optional_fields_named(every_kind, tmp_path):
    streaming = every_kind.to_iterable_dataset(num_shards=2)
    done = from_hf(streaming, str(tmp_path / "s-%03d.tar"), name="Every", optional=["maybe"], progress=False)
    assert done.count == 7
    assert to_hf(done.dataset, cache_dir=str(tmp_path / "cache")).with_format("arrow")[:].equals(arrow_of(every_kind))


def test_a_missing_value_in_a_field_not_named_optional_says_what_to_do(every_kind, tmp_path):
    streaming = every_kind.to_iterable_dataset()
    with pytest.raises(atdata_core.errors.SampleTypeError, match=r"row 1, column maybe.*optional="):
        from_hf(streaming, str(tmp_path / "s-%03d.tar"), progress=False)


def test_a_rewritten_shard_gives_new_rows_not_the_cached_ones(tmp_path):
    from datasets import Dataset, Features, Value

    features = Features({"n": Value("int32"), "word": Value("string")})
    pattern = str(tmp_path / "words-%03d.tar")
    first = from_hf(Dataset.from_dict({"n": [1, 2], "word": ["a", "b"]}, features=features), pattern, progress=False)
    cache = str(tmp_path / "cache")
    assert to_hf(first.dataset, cache_dir=cache)["word"] == ["a", "b"]
    # the same shards again: the rows are taken from the cache
    again = to_hf(atdata_core.Dataset(first.shards, sample_type=first.sample_type), cache_dir=cache)
    assert again.cache_files == to_hf(first.dataset, cache_dir=cache).cache_files

    # the same shard path, new contents; the dataset read from a glob knows no checksum
    second = from_hf(Dataset.from_dict({"n": [3, 4], "word": ["c", "d"]}, features=features), pattern, progress=False)
    assert second.shards[0].url == first.shards[0].url
    rewritten = atdata_core.Dataset(str(tmp_path / "words-*.tar"), sample_type=first.sample_type)
    fresh = to_hf(rewritten, cache_dir=cache)
    assert fresh["word"] == ["c", "d"] and fresh["n"] == [3, 4]
    assert fresh.cache_files != again.cache_files


def test_a_pipeline_with_stages_is_converted_again_each_time(tmp_path):
    from datasets import Dataset, Features, Value

    features = Features({"n": Value("int32")})
    done = from_hf(Dataset.from_dict({"n": [1, 2, 3]}, features=features), str(tmp_path / "n-%03d.tar"), progress=False)
    cache = str(tmp_path / "cache")
    assert to_hf(done.dataset.filter(lambda s: s.n > 1), cache_dir=cache)["n"] == [2, 3]
    assert to_hf(done.dataset.filter(lambda s: s.n > 2), cache_dir=cache)["n"] == [3]


def test_a_schema_published_for_the_class_maps_back_to_the_same_features(every_kind):
    """A class rebuilt from the schema record (as load() does) finds the Hugging Face features in its descriptions."""
    cls = sample_type_from_features(every_kind.features, name="Every", optional=["maybe"])
    fmt = schema_format("jsonSchema")
    rebuilt = fmt.type_from_schema(fmt.schema_from_type(cls), name="Every")
    assert not hasattr(rebuilt, "__atdata_hf_features__")
    assert features_of(rebuilt) == every_kind.features


def test_generated_classes_pickle_for_dataloader_workers(every_kind, tmp_path):
    done = from_hf(every_kind, str(tmp_path / "every-%03d.tar"), name="Every", progress=False)
    sample = next(iter(done.dataset))
    copy = pickle.loads(pickle.dumps(sample))
    assert copy.meta.inner.ok == sample.meta.inner.ok and copy.spans == sample.spans
    assert [repr(f) for f in sample_fields(type(copy))] == [repr(f) for f in sample_fields(type(sample))]
    assert type(copy).__name__ == "Every" and type(copy.meta).__name__ == "EveryMeta"


@atdata_core.packable
class Reading:
    station: str
    trace: Annotated[NDArray[np.float32], {"shape": (None, 4)}]
    mean: Annotated[NDArray[np.uint8], {"shape": (4,)}]
    cube: Annotated[NDArray[np.int16], {"shape": (2, 2, 2)}]
    tags: list[str]
    note: str | None = None


@atdata_core.packable
class Untyped:
    values: NDArray[np.float32]


def test_a_class_of_your_own_maps_to_hugging_face_features_from_its_annotations(tmp_path):
    from datasets import Array2D, Array3D, List, Value

    features = features_of(Reading)
    assert features["trace"] == Array2D(shape=(None, 4), dtype="float32")
    assert features["mean"] == List(Value("uint8"), length=4)
    assert features["cube"] == Array3D(shape=(2, 2, 2), dtype="int16")
    assert features["tags"] == List(Value("string"))
    assert features["note"] == Value("string")

    with atdata_core.ShardWriter(str(tmp_path / "r-%03d.tar")) as sink:
        for i in range(3):
            sink.write(Reading(station=f"s{i}", trace=np.full((i + 1, 4), i, np.float32),
                               mean=np.arange(4, dtype=np.uint8), cube=np.ones((2, 2, 2), np.int16),
                               tags=["x"] * i, note=None if i else "first"))
    hf = to_hf(atdata_core.Dataset[Reading](sink.shards), cache_dir=str(tmp_path / "cache"))
    row = hf.with_format("numpy", dtype=None)[2]
    assert row["trace"].shape == (3, 4) and row["trace"].dtype == np.float32
    assert row["mean"].dtype == np.uint8
    assert hf["note"] == ["first", None, None]


def test_an_array_without_shape_asks_for_an_annotation():
    with pytest.raises(UnsupportedFeature, match=r"Untyped\.values.*Annotated\[NDArray"):
        features_of(Untyped)


def test_an_image_stored_as_a_local_path_is_read_from_its_file(tmp_path):
    from datasets import Dataset, Features

    from hf_samples import png_bytes

    picture = png_bytes(np.random.default_rng(3), 6, 7)
    (tmp_path / "cat.png").write_bytes(picture)
    features = Features({"image": Image()})
    hf = Dataset.from_dict({"image": [{"bytes": None, "path": str(tmp_path / "cat.png")}]}, features=features)
    done = from_hf(hf, str(tmp_path / "img-%03d.tar"), progress=False)
    assert next(iter(done.dataset)).image == picture

    (tmp_path / "cat.png").unlink()
    with pytest.raises(atdata_core.errors.SampleTypeError, match=r"row 0, column image.*cat\.png"):
        from_hf(hf, str(tmp_path / "again-%03d.tar"), progress=False)
