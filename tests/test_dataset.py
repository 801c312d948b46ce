"""Dataset[T]: sources, known lengths, ordered and shuffled iteration, batching, composition, errors."""

import os
import pickle
import typing
import warnings
from itertools import islice

import numpy as np
import pytest

import atdata_core
from atdata_core.dataset import Dataset, Pipeline, SampleBatch
from atdata_core.errors import ChecksumError, SampleTypeError, ShardError, StorageNotFound
from atdata_core.sample import DictSample
from atdata_core.shards import ShardWriter


@atdata_core.packable
class Item:
    image: np.ndarray
    label: str
    value: float


@atdata_core.packable
class Labelled:
    label: str


def write_items(folder, n=40, per_shard=10, start=0):
    with ShardWriter(os.path.join(folder, "items-%03d.tar"), maxcount=per_shard) as sink:
        for i in range(start, start + n):
            sink.write(Item(np.full((2, 3), i, dtype=np.int16), f"item-{i}", i / 2), key=f"k{i:05d}")
    return sink.shards


@pytest.fixture
def shards(tmp_path):
    return write_items(tmp_path)


def values(samples):
    return [int(s.value * 2) for s in samples]


# --------------------------------------------------------------------------- construction


def test_typed_constructor_remembers_the_sample_type(tmp_path, shards):
    ds = Dataset[Item](str(tmp_path / "items-{000..003}.tar"))
    assert ds.sample_type is Item
    assert isinstance(ds, Dataset) and isinstance(ds, Dataset[Item])
    assert not isinstance(ds, Dataset[Labelled])
    assert repr(Dataset[Item]) == "Dataset[Item]"
    first = next(iter(ds))
    assert type(first) is Item and first.label == "item-0"
    assert first.image.dtype == np.int16 and first.image.shape == (2, 3)


def test_typed_dataset_reads_as_a_generic_alias_to_typing(shards):
    T = typing.TypeVar("T")
    assert typing.get_origin(Dataset[T]) is Dataset and typing.get_args(Dataset[T]) == (T,)
    assert typing.get_origin(Dataset[Item]) is Dataset and typing.get_args(Dataset[Item]) == (Item,)
    assert Dataset[Item] == Dataset[Item] and hash(Dataset[Item]) == hash(Dataset[Item])
    assert Dataset[Item] != Dataset[Labelled]

    def train(ds: Dataset[Item]) -> None: ...

    assert typing.get_type_hints(train)["ds"] == Dataset[Item]
    rebuilt = pickle.loads(pickle.dumps(Dataset[Item]))
    assert rebuilt == Dataset[Item] and rebuilt(shards).sample_type is Item
    with pytest.raises(TypeError, match="already fixes the sample type"):
        Dataset[Item](shards, sample_type=Labelled)


def test_a_subclass_of_a_typed_dataset_keeps_the_type(shards):
    class ItemDataset(Dataset[Item]):
        pass

    ds = ItemDataset(shards)
    assert type(next(iter(ds))) is Item and isinstance(ds, Dataset)
    assert repr(ds) == "Dataset[Item](4 shards, 40 samples)"


def test_without_a_type_samples_are_dict_samples(tmp_path, shards):
    ds = Dataset(tmp_path)
    assert ds.sample_type is DictSample
    first = next(iter(ds))
    assert isinstance(first, DictSample)
    assert first.label == "item-0" and first["value"] == 0.0
    assert isinstance(first.image, np.ndarray)


def test_a_class_that_is_not_a_sample_type_is_refused():
    class Plain:
        x: int

    with pytest.raises(SampleTypeError, match="packable"):
        Dataset[Plain]


def test_sources_glob_directory_list_and_brace_pattern_agree(tmp_path, shards):
    urls = [s.url for s in shards]
    for source in (
        str(tmp_path / "items-{000..003}.tar"),
        str(tmp_path / "items-*.tar"),
        tmp_path,
        urls,
    ):
        assert Dataset[Item](source).urls == urls, source


def test_empty_source_names_the_pattern(tmp_path):
    with pytest.raises(StorageNotFound, match=r"nothing-\{000\.\.009\}\.tar"):
        Dataset(str(tmp_path / "nothing-{000..009}.tar"))
    with pytest.raises(StorageNotFound, match=r"nothing-\*\.tar"):
        Dataset(str(tmp_path / "nothing-*.tar"))


