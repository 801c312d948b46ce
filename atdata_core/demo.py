"""The main job on a whole local federation, as ``atdata demo`` (and ``make demo``) runs it.

1. The local PDS sandbox (a reference PDS and an in-memory PLC directory on
   loopback) and, beside it, an AppView (``atdata appview serve``: the embedded
   SQLite store, following the sandbox's firehose). Both are reused when they
   already run here, and left running at the end: ``atdata sandbox down``
   stops them.
2. Two accounts, ``alice.test`` and ``bob.test``.
3. Alice writes a typed dataset (synthetic waveforms, an array per sample) and
   publishes its schema, the schema of a lighter view and the lens between
   them, and an entry whose shards are blobs of her repository.
4. The AppView indexes the records from the firehose; bob searches it through
   the ``appview`` index provider, finds alice's dataset and its lens, and
   loads the dataset through the lens.
5. A summary: counts, rates, the records' ``at://`` URIs and where the
   AppView answers.

The blob storage and the AppView are plugins (``atdata-storage-blob``,
``atdata-index-appview``), reached through the plugin registry and the
``atdata`` command, never imported. The lens's code is this module's
``trace_of`` / ``reading_from_trace``: installed with atdata-core, it is what
the lens record references and what the lens executor runs.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import attrs
import numpy as np
from numpy.typing import NDArray

from atdata_core.lenses._decorator import lens
from atdata_core.sample import packable

__all__ = ["DemoResult", "Reading", "Trace", "reading_from_trace", "run_demo", "trace_of"]

ALICE = ("alice.test", "alice-demo-password")
BOB = ("bob.test", "bob-demo-password")
DATASET = "demo-readings"
TAGS = ("demo", "seismic")
DEFAULT_APPVIEW_PORT = 2590
WAVEFORM_LENGTH = 512
SAMPLES_PER_SHARD = 500  # ~1.1 MB shards: a PDS takes blobs up to 5 MiB by default


@packable
class Reading:
    """One seismometer reading: a waveform, the station that recorded it, and a quality score."""

    waveform: NDArray[np.float32]
    station: str
    quality: float


@packable
class Trace:
    """The view a picker needs: the waveform and its station, without the quality score."""

    waveform: NDArray[np.float32]
    station: str


@lens
def trace_of(reading: Reading) -> Trace:
    return Trace(reading.waveform, reading.station)


@trace_of.putter
def reading_from_trace(view: Trace, source: Reading) -> Reading:
    return Reading(view.waveform, view.station, source.quality)


@attrs.frozen
class DemoResult:
    """What a demo run did, for the summary and for tests."""

    samples_written: int
    samples_loaded: int
    shards: int
    bytes: int
    found_by_bob: tuple[str, ...]
    view_type: str
    uris: dict[str, str]
    dids: dict[str, str]
    timings: dict[str, float]
    appview_url: str
    pds_url: str
    reused: bool
    state_dir: str | None = None  # None: the user's default sandbox state folder


def run_demo(
    *,
    samples: int = 4000,
    appview_port: int = DEFAULT_APPVIEW_PORT,
    state_dir: str | os.PathLike | None = None,
    out: TextIO | None = None,
) -> DemoResult:
    """Run the demo (see the module docstring); progress goes to ``out`` (stdout).

    Configures this process for the sandbox (its PLC directory, its PDS for
    ``.test`` handles, the AppView as the index to search), so run it in a
    process of its own, as ``atdata demo`` does. ``appview_port`` 0 takes a
    free port. ``state_dir``: the sandbox's state folder (default: the
    user's, where ``atdata sandbox status`` and ``down`` look).
    """
    out = out or sys.stdout
    _require_plugins()
    from atdata_core.atproto import Client
    from atdata_core.plugins import ENTRY_NSID, index_provider, reset_plugins
    from atdata_core.sandbox import Sandbox, default_state_dir

    timings: dict[str, float] = {}
    sandbox = Sandbox(state_dir)
    own_state_dir = sandbox.state_dir.resolve() != default_state_dir().resolve()
    if own_state_dir:  # this process's configuration reads the sandbox from there
        os.environ["ATDATA_SANDBOX_STATE"] = str(sandbox.state_dir)
    current = sandbox.status()
    if current is not None and not current.running:
        sandbox.down()  # partly gone: clear what is left (its AppView too) and start afresh
        current = None
    recorded = current.service("appview") if current is not None else None
    if recorded is not None and recorded.alive and _ingest_connected(recorded.url):
        appview_url = recorded.url
    else:
        # Checked before anything starts; an AppView of ours that stopped answering gives its port back.
        appview_url = f"http://127.0.0.1:{_appview_port(appview_port, recorded)}"
    info, reused = _sandbox_up(sandbox, out)
    passwords = {handle: _account(sandbox, info, handle, password) for handle, password in (ALICE, BOB)}
    info = sandbox.status()
    # What publishing keeps locally goes with the sandbox's data, not into your own index.
    os.environ["ATDATA_INDEX_SQLITE_PATH"] = str(info.data_dir / "demo-index.sqlite")
    _appview_up(sandbox, info, appview_url, out)
    os.environ["ATDATA_APPVIEW_URL"] = appview_url
    os.environ["ATDATA_APPVIEW_FALLBACK"] = "false"  # bob's search must come from the AppView
    reset_plugins()

    alice, bob = (Client.login(handle, passwords[handle], pds_url=info.pds_url, save=False) for handle, _ in (ALICE, BOB))
    with tempfile.TemporaryDirectory(prefix="atdata-demo-") as tmp:
        with _step(out, f"alice writes {samples:,} samples (a {WAVEFORM_LENGTH}-point float32 waveform each)") as step:
            shards = _write_shards(Path(tmp), samples)
            step.done(f"{len(shards)} shards, {_mb(sum(s.size for s in shards))}")
        timings["write"] = step.elapsed
        published = _publish(alice, shards, out, timings)

    appview = index_provider("appview")

    def indexed() -> list[Any]:
        _check_appview(sandbox)
        return _search(appview, ENTRY_NSID)

    with _step(out, "the AppView indexes alice's records from the firehose") as step:
        _wait_for(indexed, published["entry"], step)
        step.done("searchable")
    timings["index"] = step.elapsed

    found, loaded = _bob_finds_and_loads(appview, bob, alice.did, published["entry"], out, timings)
    result = DemoResult(
        samples_written=samples,
        samples_loaded=loaded,
        shards=len(shards),
        bytes=sum(s.size for s in shards),
        found_by_bob=tuple(record.uri for record in found),
        view_type=Trace.__name__,
        uris=published,
        dids={ALICE[0]: alice.did, BOB[0]: bob.did},
        timings=timings,
        appview_url=appview_url,
        pds_url=info.pds_url,
        reused=reused,
        state_dir=str(sandbox.state_dir) if own_state_dir else None,
    )
    print_summary(result, out)
    return result


def print_summary(result: DemoResult, out: TextIO) -> None:
    """The table at the end of a run: what was done, how fast, the records' URIs, where the services answer."""
    t = result.timings
    size = result.bytes / 1e6
    rows = [
        ("written", f"{result.samples_written:,} samples", t["write"], f"{result.samples_written / t['write']:,.0f} samples/s"),
        ("published", f"{result.shards} shards, {size:.1f} MB", t["publish"], f"{size / t['publish']:.1f} MB/s"),
        ("indexed by the AppView", "1 entry", t["index"], ""),
        ("found by bob", f"{len(result.found_by_bob)} dataset(s)", t["search"], ""),
        (f"loaded as {result.view_type}", f"{result.samples_loaded:,} samples", t["load"],
         f"{result.samples_loaded / t['load']:,.0f} samples/s"),
    ]
    lines = ["", "summary", f"  {'step':<24}{'count':<22}{'time':>8}  rate"]
    lines += [f"  {step:<24}{count:<22}{seconds:>7.2f}s  {rate}" for step, count, seconds, rate in rows]
    lines.append("")
    lines += [f"  {handle:<12}{did}" for handle, did in result.dids.items()]
    lines += [f"  {name:<12}{uri}" for name, uri in result.uris.items()]
    lines += [
        "",
        f"AppView  {result.appview_url}/   (web page; XRPC under /xrpc/)",
        f"PDS      {result.pds_url}",
        "Both keep running, and atdata commands on this machine use them: try `atdata search seismic`",
        f"or `atdata load @{ALICE[0]}/{DATASET}`. Stop them with: atdata sandbox down",
    ]
    if result.state_dir is not None:
        lines.append(f"(their state is not in the default folder: first export ATDATA_SANDBOX_STATE={result.state_dir})")
    out.write("\n".join(lines) + "\n")
    out.flush()


