"""Write and read 20,000 samples; compare with a hand-written tarfile + msgpack loop.

Run from the repository root:

    python bench/bench_read_write.py            # 20,000 samples in 10 shards
    python bench/bench_read_write.py --samples 5000 --repeat 5

Each sample is a 3x64x64 uint8 array, a str label and a float. It prints
samples/s for writing, for an ordered read into typed samples and for a batched
read (batch 128, arrays stacked), each against a baseline that parses the same
tar files with :mod:`tarfile` in streaming mode and ``msgpack.unpackb``-s every
member, with no Dataset machinery. It also prints how much longer
``python -c "import atdata_core"`` takes than ``python -c "import numpy"``.

Every figure is the best of ``--repeat`` runs (the import times: the median),
taken in the same process, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import msgpack
import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import atdata_core  # noqa: E402
from atdata_core import Dataset, ShardWriter  # noqa: E402

TARGETS = {
    "ordered": 0.8,  # typed ordered read >= 0.8x the baseline
    "batched": 0.7,  # batched read >= 0.7x the baseline
    "write": 20_000,  # samples/s
    "import": 0.060,  # seconds slower than numpy at most
}


@atdata_core.packable
class ImageSample:
    image: NDArray[np.uint8]
    label: str
    score: float


def make_samples(n: int) -> list[ImageSample]:
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(256, 3, 64, 64), dtype=np.uint8)  # 256 distinct images, reused
    return [ImageSample(pool[i % 256], f"class-{i % 10}", i * 0.25) for i in range(n)]


def bench_write(samples: list[ImageSample], folder: str, per_shard: int) -> tuple[float, list]:
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    with ShardWriter(os.path.join(folder, "data-%06d.tar"), maxcount=per_shard) as sink:
        for sample in samples:
            sink.write(sample)
    return time.perf_counter() - start, sink.shards


def baseline(urls: list[str]) -> int:
    """The reference loop: tarfile streaming mode and msgpack, nothing else."""
    n = 0
    for url in urls:
        with tarfile.open(url, mode="r|") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".msgpack"):
                    msgpack.unpackb(archive.extractfile(member).read())
                    n += 1
    return n


def ordered(ds: Dataset) -> int:
    n = 0
    for _ in ds.ordered():
        n += 1
    return n


def batched(ds: Dataset) -> int:
    n = 0
    for batch in ds.ordered(batch_size=128):
        images = batch.image  # stacks the arrays: (128, 3, 64, 64)
        n += images.shape[0]
    return n


def best_rate(fn, arg, expected: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn(arg)
        best = min(best, time.perf_counter() - start)
        if n != expected:
            raise SystemExit(f"{fn.__name__} read {n} samples, expected {expected}")
    return expected / best


def import_time(module: str, runs: int, cache: str) -> float:
    """Median wall time of ``python -c "import <module>"`` with warm bytecode caches.

    Bytecode goes to a private cache folder (not next to the sources), as an
    installed package would have it, even where writing bytecode is turned off.
    """
    times = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [sys.path[0], os.environ.get("PYTHONPATH")]))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = cache
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)  # fills the cache
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    parser.add_argument("--import-runs", type=int, default=9)
    args = parser.parse_args()

    samples = make_samples(args.samples)
    per_shard = -(-args.samples // args.shards)
    folder = tempfile.mkdtemp(prefix="atdata-bench-")
    try:
        write_s = min(bench_write(samples, folder, per_shard)[0] for _ in range(args.repeat))
        _, shards = bench_write(samples, folder, per_shard)
        urls = [s.url for s in shards]
        ds = Dataset[ImageSample](urls)  # like the baseline: no checksums to verify
        verified = Dataset[ImageSample](shards)  # ShardInfo records: every shard's sha256 is checked
        size_mb = verified.size_bytes / 1e6
        print(f"{args.samples} samples (3x64x64 uint8, str, float) in {len(urls)} shards, {size_mb:.0f} MB")

        rates = {}
        # interleave so that background noise hits all the loops alike
        rates["baseline"] = best_rate(baseline, urls, args.samples, args.repeat)
        rates["ordered"] = best_rate(ordered, ds, args.samples, args.repeat)
        rates["batched"] = best_rate(batched, ds, args.samples, args.repeat)
        rates["verified"] = best_rate(ordered, verified, args.samples, args.repeat)
        rates["baseline"] = max(rates["baseline"], best_rate(baseline, urls, args.samples, args.repeat))
        rates["write"] = args.samples / write_s
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    base = rates["baseline"]
    with tempfile.TemporaryDirectory(prefix="atdata-bench-pyc-") as cache:
        numpy_s = import_time("numpy", args.import_runs, cache)
        core_s = import_time("atdata_core", args.import_runs, cache)
        dataset_s = import_time("atdata_core; atdata_core.Dataset", args.import_runs, cache)
    delta = core_s - numpy_s

    def verdict(ok: bool) -> str:
        return "ok" if ok else "BELOW TARGET"

    print(f"{'measurement':<34}{'samples/s':>12}{'vs baseline':>13}  target")
    print(f"{'baseline (tarfile + msgpack)':<34}{base:>12,.0f}{1.0:>12.2f}x")
    for key, label in (("ordered", "ordered read, typed samples"), ("batched", "batched read (128, stacked)")):
        ratio = rates[key] / base
        print(f"{label:<34}{rates[key]:>12,.0f}{ratio:>12.2f}x  >= {TARGETS[key]}x {verdict(ratio >= TARGETS[key])}")
    print(f"{'ordered read, sha256 verified':<34}{rates['verified']:>12,.0f}{rates['verified'] / base:>12.2f}x  (no target)")
    print(f"{'write (ShardWriter)':<34}{rates['write']:>12,.0f}{'':>13}  >= {TARGETS['write']:,} "
          f"{verdict(rates['write'] >= TARGETS['write'])}")
    print(
        f"import time: atdata_core {core_s * 1000:.0f} ms, numpy {numpy_s * 1000:.0f} ms, "
        f"delta {delta * 1000:+.0f} ms (target <= {TARGETS['import'] * 1000:.0f} ms) "
        f"{verdict(delta <= TARGETS['import'])}"
    )
    print(
        f"  with the read path loaded (atdata_core.Dataset: numpy, msgpack, codec, shards): "
        f"{dataset_s * 1000:.0f} ms, delta {(dataset_s - numpy_s) * 1000:+.0f} ms vs numpy"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
