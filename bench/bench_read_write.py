"""Read and write throughput of atdata-core beside the baselines it is measured against, in one run.

Run from the repository root:

    python bench/bench_read_write.py                      # every section, a few minutes
    python bench/bench_read_write.py --only small,large   # sections: small large http startup write import
    python bench/bench_read_write.py --repeat 9           # more rounds: steadier on a busy machine

Sections (every ratio is against a baseline measured in the same run):

- ``small``: 20,000 samples (a 3x64x64 ``uint8`` array, a ``str``, a ``float``)
  in 10 shards of 2,000. Baselines: the minimal loop (a whole-file read, 512-byte
  headers walked, ``msgpack.unpackb``, ``np.frombuffer``: no checks, no
  objects), :mod:`tarfile` in streaming mode with ``msgpack.unpackb``, and
  webdataset's reader with ``msgpack.unpackb`` (when installed). Ours: the
  ordered typed read, the batched read (128, arrays read as one array per
  batch), and both with every shard's sha256 verified: hashed on every read
  (a first read of the files), and with the files remembered as verified
  (``[shards] remember_verified``: unchanged local files are not hashed
  again, as in a training run's later epochs).
- ``large``: 1,000 samples of one 1 MiB ``float32`` array, in 10 shards of
  100 MiB. Baseline: reading the same files from the page cache (one copy, into
  a reused buffer). Ours: the ordered read, unverified and verified.
- ``http``: the ``small`` shards from a local HTTP server (another process, on
  loopback). Baseline: a plain streamed download of the same files
  (``requests``, 1 MiB pieces). Ours: the ordered typed read, unverified and
  verified, and HTTP storage alone (the shards streamed through
  ``HttpStorage``, 1 MiB reads, nothing decoded).
- ``startup``: a fresh process, from ``Dataset(...)`` to its first sample, for
  local paths (no plugin discovery), and the same after discovering plugins.
- ``write``: ``ShardWriter``, small samples per second.
- ``import``: ``python -c "import atdata_core"`` beside ``python -c "import numpy"``.

Each section runs every reader once per round, interleaved, for ``--repeat``
rounds, and keeps each reader's best: background load then hits all of them
alike. Nothing is asserted: these are figures, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
from numpy.typing import NDArray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import atdata_core  # noqa: E402
from atdata_core import Dataset, ShardWriter  # noqa: E402
from atdata_core._pipeline import _local_workers  # noqa: E402 - how many local shards a read hashes at once

SECTIONS = ("small", "large", "http", "startup", "write", "import")

# (reader compared against, lowest ratio wanted), per section
SMALL_TARGETS = {
    "ordered": ("minimal", 0.75),  # typed ordered read >= 0.75x the minimal loop
    "batched": ("minimal", 1.0),  # batched read >= 1.0x the minimal loop
    "ordered, verified": ("ordered", 0.9),  # verification costs at most 10%
    "batched, verified": ("batched", 0.9),
    "ordered, verified, files remembered": ("ordered", 0.9),
    "batched, verified, files remembered": ("batched", 0.9),
}
LARGE_TARGETS = {"ordered": ("page-cache read", 0.5), "ordered, verified": ("ordered", 0.9)}
HTTP_TARGETS = {"ordered": ("plain download", 0.9), "ordered, verified": ("ordered", 0.9)}
WRITE_TARGET = 40_000  # small samples/s

TABLES: list[dict[str, Any]] = []  # every table printed, for --json


@atdata_core.packable
class ImageSample:
    image: NDArray[np.uint8]
    label: str
    score: float


@atdata_core.packable
class LargeSample:
    data: NDArray[np.float32]


# --------------------------------------------------------------------------- measuring


def rounds(
    readers: dict[str, tuple[Callable[[], int], int]], repeat: int, cpu: dict[str, float] | None = None,
    server_pid: int | None = None,
) -> dict[str, float]:
    """Items per second of each reader: best of ``repeat`` rounds, each round running every reader once.

    With ``cpu``, it receives each reader's CPU seconds per item in its best round: this process's
    (every thread) plus the server process's, when ``server_pid`` is given."""
    best = {name: float("inf") for name in readers}
    for _ in range(repeat):
        for name, (read, expected) in readers.items():
            cpu_start = time.process_time() + _process_cpu(server_pid)
            start = time.perf_counter()
            got = read()
            elapsed = time.perf_counter() - start
            used = time.process_time() + _process_cpu(server_pid) - cpu_start
            if got != expected:
                raise SystemExit(f"{name} read {got} items, expected {expected}")
            if elapsed < best[name] and cpu is not None:
                cpu[name] = used / expected
            best[name] = min(best[name], elapsed)
    return {name: readers[name][1] / seconds for name, seconds in best.items()}