# --------------------------------------------------------------------------- lengths


def test_length_and_size_come_from_shard_records_without_reading(tmp_path, shards):
    ds = Dataset[Item](shards)
    for info in shards:  # nothing left to scan: the numbers must come from the records
        os.unlink(info.url)
    assert len(ds) == 40
    assert ds.size_bytes == sum(s.size for s in shards)
    assert repr(ds) == "Dataset[Item](4 shards, 40 samples)"
    assert len(ds.head(5)) == 5
    assert len(ds.head(500)) == 40
    assert len(ds.map(lambda s: s.label)) == 40


def test_shards_keyword_gives_counts_for_a_pattern(tmp_path, shards):
    ds = Dataset[Item](str(tmp_path / "items-{000..003}.tar"), shards=shards)
    assert len(ds) == 40
    assert [ref.sha256 for ref in ds.shards] == [s.sha256 for s in shards]


def test_unknown_length_says_how_to_get_it(tmp_path, shards):
    ds = Dataset[Item](str(tmp_path / "items-*.tar"))
    with pytest.raises(TypeError, match=r"unknown.*count\(\)"):
        len(ds)
    assert ds.size_bytes is None
    assert ds.count() == 40
    assert len(ds) == 40  # counts remembered after the scan
    with pytest.raises(TypeError, match="filter"):
        len(ds.filter(lambda s: s.value < 5))
    assert ds.filter(lambda s: s.value < 5).count() == 10


def test_totals_and_checksums_from_an_index_entry(tmp_path, shards):
    ds = Dataset[Item](str(tmp_path / "items-*.tar"), num_samples=40, num_bytes=12345)
    assert len(ds) == 40 and ds.size_bytes == 12345
    pairs = [(s.url, s.sha256) for s in shards]  # as a storage record lists them
    from_entry = Dataset[Item](shards=pairs, num_samples=40)
    assert from_entry.urls == [s.url for s in shards] and len(from_entry) == 40
    assert [r.sha256 for r in from_entry.shards] == [s.sha256 for s in shards]
    assert values(Dataset[Item](shards[2])) == list(range(20, 30))  # one ShardInfo


# --------------------------------------------------------------------------- ordered / shuffled


def test_ordered_reads_every_sample_in_shard_order_and_replays(shards):
    pipe = Dataset[Item](shards).ordered()
    assert values(pipe) == list(range(40))
    assert values(pipe) == list(range(40))


def test_shuffled_is_deterministic_per_seed_and_a_permutation(shards):
    ds = Dataset[Item](shards)
    a = values(ds.shuffled(seed=7, buffer=8))
    b = values(ds.shuffled(seed=7, buffer=8))
    c = values(ds.shuffled(seed=8, buffer=8))
    assert a == b
    assert a != c
    assert sorted(a) == sorted(c) == list(range(40))
    assert a != list(range(40))


def test_epochs_change_the_order_deterministically(shards):
    pipe = Dataset[Item](shards).shuffled(seed=1, buffer=16)
    first = values(pipe)
    pipe.set_epoch(1)
    second = values(pipe)
    assert first != second and sorted(first) == sorted(second)
    assert values(Dataset[Item](shards).shuffled(seed=1, buffer=16, epoch=1)) == second
    two = values(Dataset[Item](shards).shuffled(seed=1, buffer=16, epochs=2))
    assert two == first + second


def test_endless_streams_and_repeat(shards):
    ds = Dataset[Item](shards)
    endless = values(islice(iter(ds.shuffled(seed=0, epochs=None)), 130))
    assert len(endless) == 130
    assert sorted(endless[:40]) == sorted(endless[40:80]) == list(range(40))
    assert values(islice(iter(ds.repeat().ordered()), 90)) == (list(range(40)) * 3)[:90]
    assert values(ds.repeat(2).ordered()) == list(range(40)) * 2


def test_resampled_draws_shards_with_replacement(tmp_path):
    shards = write_items(tmp_path, n=40, per_shard=4)  # 10 shards
    ds = Dataset[Item](shards)
    draws = [values(ds.shuffled(seed=s, buffer=1, resampled=True)) for s in range(6)]
    assert draws[0] == values(ds.shuffled(seed=0, buffer=1, resampled=True))
    assert all(len(d) == 40 for d in draws)  # one epoch draws as many shards as there are
    # with replacement: some draw repeats a shard (10 draws of 10 without a repeat is 10!/10**10 likely)
    assert any(len(set(d)) < 40 for d in draws)


