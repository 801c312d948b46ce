"""The PyTorch adapter with real DataLoaders (and real worker processes)."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

import atdata_core  # noqa: E402
from atdata_core.dataset import Dataset  # noqa: E402
from atdata_core.shards import ShardWriter  # noqa: E402
from atdata_core.torch import TorchDataset, to_tensor, to_torch  # noqa: E402


@atdata_core.packable
class Item:
    image: np.ndarray
    label: str
    value: float
    index: int


def write_items(folder, n=60, per_shard=10):
    with ShardWriter(os.path.join(folder, "items-%03d.tar"), maxcount=per_shard) as sink:
        for i in range(n):
            sink.write(Item(np.full((3, 4, 4), i % 256, dtype=np.uint8), f"item-{i}", i / 2, i))
    return sink.shards


@pytest.fixture
def shards(tmp_path):
    return write_items(tmp_path)


def test_two_workers_see_every_sample_exactly_once(shards):
    ds = Dataset[Item](shards)
    loader = DataLoader(ds.torch(), batch_size=8, num_workers=2)
    seen = []
    for batch in loader:
        assert batch["image"].dtype == torch.uint8 and batch["image"].shape[1:] == (3, 4, 4)
        assert torch.equal(batch["image"][:, 0, 0, 0], (batch["index"] % 256).to(torch.uint8))
        seen += batch["index"].tolist()
    assert sorted(seen) == list(range(60))
    # both workers contributed: the order interleaves shards, so it is not simply 0..59
    assert seen != list(range(60))


def test_batched_in_workers_shuffled_and_complete(shards):
    pipe = Dataset[Item](shards).shuffled(seed=5, buffer=16, batch_size=7)
    loader = DataLoader(to_torch(pipe), batch_size=None, num_workers=2)
    batches = list(loader)
    indices = [i for b in batches for i in b["index"].tolist()]
    assert sorted(indices) == list(range(60))
    first = batches[0]
    assert first["image"].shape == (7, 3, 4, 4)
    assert first["value"].dtype == torch.float64
    assert first["label"] == [f"item-{i}" for i in first["index"].tolist()]
    again = [i for b in DataLoader(to_torch(pipe), batch_size=None, num_workers=2) for i in b["index"].tolist()]
    assert again == indices  # same seed and epoch: same order
    pipe.set_epoch(1)
    third = [i for b in DataLoader(to_torch(pipe), batch_size=None, num_workers=2) for i in b["index"].tolist()]
    assert third != indices and sorted(third) == sorted(indices)


def test_more_workers_than_shards_warns_in_the_idle_worker(tmp_path, capfd):
    shards = write_items(tmp_path, n=10, per_shard=10)  # one shard
    # spawned workers (not forked from pytest's warning capture) print the warning to stderr,
    # as they would for a user; spawning also proves the pipeline pickles
    loader = DataLoader(
        Dataset[Item](shards).torch(batch_size=5), batch_size=None, num_workers=2, multiprocessing_context="spawn"
    )
    got = [i for b in loader for i in b["index"].tolist()]
    assert sorted(got) == list(range(10))
    err = capfd.readouterr().err
    assert "RuntimeWarning: 1 shard(s) for 2 consumers (1 node(s) x 2 worker(s)): node 0 worker 1 gets no shard" in err


def test_tensors_own_their_memory_and_samples_become_dicts(shards):
    sample = next(iter(Dataset[Item](shards)))
    assert not sample.image.flags.writeable  # decoded arrays are read-only views
    converted = to_tensor(sample)
    assert set(converted) == {"image", "label", "value", "index"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converted["image"] += 1  # writable, no "non-writable array" warning
    assert converted["image"][0, 0, 0].item() == 1 and sample.image[0, 0, 0] == 0
    raw = next(iter(TorchDataset(Dataset[Item](shards).ordered(batch_size=4), as_dict=False)))
    assert type(raw).__name__ == "SampleBatch" and isinstance(raw.image, np.ndarray)


def test_to_torch_refuses_other_things(shards):
    with pytest.raises(TypeError, match="Dataset or a Pipeline"):
        to_torch([1, 2, 3])
    with pytest.raises(TypeError, match="already fixes order"):
        to_torch(Dataset[Item](shards).ordered(), batch_size=4)


def test_core_never_imports_torch(shards, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import atdata_core
        from atdata_core.dataset import Dataset
        ds = Dataset({shards[0].url!r})
        assert len(list(ds.shuffled(batch_size=3))) == 4
        print("torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "False"


def _rank_process(rank, world, store, out, source):
    """One node of a two-node job: its share read directly, and through spawned-like workers.

    Forked from the test process, so torch is already imported (a fresh interpreter
    would spend seconds importing it). The DataLoader workers come from a fork server:
    a fresh interpreter (like spawned workers, it does not inherit the process group,
    nor RANK: the test removes it) that imports torch once and forks each worker.
    """
    import json
    import multiprocessing

    import torch.distributed as dist

    os.environ.pop("RANK", None)
    os.environ.pop("WORLD_SIZE", None)
    os.environ.pop("LOCAL_RANK", None)
    os.environ.pop("LOCAL_WORLD_SIZE", None)
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    try:
        direct = [s.index for s in Dataset(source).ordered()]
        workers_context = multiprocessing.get_context("forkserver")
        workers_context.set_forkserver_preload(["torch.utils.data", "atdata_core.dataset", "atdata_core.torch"])
        loader = DataLoader(Dataset(source).torch(), batch_size=None, num_workers=2,
                            multiprocessing_context=workers_context)
        workers = [s["index"] for s in loader]
        with open(out, "w") as f:
            json.dump([direct, workers], f)
    finally:
        dist.destroy_process_group()


def test_ranks_come_from_torch_distributed(tmp_path):
    import json
    import multiprocessing

    write_items(tmp_path, n=60, per_shard=10)
    store = str(tmp_path / "store")
    fork = multiprocessing.get_context("fork")
    procs = [
        fork.Process(
            target=_rank_process,
            args=(r, 2, store, str(tmp_path / f"rank{r}.json"), str(tmp_path / "items-*.tar")),
        )
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]

    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    parts = [direct for direct, _ in results]
    # shard i goes to rank i % 2: rank 0 reads shards 0, 2, 4
    assert parts[0] == [i for s in (0, 2, 4) for i in range(10 * s, 10 * s + 10)]
    assert sorted(parts[0] + parts[1]) == list(range(60))
    for direct, through_workers in results:
        assert sorted(through_workers) == sorted(direct)


def test_without_torch_the_adapter_names_the_extra(shards):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # as if PyTorch were not installed
        from atdata_core.dataset import Dataset
        ds = Dataset({shards[0].url!r})
        assert len(list(ds)) == 10  # the core works
        try:
            ds.torch()
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert "pip install 'atdata-core[torch]'" in out.stdout


def _discoveries_in_workers(ds, monkeypatch):
    """How many times each DataLoader worker discovered plugins, over two epochs (fresh workers each)."""
    from atdata_core.plugins import _manager

    calls = {"n": 0}
    discover = _manager._discover

    def counting(config):
        calls["n"] += 1
        return discover(config)

    monkeypatch.setattr(_manager, "_discover", counting)
    torch_ds = ds.map(lambda sample: calls["n"]).torch()
    parent = calls["n"]
    seen = [int(n) for _ in range(2) for n in DataLoader(torch_ds, batch_size=None, num_workers=2)]
    return parent, seen


def test_dataloader_workers_read_local_shards_without_discovering_plugins(shards, monkeypatch):
    from atdata_core.plugins import reset_plugins

    reset_plugins()
    try:
        parent, seen = _discoveries_in_workers(Dataset[Item](shards), monkeypatch)
        assert len(seen) == 120
        assert parent == 0 and set(seen) == {0}
    finally:
        reset_plugins()


def test_dataloader_workers_inherit_plugins_discovered_for_remote_shards(shard_server, shards, monkeypatch):
    import shutil

    from atdata_core.plugins import reset_plugins

    folder, base = shard_server
    for info in shards:
        shutil.copy(info.url, folder / os.path.basename(info.url))
    urls = [f"{base}/{os.path.basename(info.url)}" for info in shards]
    reset_plugins()
    try:
        parent, seen = _discoveries_in_workers(Dataset[Item](urls), monkeypatch)
        assert len(seen) == 120
        # discovered once, by the process that made the TorchDataset; no worker discovers again
        assert parent == 1 and set(seen) == {1}
    finally:
        reset_plugins()


def test_tensors_of_batch_columns_keep_their_memory(shards):
    # a batch's image column goes to torch without a copy; the memory is never reused while a tensor holds it
    tensors = [batch["image"] for batch in Dataset[Item](shards).torch(batch_size=4)]
    firsts = [int(t[0, 0, 0, 0]) for t in tensors]
    assert firsts == [i % 256 for i in range(0, 60, 4)]
    assert all(torch.equal(t[:, 0, 0, 0], torch.arange(4 * k, 4 * k + 4, dtype=torch.uint8)) for k, t in enumerate(tensors))
