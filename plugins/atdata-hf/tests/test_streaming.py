"""What a launcher or a DataLoader around a streamed export does to it."""

from __future__ import annotations

import pytest
from datasets import Dataset, Features, IterableDataset, Value

from atdata_core.errors import SampleTypeError

from atdata_hf import from_hf, to_hf


@pytest.fixture
def numbers(tmp_path):
    hf = Dataset.from_dict({"n": list(range(10))}, features=Features({"n": Value("int32")}))
    return from_hf(hf, str(tmp_path / "n-%03d.tar"), maxcount=3, progress=False)


def test_rank_and_world_size_set_by_a_launcher_do_not_narrow_an_export(numbers, tmp_path, monkeypatch):
    # torchrun and Ray Train set these in their workers; atdata's own pipelines split shards by them
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert [row["n"] for row in to_hf(numbers.dataset, streaming=True)] == list(range(10))
    assert to_hf(numbers.dataset, cache_dir=str(tmp_path / "cache"))["n"] == list(range(10))


def test_a_streamed_export_splits_by_shard(numbers):
    from datasets.distributed import split_dataset_by_node

    stream = to_hf(numbers.dataset, streaming=True)
    assert stream.n_shards == 4
    parts = [[row["n"] for row in split_dataset_by_node(stream, rank=r, world_size=2)] for r in range(2)]
    assert sorted(parts[0] + parts[1]) == list(range(10))
    assert parts[0] and parts[1]


def test_a_dataloader_with_workers_is_refused_with_what_to_do(numbers):
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(to_hf(numbers.dataset, streaming=True), batch_size=None, num_workers=2)
    with pytest.raises(RuntimeError, match=r"DataLoader workers.*num_workers=0.*ds\.torch\(\)"):
        list(loader)
    # one process reads every row
    single = torch.utils.data.DataLoader(to_hf(numbers.dataset, streaming=True), batch_size=None, num_workers=0)
    assert [int(row["n"]) for row in single] == list(range(10))


def test_an_iterable_dataset_without_features_asks_for_them(tmp_path):
    def rows():
        yield {"n": 1}

    stream = IterableDataset.from_generator(rows)
    with pytest.raises(SampleTypeError, match=r"features.*cast\(features\)"):
        from_hf(stream, str(tmp_path / "x-%03d.tar"), progress=False)