# --------------------------------------------------------------------------- batches


def test_batches_stack_arrays_and_list_the_rest(shards):
    batches = list(Dataset[Item](shards).ordered(batch_size=16))
    assert [len(b) for b in batches] == [16, 16, 8]
    first = batches[0]
    assert isinstance(first, SampleBatch)
    assert repr(first) == "SampleBatch[Item](16 samples)"
    assert first.image.shape == (16, 2, 3) and first.image.dtype == np.int16
    assert first.image[5, 0, 0] == 5
    assert first.label == [f"item-{i}" for i in range(16)]
    assert first.value == [i / 2 for i in range(16)]
    assert first.image is first.image and first["image"] is first.image  # computed once
    assert first[3].label == "item-3" and len(first[2:5]) == 3
    assert [s.label for s in first] == first.label
    assert sorted(first.to_dict()) == ["image", "label", "value"]
    assert [len(b) for b in Dataset[Item](shards).ordered(batch_size=16, drop_last=True)] == [16, 16]


def test_batch_of_ragged_arrays_stays_a_list_and_missing_fields_are_named():
    batch = SampleBatch([DictSample(x=np.zeros(2), samples=1), DictSample(x=np.zeros(3), samples=2)])
    assert batch["samples"] == [1, 2] and len(batch.samples) == 2  # a field named like an attribute
    assert isinstance(batch.x, list) and [a.shape for a in batch.x] == [(2,), (3,)]
    with pytest.raises(AttributeError, match=r"no field 'y'.*\['x', 'samples'\]"):
        batch.y


def _by_sample(batches):
    """What a user sees of batches: every column, and every sample's fields."""
    out = []
    for batch in batches:
        columns = {name: (batch[name].dtype.str, batch[name].shape, batch[name].tobytes()) if isinstance(batch[name], np.ndarray)
                   else [a.tobytes() if isinstance(a, np.ndarray) else a for a in batch[name]] for name in batch.fields()}
        samples = [(s.image.tobytes(), s.image.shape, s.label, s.value) for s in batch]
        out.append((len(batch), columns, samples))
    return out


def _one_by_one(ds, **kwargs):
    # a map stage keeps the pipeline from decoding batches into columns: samples are batched one by one
    return ds.map(lambda sample: sample).ordered(**kwargs)


def test_batches_decoded_into_columns_are_the_batches_of_the_samples(shards):
    ds = Dataset[Item](shards)
    columns = list(ds.ordered(batch_size=6))
    assert _by_sample(columns) == _by_sample(_one_by_one(ds, batch_size=6))
    batch = columns[0]
    assert batch.sample_type is Item and repr(batch) == "SampleBatch[Item](6 samples)"
    # the column is an array of its own (writable, what torch shares without a copy), not a sample's view
    assert batch.image.flags.writeable and batch.image.flags.c_contiguous and batch.image.flags.owndata is False
    first = batch[0]
    assert not first.image.flags.writeable and not np.shares_memory(first.image, batch.image)
    batch.image[0] = 99
    assert first.image[0, 0] == 0 and batch[0].image[0, 0] == 0
    assert batch.label == [f"item-{i}" for i in range(6)] and batch.value == [i / 2 for i in range(6)]
    assert pickle.loads(pickle.dumps(batch))[5].label == "item-5"
    assert [len(b) for b in Dataset[Item](shards).ordered(batch_size=16, drop_last=True)] == [16, 16]


def test_a_batch_whose_arrays_differ_in_shape_is_the_same_either_way(tmp_path):
    with ShardWriter(str(tmp_path / "mixed-%03d.tar"), maxcount=100) as sink:
        for i in range(20):
            shape = (2, 3) if i % 7 else (3, 2)  # samples 0, 7 and 14 differ
            dtype = np.int16 if i != 9 else np.int32
            sink.write(Item(np.full(shape, i, dtype=dtype), f"item-{i}", i / 2))
    ds = Dataset[Item](sink.shards)
    batches = list(ds.ordered(batch_size=4))
    assert _by_sample(batches) == _by_sample(_one_by_one(ds, batch_size=4))
    # samples 0, 7 and 14 are (3, 2), sample 9 is int32: their batches' arrays stay lists
    assert [type(b.image) for b in batches] == [list, list, list, list, np.ndarray]
    assert batches[4].image.shape == (4, 2, 3)