# --------------------------------------------------------------------------- the services


def _require_plugins() -> None:
    """The blob storage and the AppView plugins are installed, or an error naming what to install."""
    from atdata_core.errors import MissingImplementation
    from atdata_core.plugins import cli_commands, get_registry

    registry = get_registry()
    missing = []
    if "blob" not in registry.storage.names():
        missing.append("atdata-storage-blob")
    has_serve = any(getattr(command, "name", None) == "appview" for command in cli_commands())
    if "appview" not in registry.index_providers.names() or not has_serve:
        missing.append("atdata-index-appview")
    if missing:
        raise MissingImplementation(
            f"the demo publishes shards as PDS blobs and searches through an AppView, which "
            f"{' and '.join(missing)} provide{'s' if len(missing) == 1 else ''}. Install with: pip install {' '.join(missing)}"
        )


def _sandbox_up(sandbox: Any, out: TextIO) -> tuple[Any, bool]:
    import logging

    from atdata_core.sandbox import ensure_installed, is_installed

    info = sandbox.status()
    if info is not None and info.running:
        out.write(f"using the sandbox already running here: PDS {info.pds_url}, PLC {info.plc_url}\n")
        return info, True
    if not is_installed():
        with _step(out, "first run: installing the reference PDS (its npm packages, once; a minute or two)") as step:
            logger = logging.getLogger("atdata_core.sandbox")
            level = logger.level
            logger.setLevel(logging.ERROR)  # its own notice would break this step's line
            try:
                step.done(f"in {ensure_installed()}")
            finally:
                logger.setLevel(level)
    with _step(out, "starting the local PDS and PLC directory") as step:
        info = sandbox.up()
        step.done(f"PDS {info.pds_url}, PLC {info.plc_url}")
    return info, False


