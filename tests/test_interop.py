"""Interoperability with the existing science.alt.dataset federation's Python client.

That client writes shards with webdataset's TarWriter, one ``{uuid}.msgpack``
member per sample, arrays through its ``array_to_bytes``. We run its real
array codec (loaded from its published wheel, which the test command fetches)
in both directions. Its package needs Python >= 3.12 as a whole, so only the
codec module, which is self-contained, is loaded.
"""

import glob
import importlib.util
import os
import uuid
import zipfile

import msgpack
import numpy as np
import pytest

import atdata_core
from atdata_core.sample import DictSample
from atdata_core.shards import ShardWriter, iter_samples

HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def their_codec(tmp_path_factory):
    candidates = [os.environ.get("ATDATA_INTEROP_WHEEL", "")] + sorted(
        glob.glob(os.path.join(HERE, "..", ".cache", "interop", "atdata-*.whl"))
    )
    wheel = next((c for c in candidates if c and os.path.exists(c)), None)
    if wheel is None:
        message = "the other client's wheel is missing: run `make test` (it downloads it) or set ATDATA_INTEROP_WHEEL"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("their_codec")
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("atdata/_helpers.py")
    path = folder / "their_helpers.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("their_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@atdata_core.packable
class ImageSample:
    image: np.ndarray
    label: str
    confidence: float


def test_their_shards_load_here_as_typed_and_dict_samples(tmp_path, their_codec):
    import webdataset as wds

    rng = np.random.default_rng(0)
    written = []
    path = str(tmp_path / "theirs-000000.tar")
    with wds.TarWriter(path) as sink:
        for i in range(20):
            image = rng.integers(0, 255, (3, 8, 8), dtype=np.uint8)
            written.append((image, f"label-{i}", i / 10))
            payload = msgpack.packb(
                {"image": their_codec.array_to_bytes(image), "label": f"label-{i}", "confidence": i / 10}
            )
            sink.write({"__key__": str(uuid.uuid1(0, 0)), "msgpack": payload})
    with open(path, "rb") as f:
        typed = list(iter_samples(f, ImageSample.from_map, shard=path))
    assert len(typed) == 20
    for sample, (image, label, confidence) in zip(typed, written):
        np.testing.assert_array_equal(sample.image, image)
        assert sample.label == label and sample.confidence == confidence
    with open(path, "rb") as f:
        untyped = list(iter_samples(f, DictSample.from_map, shard=path))
    np.testing.assert_array_equal(untyped[3].image, written[3][0])


def test_our_shards_load_there(tmp_path, their_codec):
    import webdataset as wds

    images = [np.arange(12, dtype=np.float32).reshape(3, 4) * i for i in range(6)]
    with ShardWriter(tmp_path / "ours-%06d.tar", maxcount=4) as sink:
        for i, image in enumerate(images):
            sink.write(ImageSample(image, f"l{i}", float(i)))
    urls = [s.url for s in sink.shards]
    seen = []
    for raw in wds.WebDataset(urls, shardshuffle=False):
        fields = msgpack.unpackb(raw["msgpack"])
        seen.append((their_codec.bytes_to_array(fields["image"]), fields["label"], fields["confidence"]))
    assert [s[1] for s in seen] == [f"l{i}" for i in range(6)]
    for (image, _, _), expected in zip(seen, images):
        assert image.dtype == np.float32
        np.testing.assert_array_equal(image, expected)


def test_legacy_npy_arrays_from_older_clients_load(tmp_path):
    import io

    import webdataset as wds

    path = str(tmp_path / "legacy.tar")
    with wds.TarWriter(path) as sink:
        buf = io.BytesIO()
        np.save(buf, np.eye(3, dtype=np.float64))
        sink.write({"__key__": "old", "msgpack": msgpack.packb({"image": buf.getvalue(), "label": "x", "confidence": 1.0})})
    with open(path, "rb") as f:
        (sample,) = iter_samples(f, ImageSample.from_map, shard=path)
    np.testing.assert_array_equal(sample.image, np.eye(3))