def test_members_that_do_not_decode_in_a_batch_go_to_on_error_in_member_order(tmp_path):
    from atdata_core.codec import encode_ndarray

    with ShardWriter(str(tmp_path / "bad-%03d.tar"), maxcount=7) as sink:
        for i in range(20):
            if i in (3, 4, 11):
                sink.write({"image": encode_ndarray(np.zeros((2, 3), np.int16)), "label": i, "value": 1.0})
            elif i == 15:
                sink.write({"label": "no image", "value": 1.0})
            elif i == 17:
                sink.write({"image": encode_ndarray(np.zeros((2, 3), np.int16)), "label": "int", "value": 3})  # coerced
            else:
                sink.write(Item(np.full((2, 3), i, dtype=np.int16), f"item-{i}", i / 2))
    results = []
    for make in (lambda ds: ds.ordered(batch_size=4), lambda ds: _one_by_one(ds, batch_size=4)):
        errors = []
        ds = Dataset[Item](sink.shards, on_error=errors.append)
        results.append((_by_sample(make(ds)), [str(e) for e in errors]))
    assert results[0] == results[1]
    got, errors = results[0]
    assert [size for size, *_ in got] == [4, 4, 4, 4]
    assert [e.split("member ")[1].split(":")[0] for e in errors] == [
        "0000000003.msgpack", "0000000004.msgpack", "0000000011.msgpack", "0000000015.msgpack"
    ]
    with pytest.raises(atdata_core.errors.SampleDecodeError, match="0000000003.msgpack"):
        list(Dataset[Item](sink.shards).ordered(batch_size=4))


def test_plain_local_paths_open_without_discovering_plugins(shards, monkeypatch):
    from atdata_core.errors import MissingImplementation
    from atdata_core.plugins import reset_plugins
    from atdata_core.plugins._manager import discovered

    reset_plugins()
    try:
        assert len(list(Dataset[Item]([s.url for s in shards]))) == 40
        assert not discovered()
        # the configuration can still choose: a backend selected for plain paths is found by discovery
        monkeypatch.setenv("ATDATA_CONFIG", str(_config_file(shards, '[storage.select]\n"" = "file"\n')))
        assert len(list(Dataset[Item]([s.url for s in shards]))) == 40
        assert discovered()
        reset_plugins()
        monkeypatch.setenv("ATDATA_PLUGINS_DENY", "builtin")
        monkeypatch.delenv("ATDATA_CONFIG")
        with pytest.raises(MissingImplementation, match="plain paths"):
            list(Dataset[Item]([s.url for s in shards]))
    finally:
        monkeypatch.delenv("ATDATA_PLUGINS_DENY", raising=False)
        reset_plugins()