def _account(sandbox: Any, info: Any, handle: str, password: str) -> str:
    """The password of the demo account ``handle`` on the sandbox, created if it is not there yet."""
    for account in info.accounts:
        if account.handle == handle:
            return account.password
    sandbox.create_account(handle, password)
    return password


def _appview_port(port: int, recorded: Any) -> int:
    """The port to start the AppView on: ``port`` if free (0: any free one), or a clear error."""
    from atdata_core.errors import SandboxError

    if recorded is not None and recorded.alive:
        return urlsplit(recorded.url).port or port  # restarted where it was
    if port == 0:
        return _free_port()
    if not _port_free(port):
        raise SandboxError(
            f"port {port} on 127.0.0.1 is in use by another program, so the AppView cannot listen there. "
            "Stop that program, or choose another port: atdata demo --appview-port PORT (0 takes a free one)"
        )
    return port


def _appview_up(sandbox: Any, info: Any, url: str, out: TextIO) -> None:
    """The AppView at ``url`` beside the sandbox: the one running there, else a new one."""
    running = info.service("appview")
    if running is not None and running.url == url and running.alive and _ingest_connected(url):
        out.write(f"using the AppView already running here: {url}\n")
        return
    argv = [
        sys.executable, "-m", "atdata_core.cli", "appview", "serve",
        "--store", f"sqlite:///{info.data_dir / 'appview.db'}",
        "--host", "127.0.0.1", "--port", str(urlsplit(url).port), "--subscribe", info.pds_url,
    ]
    with _step(out, f"starting the AppView on {url} (SQLite store, following the PDS's firehose)") as step:
        sandbox.start_service("appview", argv, url=url, health="/xrpc/_health")
        _wait_for(lambda: _check_appview(sandbox) or _ingest_connected(url), True, step, timeout=60)
        step.done("subscribed")


def _check_appview(sandbox: Any) -> None:
    """A clear error, with the end of its log, when the AppView beside the sandbox has stopped."""
    from atdata_core.errors import SandboxError
    from atdata_core.sandbox._install import tail

    info = sandbox.status()
    service = info.service("appview") if info is not None else None
    if service is None or not service.alive:
        log = info.data_dir / "appview.log" if info is not None else Path("appview.log")
        raise SandboxError(f"the AppView stopped; its log {log} ends with:\n{tail(log, 15)}")


