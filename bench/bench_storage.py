"""Read throughput of one dataset from each storage backend, side by side; publishing time per MB.

Run from the repository root (the blob column needs atdata-storage-blob installed
and Node >= 22 for the local PDS sandbox, which ``pip`` brings):

    python bench/bench_storage.py                     # a ~48 MB dataset
    python bench/bench_storage.py --mb 100 --repeat 3
    python bench/bench_storage.py --only local,blobs

One dataset of typed samples (a 3x64x64 ``uint8`` array and a label, ~12 KB
each) is written once to local shards of at most 5 MiB (a PDS's default blob
limit, so every backend gets the same shards). Each backend is one function in
``BACKENDS``: it places those shards where it reads them from (timed, when that
is an upload) and returns a :class:`Placed` that opens the dataset again. The
reading is the same for every column: iterate the whole dataset into typed
samples, every shard's sha256 verified, best of ``--repeat`` rounds (each round
reads from every backend once, in turn).

- ``local``: the shards where they were written.
- ``blobs``: published with ``publish_dataset(..., storage="blob")`` to a fresh
  account on a local PDS sandbox (loopback), then loaded as another reader
  would (``atdata_core.load`` of the entry: blobs streamed with
  ``com.atproto.sync.getBlob`` and checked against their CIDs).

To add a column, write ``def mystore(bench: Bench) -> Placed`` and add it to
``BACKENDS``. Nothing is written to the user's configuration: the run uses a
temporary configuration folder. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

import atdata_core  # noqa: E402
from atdata_core import ShardWriter, packable  # noqa: E402

SHARD_BYTES = 5 * 1024 * 1024
READ_TARGET = 0.5  # remote reads at least half as fast as local ones, on loopback


@packable
class Frame:
    pixels: NDArray[np.uint8]  # (3, 64, 64)
    label: str


@dataclass
class Bench:
    """What every backend function gets: the dataset written locally, a scratch folder, shared services."""

    folder: Path
    shards: list[Any]  # ShardInfo of the local shards
    samples: int
    bytes: int
    _sandbox: Any = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def sandbox(self) -> Any:
        """A local PDS sandbox (started on first use, stopped at the end), with this run's configuration
        pointing at it."""
        if self._sandbox is None:
            from urllib.parse import urlsplit

            from atdata_core.plugins import reset_plugins
            from atdata_core.sandbox import Sandbox

            sandbox = Sandbox(self.folder / "sandbox")
            info = sandbox.up(parent_pid=os.getpid())
            self._closers.append(sandbox.down)
            os.environ["ATDATA_PLC_URL"] = info.plc_url
            # The sandbox's hosts are on loopback: allow the PDS endpoint its DID documents name.
            hosts = sorted({urlsplit(url).netloc for url in (info.pds_url, info.plc_url)})
            os.environ["ATDATA_NETWORK_ALLOW_HOSTS"] = ",".join(hosts)
            reset_plugins()
            self._sandbox = info
        return self._sandbox

    def account(self, name: str) -> Any:
        """A fresh sandbox account, logged in (its session kept in this run's configuration folder)."""
        from atdata_core.plugins import Client
        from atdata_core.sandbox import create_account

        info = self.sandbox()
        password = secrets.token_urlsafe(12)
        did, handle = create_account(f"{name}{secrets.token_hex(3)}.test", password, pds_url=info.pds_url)
        return Client.login(handle, password, pds_url=info.pds_url)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()


@dataclass
class Placed:
    """A backend's copy of the dataset: ``open()`` gives the Dataset to read; ``publish_seconds`` what placing took."""

    open: Callable[[], Any]
    publish_seconds: float | None = None


# --------------------------------------------------------------------------- backends: one function each


def local(bench: Bench) -> Placed:
    from atdata_core.plugins import ShardRef

    refs = [ShardRef(info.url, info.sha256, info.count, info.size) for info in bench.shards]
    return Placed(lambda: atdata_core.Dataset(shards=refs, sample_type=Frame))


def blobs(bench: Bench) -> Placed:
    alice = bench.account("alice")
    schema = atdata_core.publish_schema(alice, Frame, schema_id="com.example.frame", version="1.0.0")
    started = time.perf_counter()
    entry = atdata_core.publish_dataset(alice, "frames", bench.shards, schema=schema, storage="blob")
    seconds = time.perf_counter() - started
    return Placed(lambda: atdata_core.load(entry.uri, Frame), publish_seconds=seconds)


_MOTO_SERVER = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the benchmark closes it
server.stop()
"""


def s3(bench: Bench, *, part_mib: int = 8, concurrency: int = 4, multipart_mib: int = 64) -> Placed:
    """moto's S3-compatible server in a process of its own on loopback, through atdata-storage-s3:
    published with ``publish_dataset(..., storage="s3://bench/frames/")`` (one PUT per shard), loaded
    from the entry. Also prints the write throughput of one large object as a multipart upload."""
    import subprocess

    import boto3

    from atdata_core.plugins import reset_plugins, storage_backend

    server = subprocess.Popen([sys.executable, "-c", _MOTO_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)

    def stop() -> None:
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    bench._closers.append(stop)
    endpoint = f"http://127.0.0.1:{server.stdout.readline().strip()}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      ATDATA_S3_ENDPOINT=endpoint, ATDATA_S3_PART_SIZE=str(part_mib << 20),
                      ATDATA_S3_MAX_CONCURRENCY=str(concurrency))
    reset_plugins()
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")

    alice = bench.account("alice")
    schema = atdata_core.publish_schema(alice, Frame, schema_id="com.example.frame", version="1.0.0")
    started = time.perf_counter()
    entry = atdata_core.publish_dataset(alice, "frames", bench.shards, schema=schema, storage="s3://bench/frames/")
    seconds = time.perf_counter() - started

    big = bench.folder / "multipart.bin"
    big.write_bytes(np.random.default_rng(1).integers(0, 256, multipart_mib << 20, dtype=np.uint8).tobytes())
    backend = storage_backend("s3://bench/multipart.bin")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        backend.put(big, "s3://bench/multipart.bin")
        best = min(best, time.perf_counter() - started)
    print(f"s3: multipart write of a {multipart_mib} MiB object in {-(-multipart_mib // part_mib)} parts of "
          f"{part_mib} MiB, {concurrency} at a time: {(multipart_mib << 20) / 1e6 / best:.1f} MB/s (best of 3)")
    return Placed(lambda: atdata_core.load(entry.uri, Frame), publish_seconds=seconds)


BACKENDS: dict[str, Callable[[Bench], Placed]] = {"local": local, "blobs": blobs, "s3": s3}


# --------------------------------------------------------------------------- the run


def write_dataset(folder: Path, megabytes: float) -> tuple[list[Any], int]:
    rng = np.random.default_rng(0)
    per_sample = 3 * 64 * 64
    count = max(1, int(megabytes * 1e6 / per_sample))
    with ShardWriter(str(folder / "frames-%06d.tar"), maxsize=SHARD_BYTES) as sink:
        for index in range(count):
            sink.write(Frame(pixels=rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), label=f"frame-{index}"))
    return sink.shards, count


def read_seconds(placed: dict[str, Placed], repeat: int) -> dict[str, float]:
    """Seconds of each backend's fastest full read; every round reads from each backend once, in turn,
    so that other work on the machine weighs on all of them alike. For a remote backend, also
    ``"<name> download"``: every shard streamed through the backend and thrown away (no decoding,
    no reader's checksum), shard after shard: what the storage alone delivers."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        for name, place in placed.items():
            dataset = place.open()
            started = time.perf_counter()
            count = sum(1 for _ in dataset)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
            assert count > 0
            if name != "local":
                started = time.perf_counter()
                _download(dataset.urls)
                best[f"{name} download"] = min(best.get(f"{name} download", float("inf")),
                                               time.perf_counter() - started)
    return best


def _download(urls: list[str]) -> int:
    from atdata_core.storage import open_shard

    total = 0
    for url in urls:
        with open_shard(url) as stream:
            while piece := stream.read(1 << 20):
                total += len(piece)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=48.0, help="dataset size in MB (default 48)")
    parser.add_argument("--repeat", type=int, default=3, help="reads per backend; the fastest is reported")
    parser.add_argument("--only", help=f"comma-separated backends (default: all of {', '.join(BACKENDS)})")
    parser.add_argument("--json", metavar="PATH", help="also write the table printed, as JSON, to PATH")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",")] if args.only else list(BACKENDS)
    unknown = [name for name in chosen if name not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")

    with tempfile.TemporaryDirectory(prefix="atdata-bench-storage-") as tmp:
        folder = Path(tmp)
        # This run's own configuration: never the user's folders, sessions or sandbox.
        os.environ["XDG_CONFIG_HOME"] = str(folder / "config")
        os.environ["ATDATA_SANDBOX_STATE"] = str(folder / "no-user-sandbox")
        # every read hashes its shards, local files too (not remembered as verified by an earlier round)
        os.environ["ATDATA_SHARDS_REMEMBER_VERIFIED"] = "false"
        for name in ("ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_PUBLISH_STORAGE"):
            os.environ.pop(name, None)
        (folder / "shards").mkdir()
        shards, samples = write_dataset(folder / "shards", args.mb)
        total = sum(info.size for info in shards)
        bench = Bench(folder, shards, samples, total)
        print(f"dataset: {samples:,} samples, {total / 1e6:.1f} MB in {len(shards)} shards of at most "
              f"{SHARD_BYTES / 2**20:.0f} MiB; best of {args.repeat} reads, sha256 verified")
        try:
            placed = {name: BACKENDS[name](bench) for name in chosen}
            seconds = read_seconds(placed, args.repeat)
            rows = [(name, seconds[name], placed[name].publish_seconds) for name in chosen]
            downloads = [(name, seconds[f"{name} download"]) for name in chosen if name != "local"]
        finally:
            bench.close()

    local_seconds = next((seconds for name, seconds, _ in rows if name == "local"), None)
    alone = {name: seconds for name, seconds in downloads}
    table_rows = []
    print(f"{'storage':<10} {'MB/s':>8} {'samples/s':>11} {'vs local':>9} {'publish s/MB':>13} {'publish MB/s':>13}"
          "  target")
    for name, seconds, publish in rows:
        ratio = f"{local_seconds / seconds:.2f}x" if local_seconds else "-"
        per_mb = f"{publish / (total / 1e6):.4f}" if publish is not None else "-"
        publish_rate = f"{total / 1e6 / publish:.1f}" if publish is not None else "-"
        target = ""
        if local_seconds and name != "local":
            target = f"  >= {READ_TARGET}x local: {'ok' if local_seconds / seconds >= READ_TARGET else 'BELOW TARGET'}"
        print(f"{name:<10} {total / 1e6 / seconds:>8.1f} {samples / seconds:>11,.0f} {ratio:>9} {per_mb:>13} "
              f"{publish_rate:>13}{target}")
        backend_alone = f"{total / 1e6 / alone[name]:,.0f}" if name in alone else ""
        typed_vs_alone = f"{alone[name] / seconds:.2f}x" if name in alone else ""
        table_rows.append([name, f"{total / 1e6 / seconds:,.0f}", f"{samples / seconds:,.0f}", ratio, backend_alone,
                           typed_vs_alone, per_mb, target.strip().replace("BELOW TARGET", "not met").replace("ok", "met")])
    for name, seconds in downloads:
        read = next(row[1] for row in rows if row[0] == name)
        print(f"{name}: the shards streamed through the backend alone, shard after shard, without decoding: "
              f"{total / 1e6 / seconds:.1f} MB/s; the typed read reaches {seconds / read:.2f}x that")
    if args.json:
        table = {
            "title": f"Storage backends: {samples:,} samples, {total / 1e6:.1f} MB in {len(shards)} shards, read typed "
                     f"and sha256 verified (best of {args.repeat})",
            "columns": ["storage", "MB/s", "samples/s", "vs local", "the backend alone, MB/s", "typed vs alone",
                        "publish s/MB", "target"],
            "rows": table_rows,
        }
        with open(args.json, "w") as f:
            json.dump({"benchmark": "storage backends", "tables": [table]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