def _config_file(shards, text):
    path = os.path.join(os.path.dirname(shards[0].url), "config.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_shuffled_batches_cover_every_sample_once(shards):
    seen = [v for b in Dataset[Item](shards).shuffled(seed=3, buffer=10, batch_size=7) for v in values(b)]
    assert sorted(seen) == list(range(40))


# --------------------------------------------------------------------------- composition


def test_map_filter_head_compose_before_batching(shards):
    ds = Dataset[Item](shards)
    evens = ds.filter(lambda s: int(s.value * 2) % 2 == 0)
    doubled = evens.map(lambda s: Item(s.image * 2, s.label.upper(), s.value * 2))
    first = doubled.head(5)
    assert [s.label for s in first] == ["ITEM-0", "ITEM-2", "ITEM-4", "ITEM-6", "ITEM-8"]
    batch = next(iter(first.ordered(batch_size=10)))
    assert len(batch) == 5 and batch.image[1, 0, 0] == 4
    # immutable: the original dataset is unchanged
    assert values(ds) == list(range(40))
    assert repr(first).endswith(".filter(test_map_filter_head_compose_before_batching.<locals>.<lambda>)"
                                ".map(test_map_filter_head_compose_before_batching.<locals>.<lambda>).head(5)")
    # stages run in the order given: head before filter keeps only matches among the first 4
    assert values(ds.head(4).filter(lambda s: s.value >= 1)) == [2, 3]


def test_untyped_dataset_read_as_a_type_decodes_into_it(tmp_path, shards):
    ds = Dataset(tmp_path).as_type(Labelled)
    first = next(iter(ds))
    assert type(first) is Labelled and first.label == "item-0"
    assert ds.sample_type is Labelled


def test_as_type_follows_the_lens_graph(shards):
    from atdata_core.errors import NoLensPath
    from atdata_core import lens
    from atdata_core.lenses import LensGraph

    @atdata_core.packable
    class Text:
        text: str

    @atdata_core.packable
    class Length:
        n: int

    graph = LensGraph()

    @lens(graph=graph)
    def item_text(s: Item) -> Text:
        return Text(s.label)

    @lens(graph=graph)
    def text_length(t: Text) -> Length:
        return Length(len(t.text))

    ds = Dataset[Item](shards).as_type(Length, graph=graph)
    assert ds.sample_type is Length
    assert [s.n for s in ds.head(11)] == [6] * 10 + [7]
    batch = next(iter(ds.ordered(batch_size=4)))
    assert batch.n == [6, 6, 6, 6]
    with pytest.raises(NoLensPath):
        Dataset[Item](shards).as_type(Labelled, graph=graph)
    # after a map the type is known only at run time; the lens is found per sample type
    mapped = Dataset[Item](shards).map(lambda s: Text(s.label)).as_type(Length, graph=graph)
    assert [s.n for s in mapped.head(2)] == [6, 6]


# --------------------------------------------------------------------------- distributed


def test_shards_split_across_nodes_round_robin(tmp_path):
    shards = write_items(tmp_path, n=50, per_shard=5)  # 10 shards
    ds = Dataset[Item](shards)
    parts = [values(ds.ordered(rank=r, world_size=3)) for r in range(3)]
    assert sorted(v for p in parts for v in p) == list(range(50))
    # shard i (samples 5i..5i+4) goes to node i % 3
    assert parts[1] == [v for i in (1, 4, 7) for v in range(5 * i, 5 * i + 5)]
    shuffled = [values(ds.shuffled(seed=4, rank=r, world_size=3)) for r in range(3)]
    assert sorted(v for p in shuffled for v in p) == list(range(50))


def test_rank_and_world_size_from_the_environment(tmp_path, monkeypatch):
    shards = write_items(tmp_path, n=40, per_shard=10)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert values(Dataset[Item](shards)) == list(range(10, 20)) + list(range(30, 40))
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="RANK"):
        list(Dataset[Item](shards))


def test_fewer_shards_than_consumers_warns(tmp_path):
    shards = write_items(tmp_path, n=20, per_shard=10)  # 2 shards
    ds = Dataset[Item](shards)
    with pytest.warns(RuntimeWarning, match="2 shard.*4 consumers.*node 3.*no shard"):
        assert list(ds.ordered(rank=3, world_size=4)) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert values(ds.ordered(rank=1, world_size=4)) == list(range(10, 20))


def test_rank_arguments_are_checked(shards):
    with pytest.raises(ValueError, match="both"):
        Dataset[Item](shards).ordered(rank=0)
    with pytest.raises(ValueError, match="rank 2"):
        Dataset[Item](shards).ordered(rank=2, world_size=2)


# --------------------------------------------------------------------------- checksums and bad input


def test_a_changed_shard_fails_its_checksum_naming_it(tmp_path):
    shards = write_items(tmp_path, n=20, per_shard=10)
    # damage the first shard's last sample value, keeping it a readable tar
    path = shards[0].url
    data = open(path, "rb").read()
    pos = data.rfind(b"item-9")
    damaged = data[:pos] + b"itez-9" + data[pos + 6 :]
    open(path, "wb").write(damaged)
    assert values(Dataset[Item]([s.url for s in shards])) == list(range(20))  # no checksum known: reads
    with pytest.raises(ChecksumError, match="items-000.tar") as info:
        list(Dataset[Item](shards))
    assert info.value.expected == shards[0].sha256
    with pytest.raises(ChecksumError):
        list(Dataset[Item]([s.url for s in shards], checksums={path: shards[0].sha256}))
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        got = values(Dataset[Item](shards, on_error="skip"))
    assert got[-10:] == list(range(10, 20))