def _process_cpu(pid: int | None) -> float:
    """CPU seconds (user and system) of another process so far, from /proc; 0 where unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def table(title: str, unit: str, rates: dict[str, float], base: str, targets: dict[str, tuple[str, float]],
          scale: float = 1.0, notes: tuple[str, ...] = ()) -> None:
    """Print rates side by side, each as a ratio to ``base`` or to the reader its target names."""
    print(f"\n{title}")
    print(f"  {'reader':<38}{unit:>12}{'ratio':>8}  against / target")
    rows = []
    for name, rate in rates.items():
        against, wanted = targets.get(name, (base, None))
        ratio = rate / rates[against]
        if wanted is not None:
            text = f"{against}, >= {wanted}x: {'ok' if ratio >= wanted else 'BELOW TARGET'}"
        else:
            text = "" if name == base else against
        print(f"  {name:<38}{rate * scale:>12,.0f}{ratio:>7.2f}x  {text}")
        target = f">= {wanted}x {against}: {'met' if ratio >= wanted else 'not met'}" if wanted is not None else ""
        rows.append([name, f"{rate * scale:,.0f}", f"{ratio:.2f}x {'' if name == base else against}".strip(), target])
    for note in notes:
        print(f"  {note}")
    TABLES.append({"title": title, "columns": ["reader", unit, "ratio", "target"], "rows": rows,
                   "notes": [note.strip() for note in notes]})


# --------------------------------------------------------------------------- the readers


def minimal_loop(urls: list[str], field: str) -> int:
    """The floor: whole-file read, headers walked, msgpack.unpackb, np.frombuffer. No checks, no objects."""
    n = 0
    unpackb, frombuffer = msgpack.unpackb, np.frombuffer
    for url in urls:
        with open(url, "rb") as f:
            data = f.read()
        pos, end = 0, len(data)
        while pos + 512 <= end:
            header = data[pos : pos + 512]
            if header[0] == 0:
                break
            size = int(header[124:135], 8)
            pos += 512
            if header[:100].rstrip(b"\0").endswith(b".msgpack"):
                value = unpackb(data[pos : pos + size])[field]
                length = value[0]
                frombuffer(value, dtype=value[1 : 1 + length].decode(), offset=2 + length + 8 * value[1 + length])
                n += 1
            pos += size + (-size % 512)
    return n


def tarfile_loop(urls: list[str]) -> int:
    n = 0
    for url in urls:
        with tarfile.open(url, mode="r|") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".msgpack"):
                    msgpack.unpackb(archive.extractfile(member).read())
                    n += 1
    return n


def webdataset_loop(urls: list[str]) -> int:
    import webdataset as wds

    n = 0
    for sample in wds.WebDataset(urls, shardshuffle=False):
        value = msgpack.unpackb(sample["msgpack"])["image"]
        length = value[0]
        np.frombuffer(value, dtype=value[1 : 1 + length].decode(), offset=2 + length + 8 * value[1 + length])
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
        n += batch.image.shape[0]  # the arrays as one (128, 3, 64, 64) array
    return n


def page_cache_read(urls: list[str]) -> int:
    """Every byte of the files, one copy out of the page cache into a reused 1 MiB buffer."""
    buffer = bytearray(1 << 20)
    total = 0
    for url in urls:
        with open(url, "rb", buffering=0) as f:
            while True:
                got = f.readinto(buffer)
                if not got:
                    break
                total += got
    return total


def large_ordered(ds: Dataset) -> int:
    total = 0
    for sample in ds.ordered():
        total += sample.data.nbytes
    return total


# --------------------------------------------------------------------------- sections


def write_small(folder: str, n: int, per_shard: int) -> tuple[float, list[Any]]:
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(256, 3, 64, 64), dtype=np.uint8)  # 256 distinct images, reused
    samples = [ImageSample(pool[i % 256], f"class-{i % 10}", i * 0.25) for i in range(n)]
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    with ShardWriter(os.path.join(folder, "data-%06d.tar"), maxcount=per_shard) as sink:
        for sample in samples:
            sink.write(sample)
    return time.perf_counter() - start, sink.shards


def section_small(args: argparse.Namespace, work: str) -> dict[str, float]:
    _, shards = write_small(os.path.join(work, "small"), args.samples, args.samples // 10)
    urls = [s.url for s in shards]
    plain = Dataset[ImageSample](urls)  # no checksums
    verified = Dataset[ImageSample](shards)  # ShardInfo records: every shard's sha256 is checked
    n = args.samples
    readers = {
        "minimal": (lambda: minimal_loop(urls, "image"), n),
        "tarfile + msgpack": (lambda: tarfile_loop(urls), n),
    }
    try:
        import webdataset  # noqa: F401

        readers["webdataset + msgpack"] = (lambda: webdataset_loop(urls), n)
    except ImportError:
        pass
    readers.update(
        {
            "ordered": (lambda: ordered(plain), n),
            "batched": (lambda: batched(plain), n),
            "ordered, verified": (lambda: ordered(verified), n),
            "batched, verified": (lambda: batched(verified), n),
        }
    )
    # Unchanged local files verified once are not hashed again ([shards] remember_verified, off
    # for the rows above): a training run's later epochs. Files are remembered once settled.
    time.sleep(max(0.0, 2.1 - (time.time() - os.path.getmtime(urls[-1]))))
    remembered(lambda: ordered(verified))
    readers["ordered, verified, files remembered"] = (lambda: remembered(lambda: ordered(verified)), n)
    readers["batched, verified, files remembered"] = (lambda: remembered(lambda: batched(verified)), n)
    readers["(sha256 of the shards alone)"] = (lambda: _sha256_files(urls, n), n)
    rates = rounds(readers, args.repeat)
    size = sum(s.size for s in shards) / 1e6
    table(
        f"Small samples: {n:,} (3x64x64 uint8, str, float), {len(urls)} shards, {size:.0f} MB",
        "samples/s",
        rates,
        "minimal",
        SMALL_TARGETS,
        notes=_verified_ceiling(rates, "(sha256 of the shards alone)", ("ordered", "batched"), hashes=_local_workers()),
    )
    return rates


def remembered(read: Callable[[], int]) -> int:
    """``read()`` with verified local files remembered (the default; this benchmark turns it off)."""
    os.environ["ATDATA_SHARDS_REMEMBER_VERIFIED"] = "true"
    try:
        return read()
    finally:
        os.environ["ATDATA_SHARDS_REMEMBER_VERIFIED"] = "false"


def _verified_ceiling(rates: dict[str, float], sha: str, readers: tuple[str, ...], unit: str = "samples/s",
                      scale: float = 1.0, hashes: int = 1) -> tuple[str, ...]:
    """Notes comparing each verified read with its bound on this machine. The hash runs beside the
    decoding, ``hashes`` shards at once (each stream at most as fast as sha256 alone), and the
    decoding and the hashes need their CPU per item together: the bound is the least of the
    unverified read, ``hashes`` sha256 streams, and the cores over the CPU per item of both."""
    cores = os.cpu_count() or 1
    notes = [
        f"verified: sha256 beside the decoding, {hashes} shard(s) hashed at once; bound on {cores} cores "
        "(the decoding and the hash each at their own CPU cost per item):"
    ]
    for name in readers:
        plain, sha_rate = rates[name], rates[sha]
        bound = min(plain, hashes * sha_rate, cores / (1 / plain + 1 / sha_rate))
        got = rates[f"{name}, verified"]
        notes.append(
            f"  {name}: bound {bound * scale:,.0f} {unit} = {bound / plain:.2f}x unverified; verified reaches "
            f"{got / bound:.0%} of it (one shard hashed at a time: {min(plain, sha_rate) / plain:.2f}x)"
        )
    return tuple(notes)


def _sha256_files(urls: list[str], count: int) -> int:
    """sha256 of every shard, read a MiB at a time: what verification costs on one core."""
    import hashlib

    for url in urls:
        digest = hashlib.sha256()
        with open(url, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return count


def section_large(args: argparse.Namespace, work: str) -> dict[str, float]:
    folder = os.path.join(work, "large")
    rng = np.random.default_rng(1)
    pool = [rng.standard_normal((512, 512), dtype=np.float32) for _ in range(8)]
    with ShardWriter(os.path.join(folder, "large-%03d.tar"), maxcount=100, maxsize=None) as sink:
        for i in range(args.large):
            sink.write(LargeSample(pool[i % 8]))
    urls = [s.url for s in sink.shards]
    total = sum(os.path.getsize(url) for url in urls)
    payload = args.large * (1 << 20)
    readers = {
        "page-cache read": (lambda: page_cache_read(urls), total),
        "ordered": (lambda: large_ordered(Dataset[LargeSample](urls)), payload),
        "ordered, verified": (lambda: large_ordered(Dataset[LargeSample](sink.shards)), payload),
        "(sha256 of the shards alone)": (lambda: _sha256_files(urls, total), total),
    }
    rates = rounds(readers, args.repeat)
    # compare bytes of shards read per second: scale the array bytes up to the shard bytes
    rates = {name: rate * (total / payload if name.startswith("ordered") else 1) for name, rate in rates.items()}
    table(
        f"1 MiB samples: {args.large:,} float32 arrays of 512x512, {len(urls)} shards of 100 MiB",
        "MB/s",
        rates,
        "page-cache read",
        LARGE_TARGETS,
        scale=1e-6,
        notes=(
            "shards of 100 MiB are verified as they stream (more than [shards] verify_buffer_bytes, 64 MiB)",
            *_verified_ceiling(rates, "(sha256 of the shards alone)", ("ordered",), "MB/s", 1e-6),
        ),
    )
    return rates


def section_http(args: argparse.Namespace, work: str) -> dict[str, float]:
    import hashlib

    import requests

    from atdata_core.shards import ShardInfo
    from atdata_core.storage.http import HttpStorage

    folder = os.path.join(work, "small")
    if not os.path.isdir(folder):
        write_small(folder, args.samples, args.samples // 10)
    names = sorted(name for name in os.listdir(folder) if name.endswith(".tar"))
    infos = []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        infos.append((name, len(data), hashlib.sha256(data).hexdigest()))
    total = sum(size for _, size, _ in infos)
    n = args.samples
    server, base = _serve(folder, args.http_server)
    try:
        urls = [f"{base}/{name}" for name in names]
        records = [ShardInfo(f"{base}/{name}", n // len(names), size, digest) for name, size, digest in infos]
        session = requests.Session()

        def download() -> int:
            got = 0
            for url in urls:
                with session.get(url, stream=True, headers={"Accept-Encoding": "identity"}) as response:
                    response.raise_for_status()
                    for piece in response.iter_content(1 << 20):
                        got += len(piece)
            return got

        storage = HttpStorage()

        def storage_alone() -> int:
            got = 0
            for url in urls:
                with storage.open(url) as stream:
                    while piece := stream.read(1 << 20):
                        got += len(piece)
            return got

        local = [os.path.join(folder, name) for name in names]
        readers = {
            "plain download": (download, total),
            "HTTP storage alone (no decoding)": (storage_alone, total),
            "ordered": (lambda: ordered(Dataset[ImageSample](urls)), n),
            "ordered, verified": (lambda: ordered(Dataset[ImageSample](records)), n),
            "(decoding alone, local files)": (lambda: ordered(Dataset[ImageSample](local)), n),
        }
        # Page faults of this process in each reader's runs (fresh memory the kernel hands out page by page)
        faults: dict[str, list[int]] = {name: [] for name in readers}
        readers = {name: (_counting_faults(read, faults[name]), expected) for name, (read, expected) in readers.items()}
        cpu: dict[str, float] = {}
        rates = rounds(readers, args.repeat, cpu, server.pid)
    finally:
        server.terminate()
        server.wait()
    # the same bytes go through each: compare in shard bytes per second
    in_bytes = ("plain download", "HTTP storage alone (no decoding)")
    per_byte = {name: cpu[name] * (1 if name in in_bytes else n / total) for name in cpu}
    rates = {name: rate if name in in_bytes else rate * total / n for name, rate in rates.items()}
    # Both processes share this machine's cores: a read that downloads and decodes needs at least the
    # CPU of each, per byte. Without _process_cpu (not Linux) the bound is not printed.
    cores = os.cpu_count() or 1
    bound = min(rates["plain download"], cores / (per_byte["plain download"] + per_byte["(decoding alone, local files)"]))
    notes = [
        f"CPU per MB (client + server): plain download {per_byte['plain download'] * 1e9:.2f} ms, "
        f"decoding alone {per_byte['(decoding alone, local files)'] * 1e9:.2f} ms, "
        f"ordered {per_byte['ordered'] * 1e9:.2f} ms, verified {per_byte['ordered, verified'] * 1e9:.2f} ms, "
        f"HTTP storage alone {per_byte['HTTP storage alone (no decoding)'] * 1e9:.2f} ms",
        "page faults per MB in the client (median of the rounds): " + ", ".join(
            f"{name} {statistics.median(counts) * 1e6 / total:.0f}" for name, counts in faults.items() if counts
        ),
    ]
    if _process_cpu(os.getpid()):
        notes.append(
            f"bound on {cores} cores (download and decoding each at their own CPU cost per byte): "
            f"{bound / 1e6:,.0f} MB/s = {bound / rates['plain download']:.2f}x plain download; "
            f"ordered reaches {rates['ordered'] / bound:.0%} of it"
        )
    table(
        f"HTTP on loopback: the small shards ({total / 1e6:.0f} MB) from a server in another process "
        f"(http.server{', files sent with sendfile' if args.http_server == 'sendfile' else ''})",
        "MB/s",
        rates,
        "plain download",
        HTTP_TARGETS,
        scale=1e-6,
        notes=tuple(notes),
    )
    return rates


def _counting_faults(read: Callable[[], int], counts: list[int]) -> Callable[[], int]:
    """``read``, appending the page faults of this process during each call to ``counts`` (Unix)."""
    try:
        import resource
    except ImportError:
        return read

    def counted() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        got = read()
        counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return got

    return counted


def _serve(folder: str, kind: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import functools, http.server, sys\n"
        "class Quiet(http.server.SimpleHTTPRequestHandler):\n"
        "    def log_message(self, *args): pass\n"
        "    if sys.argv[3] == 'sendfile':\n"  # as production servers send files: no copy in the server
        "        def copyfile(self, source, outputfile):\n"
        "            outputfile.flush()\n"
        "            self.connection.sendfile(source)\n"
        "handler = functools.partial(Quiet, directory=sys.argv[1])\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), handler).serve_forever()\n"
    )
    server = subprocess.Popen([sys.executable, "-c", code, folder, str(port), kind])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise SystemExit("the HTTP server did not start")


def section_startup(args: argparse.Namespace, work: str) -> None:
    folder = os.path.join(work, "small")
    if not os.path.isdir(folder):
        write_small(folder, args.samples, args.samples // 10)
    shard = os.path.join(folder, sorted(os.listdir(folder))[0])
    probe = (
        "import sys, time\n"
        "import atdata_core\n"
        "from atdata_core import Dataset\n"
        "from atdata_core.plugins import _manager\n"
        "start = time.perf_counter()\n"
        "{discover}"
        "next(iter(Dataset(sys.argv[1])))\n"
        "print(time.perf_counter() - start, _manager.discovered())\n"
    )
    env = _bench_env(work)
    results = {}
    variants = (("local path", ""), ("local path, plugins discovered first (as before)", "_manager.get_registry()\n"))
    for label, discover in variants:
        times, discovered = [], set()
        for _ in range(args.import_runs):
            out = subprocess.run(
                [sys.executable, "-c", probe.format(discover=discover), shard],
                check=True, env=env, capture_output=True, text=True,
            ).stdout.split()
            times.append(float(out[0]))
            discovered.add(out[1])
        results[label] = (statistics.median(times), discovered)
    print(f"\nFirst sample in a fresh process, after `import atdata_core` (median of {args.import_runs} runs)")
    for label, (seconds, discovered) in results.items():
        print(f"  {label:<50}{seconds * 1000:>7.1f} ms  plugins discovered: {', '.join(sorted(discovered))}")
    TABLES.append({
        "title": f"First sample in a fresh process, after `import atdata_core` (median of {args.import_runs} runs)",
        "columns": ["start-up", "ms", "plugins discovered"],
        "rows": [[label, f"{s * 1000:.1f}", ", ".join(sorted(d))] for label, (s, d) in results.items()],
    })


def section_write(args: argparse.Namespace, work: str) -> float:
    best = min(write_small(os.path.join(work, "write"), args.samples, args.samples // 10)[0] for _ in range(args.repeat))
    rate = args.samples / best
    wanted = WRITE_TARGET
    print(f"\nWrite (ShardWriter, {args.samples:,} small samples): {rate:,.0f} samples/s "
          f"(target >= {wanted:,}: {'ok' if rate >= wanted else 'BELOW TARGET'})")
    TABLES.append({
        "title": f"Write (ShardWriter, {args.samples:,} small samples)",
        "columns": ["writer", "samples/s", "target"],
        "rows": [["ShardWriter", f"{rate:,.0f}", f">= {wanted:,}: {'met' if rate >= wanted else 'not met'}"]],
    })
    return rate


def _bench_env(work: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    env["XDG_CONFIG_HOME"] = os.path.join(work, "config")  # the user's configuration stays out of it
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    return env


def section_import(args: argparse.Namespace, work: str) -> None:
    env = _bench_env(work)

    def median(module: str) -> float:
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)  # warm the bytecode cache
        times = []
        for _ in range(args.import_runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    numpy_s = median("numpy")
    core_s = median("atdata_core")
    dataset_s = median("atdata_core; atdata_core.Dataset")
    print(f"\nImport (median of {args.import_runs} runs, warm bytecode caches)")
    print(f"  import numpy                         {numpy_s * 1000:>6.0f} ms")
    print(f"  import atdata_core                   {core_s * 1000:>6.0f} ms  ({core_s / numpy_s:.2f}x numpy)")
    print(f"  atdata_core.Dataset (the read path)  {dataset_s * 1000:>6.0f} ms  ({dataset_s / numpy_s:.2f}x numpy)")
    TABLES.append({
        "title": f"Import (median of {args.import_runs} runs, warm bytecode caches)",
        "columns": ["import", "ms", "ratio"],
        "rows": [["import numpy", f"{numpy_s * 1000:.0f}", "1.00x"],
                 ["import atdata_core", f"{core_s * 1000:.0f}", f"{core_s / numpy_s:.2f}x numpy"],
                 ["atdata_core.Dataset (the read path)", f"{dataset_s * 1000:.0f}", f"{dataset_s / numpy_s:.2f}x numpy"]],
    })


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=1_000, help="number of 1 MiB samples")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per section (each reader's best is kept)")
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument(
        "--http-server", choices=("python", "sendfile"), default="python",
        help="the loopback server: the standard library's http.server as it is (python), or sending files with sendfile",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the tables printed, as JSON, to PATH")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, msgpack {'.'.join(map(str, msgpack.version))}, "
          f"{os.cpu_count()} cores; {args.repeat} rounds, best kept")
    work = tempfile.mkdtemp(prefix="atdata-bench-")
    # Every verified read hashes its shards (a first read), except in the rows that say otherwise;
    # files remembered as verified go to this run's folder, not the user's cache.
    os.environ["ATDATA_SHARDS_REMEMBER_VERIFIED"] = "false"
    os.environ["XDG_CACHE_HOME"] = os.path.join(work, "cache")
    try:
        for name in chosen:
            globals()[f"section_{name}"](args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "read and write", "tables": TABLES}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