def _ingest_connected(url: str) -> bool:
    """Whether the AppView at ``url`` answers its health check with its firehose subscription connected."""
    import json

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(f"{url}/xrpc/_health", timeout=2) as resp:
            health = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    sources = health.get("ingest", {}).get("sources", []) if isinstance(health, dict) else []
    return bool(sources) and all(source.get("connected") for source in sources)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server will: a port whose last connections are still closing (TIME_WAIT) is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- alice's side


def _write_shards(folder: Path, count: int) -> list[Any]:
    from atdata_core.shards import ShardWriter

    rng = np.random.default_rng(2024)
    t = np.linspace(0.0, 8 * np.pi, WAVEFORM_LENGTH, dtype=np.float32)
    with ShardWriter(folder / "readings-%06d.tar", maxcount=SAMPLES_PER_SHARD) as sink:
        for i in range(count):
            wave = np.sin(t * (1 + i % 7)) + 0.1 * rng.standard_normal(WAVEFORM_LENGTH).astype(np.float32)
            sink.write(Reading(wave.astype(np.float32), f"ST{i % 12:02d}", float(rng.random())))
    return list(sink.shards)


def _publish(alice: Any, shards: list[Any], out: TextIO, timings: dict[str, float]) -> dict[str, str]:
    """Alice's schemas, lens and entry; the entry and lens of an earlier run are replaced."""
    from atdata_core.plugins import ENTRY_NSID, LENS_NSID
    from atdata_core.publish import publish_dataset, publish_lens, publish_schema

    with _step(out, "alice publishes the schemas and the lens") as step:
        reading = publish_schema(alice, Reading, schema_id="com.example.demo.reading", version="1.0.0",
                                 description="A seismometer reading: waveform, station, quality", tags=list(TAGS))
        trace = publish_schema(alice, Trace, schema_id="com.example.demo.trace", version="1.0.0",
                               description="A waveform and its station")
        # One entry and one lens of the demo's name at a time: re-running replaces them.
        _delete_named(alice, ENTRY_NSID, DATASET)
        _delete_named(alice, LENS_NSID, trace_of.name)
        repository, commit = _code_location()
        lens_record = publish_lens(alice, trace_of, source_schema=reading, target_schema=trace,
                                   repository=repository, commit=commit,
                                   description="Drops the quality score; putting a trace back keeps the source's")
        step.done("3 records")
    label = f"alice publishes {DATASET}: {len(shards)} shards as blobs of her repository, then the entry"
    with _step(out, label, tick=False) as step:  # publish_dataset draws its own progress bar
        entry = publish_dataset(alice, DATASET, shards, schema=reading, storage="blob", tags=list(TAGS),
                                description="Synthetic seismic readings for the atdata demo", progress=True)
        step.done(f"{_mb(sum(s.size for s in shards))} placed, entry written")
    timings["publish"] = step.elapsed
    return {"schema": reading.uri, "view schema": trace.uri, "lens": lens_record.uri, "entry": entry.uri}


def _delete_named(client: Any, collection: str, name: str) -> None:
    for item in list(client.list_records(client.did, collection)):
        if item["value"].get("name") == name:
            client.delete_record(collection, item["uri"].rsplit("/", 1)[-1])


def _code_location() -> tuple[str, str | None]:
    """Where the lens code is: the checkout's ``origin`` and its HEAD (the lens executor checks the file
    against it), else this installation's folder and a digest of this file (no commit to check there)."""
    from atdata_core.lenses import _git

    here = Path(__file__).resolve()
    root = _git.checkout_root(here)
    if root is not None:
        try:
            return _git.git(root, "remote", "get-url", "origin"), None
        except _git.GitUnavailable:
            return root.as_uri(), None
    return here.parent.parent.as_uri(), hashlib.sha256(here.read_bytes()).hexdigest()[:40]


# --------------------------------------------------------------------------- bob's side


def _search(appview: Any, collection: str) -> list[Any]:
    return appview.list_records(collection, query="seismic", tags=[TAGS[0]])