def test_checksums_for_unknown_urls_are_refused(shards):
    with pytest.raises(ValueError, match="not shards of this dataset"):
        Dataset[Item]([s.url for s in shards], checksums={"elsewhere.tar": "00" * 32})


def test_skip_policy_moves_on_after_a_truncated_shard(tmp_path):
    shards = write_items(tmp_path, n=30, per_shard=10)
    path = shards[1].url
    data = open(path, "rb").read()
    open(path, "wb").write(data[:3000])
    with pytest.raises(ShardError, match="items-001.tar"):
        list(Dataset[Item]([s.url for s in shards]))
    with pytest.warns(UserWarning, match="items-001.tar"):
        got = values(Dataset[Item]([s.url for s in shards], on_error="skip"))
    assert got[:10] == list(range(10)) and got[-10:] == list(range(20, 30))


def test_skip_policy_skips_a_missing_shard(tmp_path):
    shards = write_items(tmp_path, n=30, per_shard=10)
    os.unlink(shards[0].url)
    with pytest.warns(UserWarning, match="items-000.tar"):
        assert values(Dataset[Item]([s.url for s in shards], on_error="skip")) == list(range(10, 30))


def test_pipeline_repr_and_type(shards):
    pipe = Dataset[Item](shards).shuffled(seed=3, buffer=100, batch_size=8)
    assert isinstance(pipe, Pipeline)
    assert repr(pipe) == "Dataset[Item](4 shards, 40 samples).shuffled(seed=3, buffer=100, batch_size=8)"


def test_on_error_callable_receives_the_error_and_bad_policies_are_refused(tmp_path):
    shards = write_items(tmp_path, n=20, per_shard=10)
    os.unlink(shards[1].url)
    errors = []
    got = values(Dataset[Item]([s.url for s in shards], on_error=errors.append))
    assert got == list(range(10))
    assert len(errors) == 1 and isinstance(errors[0], StorageNotFound) and "items-001.tar" in str(errors[0])
    with pytest.raises(ValueError, match="on_error"):
        Dataset[Item](shards, on_error="ignore")


@pytest.mark.network
def test_reads_shards_over_http_with_checksums(shard_server):
    folder, base = shard_server
    shards = write_items(folder, n=30, per_shard=10)
    urls = [f"{base}/{os.path.basename(s.url)}" for s in shards]
    ds = Dataset[Item](f"{base}/items-{{000..002}}.tar", checksums={u: s.sha256 for u, s in zip(urls, shards)})
    assert ds.urls == urls
    assert values(ds.shuffled(seed=2, buffer=5)) != list(range(30))
    assert sorted(values(ds.shuffled(seed=2, buffer=5))) == list(range(30))
    batch = next(iter(ds.ordered(batch_size=30)))
    assert batch.image.shape == (30, 2, 3)
    with pytest.raises(ChecksumError, match="items-001.tar"):
        list(Dataset[Item](urls, checksums={urls[1]: shards[0].sha256}))


def test_the_torch_adapter_and_the_dataset_module_do_not_import_each_other():
    # Dataset.torch() imports the adapter (on demand), so the adapter must not import the
    # dataset module back: read the adapter's imports without importing torch.
    import ast
    import pathlib

    source = pathlib.Path(atdata_core.__file__).parent / "torch.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    assert ".dataset" not in imported and "atdata_core.dataset" not in imported
    assert "._pipeline" in imported  # it does read the pipeline it wraps


@atdata_core.packable
class OnlyImage:
    image: np.ndarray


