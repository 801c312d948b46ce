"""Throughput of atdata datasets through Ray Data (atdata-ray) beside atdata's own read, in one run.

Run from the repository root (needs ``pip install -e 'plugins/atdata-ray[test]'``):

    python bench/bench_ray.py                       # 100,000 rows, a few minutes
    python bench/bench_ray.py --rows 20000 --repeat 1

The rows: a 3x16x16 ``uint8`` array, a ``str`` and a ``float``, in shards of
5,000 (``--shape``, ``--shard-rows``). Figures, each in rows per second, best
of ``--repeat`` rounds (background load hits every reader alike):

- ``atdata batched``: ``Dataset.ordered(batch_size=128)``, the baseline;
- ``one task in-process``: the Datasource's read tasks called one after
  another in this process (no Ray scheduling or object store): atdata's read
  plus the Arrow blocks (``SampleBatch.to_arrow``), which should stay within
  10% of the baseline;
- the same two unverified (shards given by URL, no sha256): what verifying
  costs each. atdata's own read fetches and hashes the next shard while the
  current one decodes; a read task has no next shard, and decodes its one
  shard into columns while it is read and hashed (its blocks held until the
  checksum matched);
- ``ray iter_batches(128)``: ``read_atdata(...).iter_batches(batch_size=128)``
  on a local Ray instance (2 CPUs), numpy batches;
- ``ray read -> map_batches -> Datasink``: read, a numpy ``map_batches``, and
  the shards written again by the Datasink (one writer per write task).

Ray runs with its files in a temporary folder, no dashboard, its node
addressed as 127.0.0.1, and token authentication with a token from the
environment (its gRPC servers still listen on every interface). Nothing is asserted: figures, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Ray reads its authentication mode when imported: a token of this run's own, nothing in ~/.ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Every verified read hashes its shards (none remembered as verified by an earlier round).
os.environ["ATDATA_SHARDS_REMEMBER_VERIFIED"] = "false"

import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core import Dataset, ShardWriter


@atdata_core.packable
class Row:
    image: NDArray[np.uint8]
    label: str
    score: float


def write_rows(folder: str, rows: int, shard_rows: int, shape: tuple[int, ...]) -> list[Any]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, *shape), dtype=np.uint8)
    with ShardWriter(os.path.join(folder, "rows-%06d.tar"), maxcount=shard_rows) as sink:
        for i in range(rows):
            sink.write(Row(image=images[i % 64], label=f"row-{i}", score=i * 0.5))
    return sink.shards


def best_rate(rows: int, run: Callable[[], int], repeat: int) -> tuple[float, float]:
    """The best ``(rows per second, rows per CPU-second of this process)`` over ``repeat`` runs.

    On a shared machine the wall-clock rate moves with everyone else's load;
    the CPU-time rate (every thread of this process, hashing included) much
    less, so in-process readers are compared on both.
    """
    best = (0.0, 0.0)
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        seen = run()
        elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
        if seen != rows:
            raise SystemExit(f"read {seen} rows, expected {rows}")
        best = (max(best[0], rows / elapsed), max(best[1], rows / max(cpu_used, 1e-9)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shard-rows", type=int, default=5_000)
    parser.add_argument("--shape", default="3,16,16", help="the array field's shape")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each reader's best is kept")
    parser.add_argument("--json", metavar="PATH", help="also write the table printed, as JSON, to PATH")
    args = parser.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))

    from atdata_ray import AtdataDatasink, AtdataDatasource, read_atdata

    work = tempfile.mkdtemp(prefix="atray-bench-")
    try:
        shards = write_rows(os.path.join(work, "in"), args.rows, args.shard_rows, shape)
        size = sum(info.size for info in shards)
        print(f"{args.rows:,} rows of a {'x'.join(map(str, shape))} uint8 array, a str and a float: "
              f"{len(shards)} shards, {size / 1e6:.0f} MB")

        def atdata_batched() -> int:
            seen = 0
            for batch in Dataset[Row](shards).ordered(batch_size=128):
                batch.image  # noqa: B018 - the array column, as a consumer would take it
                seen += len(batch)
            return seen

        def one_task_in_process(source: Any = shards) -> int:
            datasource = AtdataDatasource(source, Row)
            return sum(block.num_rows for task in datasource.get_read_tasks(1) for block in task())

        urls = [info.url for info in shards]  # no sha256: nothing to verify

        def atdata_batched_unverified() -> int:
            return sum(len(batch) for batch in Dataset[Row](urls).ordered(batch_size=128))

        rates: dict[str, tuple[float, float]] = {}
        # interleaved rounds: the two in-process readers see the same load
        for _ in range(args.repeat):
            for name, run in (
                ("atdata batched", atdata_batched),
                ("one task in-process", one_task_in_process),
                ("atdata batched, unverified", atdata_batched_unverified),
                ("one task in-process, unverified", lambda: one_task_in_process(urls)),
            ):
                wall, cpu = best_rate(args.rows, run, 1)
                before = rates.get(name, (0.0, 0.0))
                rates[name] = (max(before[0], wall), max(before[1], cpu))

        import ray
        import ray.data

        ray_temp = os.path.join(work, "ray")
        os.makedirs(ray_temp)
        ray.init(num_cpus=2, object_store_memory=512 * 1024 * 1024, _temp_dir=ray_temp,
                 include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 logging_level="warning")
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        try:
            def ray_iter_batches() -> int:
                return sum(len(b["label"]) for b in read_atdata(shards, Row).iter_batches(batch_size=128))

            rounds = {"out": 0}

            def ray_read_map_write() -> int:
                def halve(batch: dict[str, Any]) -> dict[str, Any]:
                    batch["image"] = batch["image"] // 2
                    return batch

                rounds["out"] += 1
                sink = AtdataDatasink(os.path.join(work, f"out-{rounds['out']}"), Row, maxcount=args.shard_rows)
                read_atdata(shards, Row).map_batches(halve, batch_format="numpy").write_datasink(sink)
                return sum(info.count for info in sink.shards)

            ray_iter_batches()  # workers started and warm before timing
            rates["ray iter_batches(128)"] = best_rate(args.rows, ray_iter_batches, args.repeat)
            rates["ray read -> map_batches -> Datasink"] = best_rate(args.rows, ray_read_map_write, args.repeat)
            # (Ray's CPU time is spent in its worker processes: only the wall clock compares)
        finally:
            ray.shutdown()

        base = rates["atdata batched"]
        print(f"{'reader':<38} {'rows/s':>10} {'vs atdata':>10}   {'rows/CPU-s':>10} {'vs atdata':>10}")
        for name, (wall, cpu) in rates.items():
            in_process = not name.startswith("ray ")
            cpu_text = f"{cpu:>10,.0f} {cpu / base[1]:>9.2f}x" if in_process else f"{'-':>10} {'-':>10}"
            print(f"{name:<38} {wall:>10,.0f} {wall / base[0]:>9.2f}x   {cpu_text}")
        task = rates["one task in-process"]
        print(f"one read task in-process: {task[0] / base[0]:.2f}x atdata's batched read by wall clock, "
              f"{task[1] / base[1]:.2f}x by CPU time (wanted >= 0.90x)")
        plain, plain_task = rates["atdata batched, unverified"], rates["one task in-process, unverified"]
        print(f"unverified: {plain_task[0] / plain[0]:.2f}x by wall clock, {plain_task[1] / plain[1]:.2f}x by CPU time")
        if args.json:
            rows = []
            for name, (wall, cpu) in rates.items():
                in_process = not name.startswith("ray ")
                target = ""
                if name == "one task in-process":
                    ok = task[0] / base[0] >= 0.9 or task[1] / base[1] >= 0.9
                    target = f">= 0.90x atdata batched: {'met' if ok else 'not met'}"
                rows.append([name, f"{wall:,.0f}", f"{wall / base[0]:.2f}x", f"{cpu:,.0f}" if in_process else "-",
                             f"{cpu / base[1]:.2f}x" if in_process else "-", target])
            table = {"title": f"Ray Data through atdata-ray: {args.rows:,} rows in shards of {args.shard_rows:,}",
                     "columns": ["reader", "rows/s", "vs atdata", "rows/CPU-s", "vs atdata", "target"], "rows": rows}
            with open(args.json, "w") as f:
                json.dump({"benchmark": "Ray Data", "tables": [table]}, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