def _bob_finds_and_loads(
    appview: Any, bob: Any, alice_did: str, entry_uri: str, out: TextIO, timings: dict[str, float]
) -> tuple[list[Any], int]:
    """Bob searches the AppView, finds alice's entry and a lens from its schema, and loads it through the lens."""
    import atdata_core
    from atdata_core.errors import RecordNotFound
    from atdata_core.lenses import LensGraph
    from atdata_core.plugins import ENTRY_NSID, LENS_NSID

    with _step(out, f"bob ({bob.did}) searches the AppView for 'seismic' datasets tagged {TAGS[0]!r}") as step:
        found = _search(appview, ENTRY_NSID)
        entry = next(record for record in found if record.uri == entry_uri)
        lenses = [
            record for record in appview.list_records(LENS_NSID, repo=alice_did)
            if record.value.get("sourceSchema") == entry.value.get("schemaRef")
        ]
        if not lenses:
            raise RecordNotFound(f"the AppView lists no lens of {alice_did} from the schema of {entry_uri}")
        step.done(f"{len(found)} dataset(s), {len(lenses)} lens(es) from its schema")
    timings["search"] = step.elapsed

    with _step(out, f"bob loads {entry.value['name']} through the lens {lenses[0].value['name']}") as step:
        dataset = atdata_core.load(entry.uri, Reading, index=appview)
        trace_lens = atdata_core.load_lens(lenses[0].uri, index=appview, trust=True, executor=_lens_executor(),
                                           source_type=Reading, view_type=Trace)
        view = dataset.as_type(Trace, graph=LensGraph([trace_lens]))
        loaded = sum(1 for sample in view.ordered() if isinstance(sample, Trace))
        step.done(f"{loaded:,} of {len(dataset):,} samples as {Trace.__name__}")
    timings["load"] = step.elapsed
    return found, loaded


def _lens_executor() -> Any:
    """The built-in Python lens executor, also taking lens code from the folder you are in when that is
    where atdata-core itself is installed from.

    ``make demo`` runs in the checkout atdata-core is installed from (an editable install), a folder the
    executor refuses as a source of lens code by default: code in the folder you happen to be in is not
    code you installed. The lens here is this module, checked against its commit all the same.
    """
    from atdata_core.executors import PythonLensExecutor
    from atdata_core.plugins import lens_executor

    executor = lens_executor(language="python")
    if isinstance(executor, PythonLensExecutor) and Path.cwd().resolve() == Path(__file__).resolve().parent.parent:
        executor = PythonLensExecutor(attrs.evolve(executor.settings, allow_working_directory=True))
    return executor


def _wait_for(find: Callable[[], Any], wanted: Any, step: _Step, *, timeout: float = 120.0) -> Any:
    """Ask ``find`` until it returns ``wanted`` (or a list of records holding that URI)."""
    from atdata_core.errors import ServiceUnavailable

    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found is wanted or found == wanted or (isinstance(found, list) and any(r.uri == wanted for r in found)):
            return found
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{step.label}: not done after {timeout:.0f} s")
        time.sleep(0.2)


# --------------------------------------------------------------------------- progress


class _Step:
    """One line per step: its label, a clock ticking on a terminal, then the outcome and how long it took."""

    def __init__(self, out: TextIO, label: str):
        self.out = out
        self.label = label
        self.started = time.perf_counter()
        self.elapsed = 0.0
        self.outcome = ""
        self._stop = threading.Event()
        self._tty = out.isatty()

    def clock(self) -> str:
        return f"{time.perf_counter() - self.started:.1f} s"

    def done(self, outcome: str) -> None:
        self.outcome = outcome

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self.out.write(f"\r{self.label} ... {self.clock()}")
            self.out.flush()


@contextmanager
def _step(out: TextIO, label: str, *, tick: bool = True) -> Iterator[_Step]:
    """A step's line; ``tick=False`` for a step that draws its own progress bar (below the label)."""
    step = _Step(out, label)
    step._tty = step._tty and tick
    out.write(f"{label} ..." if tick else f"{label} ...\n")
    out.flush()
    ticker = threading.Thread(target=step._tick, daemon=True) if step._tty else None
    if ticker is not None:
        ticker.start()
    try:
        yield step
    except BaseException:
        step._stop.set()
        out.write(" failed\n")
        raise
    finally:
        step._stop.set()
        if ticker is not None:
            ticker.join()
    step.elapsed = time.perf_counter() - step.started
    prefix = (f"\r{label} ... " if step._tty else " ") if tick else "  "
    out.write(f"{prefix}{step.outcome or 'done'} ({step.elapsed:.1f} s)\n")
    out.flush()


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