@pytest.mark.parametrize("cls", [Item, OnlyImage])
def test_property_column_batches_decode_and_refuse_as_samples_do(cls):
    """Members sharing a leading layout, with any bytes after it, batch into columns exactly as sample by sample."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from atdata_core._codec_compiler import codec_of
    from atdata_core._pipeline import _batches, _column_batches
    from atdata_core.codec import encode_ndarray
    from atdata_core.shards import _decoded

    codec = codec_of(cls)
    image = encode_ndarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    names = [f.name for f in codec.fields if f.name != "image"]
    values = st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False) | st.text(max_size=4) | st.binary(max_size=8)

    def member(rest, count):
        # the map header says `count` entries; the image first, then the pairs of `rest`
        body = msgpack_pack(rest)
        return bytes((0x80 | count,)) + msgpack_pack("image") + msgpack_pack(image) + body[1:]

    fields = st.fixed_dictionaries({"label": st.text(max_size=6), "value": st.floats(allow_nan=False)}) if names else st.just({})
    extra = st.dictionaries(st.just("extra"), values, max_size=1)
    valid = st.builds(lambda f, e: member({**f, **e}, 1 + len(f) + len(e)), fields, extra)
    rests = st.dictionaries(st.sampled_from(["label", "value", "image", "extra"]), values | st.just(image), max_size=4)
    members = st.one_of(
        valid,
        st.builds(member, rests, st.integers(1, 4)),
        st.tuples(valid, st.integers(0, 60)).map(lambda t: t[0][: t[1]]),  # truncated
        st.tuples(valid, st.binary(min_size=1, max_size=4)).map(lambda t: t[0] + t[1]),  # trailing bytes
        st.tuples(valid, st.integers(0, 40), st.integers(0, 255)).map(lambda t: t[0][: t[1]] + bytes([t[2]]) + t[0][t[1] + 1 :]),
    )

    class Source:
        _on_error = None
        _out_type = cls

    def canon(value):
        return repr(value) if isinstance(value, float) else getattr(value, "shape", value)  # NaN != NaN

    def by_sample(batches):
        return [(len(b), [(s.image.tobytes(), s.image.shape, [canon(getattr(s, n)) for n in names]) for s in b],
                 {n: b[n].tobytes() if isinstance(b[n], np.ndarray) else [canon(a) for a in b[n]] for n in b.fields()})
                for b in batches]

    def compare(payloads, size):
        keys = [f"{i:04d}.msgpack" for i in range(len(payloads))]
        outcomes = []
        for way in ("columns", "samples"):
            errors = []
            Source._on_error = errors.append
            pairs = [(key, memoryview(data)) for key, data in zip(keys, payloads)]
            if way == "columns":
                batches = _column_batches(iter([("s.tar", iter(pairs), False)]), codec, size, False, Source)
            else:
                batches = _batches(_decoded(iter(pairs), codec.from_member, "s.tar", errors.append), size, False, cls)
            outcomes.append((by_sample(list(batches)), [str(e) for e in errors]))
        assert outcomes[0] == outcomes[1]
        return outcomes[0]

    # after a member with an extra key, one whose extra key is a second image: msgpack keeps the
    # last, so the first image must not be taken for it
    base = {"label": "a", "value": 1.0} if names else {}
    _, errors = compare([member({**base, "extra": 1}, 2 + len(names)), member({**base, "image": 5}, 2 + len(names))], 2)
    assert len(errors) == 1 and "0001.msgpack" in errors[0]

    @settings(max_examples=250, deadline=None, database=None)
    @given(st.lists(members, max_size=14), st.integers(1, 5))
    def check(payloads, size):
        compare(payloads, size)

    check()


def msgpack_pack(value):
    import msgpack

    return msgpack.packb(value, use_bin_type=True)


def test_a_columns_memory_is_reused_only_once_nothing_holds_it(tmp_path):
    with ShardWriter(str(tmp_path / "many-%03d.tar"), maxcount=20) as sink:
        for i in range(60):
            sink.write(Item(np.full((2, 3), i, dtype=np.int16), f"item-{i}", i / 2))
    # (the first shard's batches are all held until its checksum matched: the reuse shows after it)
    ds = Dataset[Item](sink.shards)
    # every batch kept: none may be written over by a later one
    kept = list(ds.ordered(batch_size=4))
    assert [b.image[:, 0, 0].tolist() for b in kept] == [list(range(i, i + 4)) for i in range(0, 60, 4)]
    rows = [b.image[1] for b in kept]  # views of the columns, the batches dropped
    del kept
    again = list(ds.ordered(batch_size=4))
    assert [int(r[0, 0]) for r in rows] == list(range(1, 60, 4))
    assert not any(np.shares_memory(r, b.image) for r in rows for b in again)
    # a batch dropped as soon as it is read lends its memory to the next ones
    addresses = {batch.image.__array_interface__["data"][0] for batch in ds.ordered(batch_size=4)}
    assert len(addresses) < 15
