"""The AppView at scale: ingestion, commit-to-searchable, search and paging, on SQLite and PostgreSQL.

Run from the repository root:

    python bench/bench_appview.py                         # 100,000 entries, both stores, a few minutes
    python bench/bench_appview.py --entries 10000         # a quick run
    python bench/bench_appview.py --stores sqlite --rounds 5

What it does, for each store in the same run:

1. A generated population: ``--entries`` dataset entries spread over
   accounts of 50 entries each, and one schema record per account (names,
   descriptions and tags drawn from a word list with a Zipf-like spread, so
   some words and tags are common and most are rare). Each record is its own
   signed commit, as ``createRecord`` makes it: a ``#commit`` frame with the
   commit block, the repository's tree node and the record, the commit signed
   with the account's secp256k1 key, ``prevData`` naming the previous tree
   (Sync 1.1). The frames are recorded once into a file (kept in the temporary
   folder for the next run of the same size).
2. Ingestion: a firehose server in a process of its own plays the recording
   over a websocket on loopback, and the service's own ``run_ingest`` follows
   it into a fresh store; records/s from the start to the cursor reaching the
   last frame. Every block is checked against its CID, every signature
   verified, every record validated, as in production. The accounts' DID
   documents come from a PLC directory on loopback, looked up before timing
   (the service keeps signing keys for an hour; the first commit of an account
   it has never seen costs one lookup more).
3. Commit to searchable: with ingestion still following the firehose, the
   firehose process publishes new entries, one at a time, and notes when it
   sent each; this process searches for them until each is visible. p50/p99.
4. Search: text (one or two words drawn as the records' words are), tag,
   and author (a repository's DID) queries against the store, ``--rounds``
   rounds of ``--queries`` each; p50/p99 over every query of every round.
5. Paging through 10,000 results (100 a page) of a text search that matches
   more than that, and of a tag listing: the whole walk and each page's p50/p99.

PostgreSQL runs on a throwaway server this benchmark starts itself (as the
``postgres`` user when run as root), with the server's default durability
(``fsync`` on) and ``shared_buffers`` of 1 GB (:data:`PG_SETTINGS`: the
default 128 MB holds a fifth of the 650 MB a store of 100,000 entries takes,
and a search then copies about 90 pages in from the system's cache); SQLite
is the store's own setting (WAL, ``synchronous = NORMAL``, its writer's
256 MiB page cache). The figures to beat on a 2-core machine: >= 2,000 records/s
ingested, commit-to-searchable p99 <= 1 s, search p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins" / "atdata-index-appview"))

TARGET_RATE = 2000.0
TARGET_VISIBLE_P99 = 1.0
TARGET_SEARCH_P99 = 0.020
ENTRY = "science.alt.dataset.entry"
SCHEMA = "science.alt.dataset.schema"
PER_ACCOUNT = 50
LIVE_TAG = "bench-live"
FORMAT_VERSION = 3  # of the recording; a change of the generator bumps it
#: The PostgreSQL server's settings beyond its defaults: a deployment gives the index its memory
#: (docs/operations.md), as the SQLite store gives its writer a page cache of its own.
PG_SETTINGS = {"shared_buffers": "1GB"}

# ---------------------------------------------------------------------------------------------- population

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fu", "gi", "ha", "je", "bo",
              "ce", "xu", "wy", "qa"]


def vocabulary(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Zipf:
    """Draws from ``items`` with weight 1/rank (rank 1 the most common)."""

    def __init__(self, items: list[str], rng: random.Random):
        self.items = items
        self.rng = rng
        weights = [1.0 / (rank + 1) for rank in range(len(items))]
        total = sum(weights)
        acc, self.cumulative = 0.0, []
        for weight in weights:
            acc += weight / total
            self.cumulative.append(acc)

    def draw(self) -> str:
        return self.items[min(bisect.bisect_left(self.cumulative, self.rng.random()), len(self.items) - 1)]


WORDS = vocabulary(3000, seed=1)
TAGS = [f"tag-{word}" for word in vocabulary(400, seed=2)]
PAGED_WORD = WORDS[50]


def plc_did(index: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    number, out = index * 7919 + 1_000_003, ""
    for _ in range(24):
        number, rest = divmod(number, 32)
        out += alphabet[rest]
    return "did:plc:" + out


class Account:
    """One repository, its tree a single node kept encoded entry by entry (no re-encoding of the rest)."""

    def __init__(self, index: int):
        from atdata_index_appview.ingest._crafting import Signer

        self.index = index
        self.did = plc_did(index)
        self.signer = Signer(seed=10_000 + index)
        self.paths: list[bytes] = []
        self.cids: list[bytes] = []
        self.encoded: list[bytes] = []
        self.rev: str | None = None
        self.data: bytes | None = None
        self.clock = (1_700_000_000_000_000 + index) << 10

    def _entry(self, i: int) -> bytes:
        from atdata_index_appview.ingest._crafting import Link, encode

        key, previous = self.paths[i], self.paths[i - 1] if i else b""
        prefix = 0
        while prefix < min(len(key), len(previous)) and key[prefix] == previous[prefix]:
            prefix += 1
        return encode({"p": prefix, "k": key[prefix:], "v": Link(self.cids[i]), "t": None})

    def commit_frame(self, seq: int, path: str, record: dict, stamp: str) -> bytes:
        from atdata_index_appview.ingest._crafting import Link, _head, car_bytes, cid_of, encode, frame, tid

        block = encode(record)
        cid = cid_of(block)
        key = path.encode()
        at = bisect.bisect_left(self.paths, key)
        self.paths.insert(at, key)
        self.cids.insert(at, cid)
        self.encoded.insert(at, b"")
        for i in (at, at + 1):
            if i < len(self.paths):
                self.encoded[i] = self._entry(i)
        node = _head(5, 2) + encode("e") + _head(4, len(self.encoded)) + b"".join(self.encoded) + encode("l") + b"\xf6"
        root = cid_of(node)
        self.clock += 1 << 10
        since, prev_data = self.rev, self.data
        self.rev, self.data = tid(self.clock), root
        unsigned = {"did": self.did, "version": 3, "data": Link(root), "rev": self.rev, "prev": None}
        commit = encode({**unsigned, "sig": self.signer.sign(encode(unsigned))})
        commit_cid = cid_of(commit)
        body = {
            "seq": seq, "rebase": False, "tooBig": False, "repo": self.did, "commit": Link(commit_cid),
            "rev": self.rev, "since": since, "blocks": car_bytes([commit_cid], [(commit_cid, commit), (root, node), (cid, block)]),
            "ops": [{"action": "create", "path": path, "cid": Link(cid)}], "blobs": [], "time": stamp,
        }
        if prev_data is not None:
            body["prevData"] = Link(prev_data)
        return frame("#commit", body)


def did_document(did: str, multikey: str, pds: str) -> dict:
    return {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [{"id": f"{did}#atproto", "type": "Multikey", "controller": did,
                                "publicKeyMultibase": multikey}],
        "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds}],
    }


def schema_record(account: Account, stamp: str) -> tuple[str, dict]:
    schema_id = f"org.bench.s{account.index}"
    record = {
        "$type": SCHEMA, "name": schema_id, "version": "1.0.0", "schemaType": "jsonSchema",
        "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat",
                   "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                   "properties": {"image": {"$ref": "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"},
                                  "label": {"type": "string"}},
                   "required": ["image"]},
        "createdAt": stamp,
    }
    return f"{SCHEMA}/{schema_id}:1.0.0", record


def entry_record(account: Account, number: int, words: Zipf, tags: Zipf, rng: random.Random, stamp: str,
                 extra_tags: tuple[str, ...] = ()) -> dict:
    name = " ".join(words.draw() for _ in range(rng.randint(2, 4))) + f" {account.index}-{number}"
    description = " ".join(words.draw() for _ in range(rng.randint(8, 20)))
    chosen = sorted({tags.draw() for _ in range(rng.randint(1, 5))} | set(extra_tags))
    return {
        "$type": ENTRY, "name": name,
        "schemaRef": f"at://{account.did}/{SCHEMA}/org.bench.s{account.index}:1.0.0",
        "storage": {"$type": "science.alt.dataset.storageHttp",
                    "shards": [{"url": f"https://data.example.com/{account.index}/{number}/shard-{n:03d}.tar",
                                "checksum": {"algorithm": "sha256", "digest": f"{account.index:08x}{number:08x}{n:048x}"}}
                               for n in range(2)]},
        "description": description, "tags": chosen, "license": "CC-BY-4.0",
        "size": {"samples": 1000 + number, "bytes": 1_000_000 + number, "shards": 2},
        "createdAt": stamp,
    }


def stamp_of(n: int) -> str:
    seconds = 1_735_689_600 + n  # from 2025-01-01, one record a second
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{n % 1000:03d}Z"


def record_population(entries: int, folder: Path, live: int) -> dict:
    """Write the recording (frames.bin: 4-byte lengths and frames; live.bin: the live commits) and
    population.json; returns what population.json holds."""
    meta_path = folder / "population.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == FORMAT_VERSION and meta.get("live") == live:
            return meta
    rng = random.Random(7)
    words, tags = Zipf(WORDS, rng), Zipf(TAGS, rng)
    accounts = [Account(i) for i in range(max(1, -(-entries // PER_ACCOUNT)))]
    started = time.perf_counter()
    seq = 0
    schemas = 0
    # Accounts publish in turns, as a firehose interleaves them: every account's schema first, then entries.
    order: list[int] = []
    counts = [0] * len(accounts)
    for n in range(entries):
        order.append(n % len(accounts))
    with open(folder / "frames.bin", "wb") as out:
        for account in accounts:
            seq += 1
            path, record = schema_record(account, stamp_of(seq))
            data = account.commit_frame(seq, path, record, "2025-01-01T00:00:00.000Z")
            out.write(struct.pack(">I", len(data)) + data)
            schemas += 1
        for i, index in enumerate(order):
            account = accounts[index]
            seq += 1
            counts[index] += 1
            from atdata_index_appview.ingest._crafting import tid

            path = f"{ENTRY}/{tid(account.clock + (1 << 9))}"
            data = account.commit_frame(seq, path, entry_record(account, counts[index], words, tags, rng, stamp_of(seq)),
                                        "2025-01-01T00:00:00.000Z")
            out.write(struct.pack(">I", len(data)) + data)
            if (i + 1) % 20000 == 0:
                print(f"  recorded {i + 1:,} of {entries:,} entries ({time.perf_counter() - started:.0f} s)", flush=True)
    last_seq = seq
    live_names = []
    with open(folder / "live.bin", "wb") as out:
        for n in range(live):
            account = accounts[n % len(accounts)]
            seq += 1
            counts[account.index] += 1
            from atdata_index_appview.ingest._crafting import tid

            path = f"{ENTRY}/{tid(account.clock + (1 << 9))}"
            record = entry_record(account, counts[account.index], words, tags, rng, stamp_of(10_000_000 + n), (LIVE_TAG,))
            live_names.append(f"at://{account.did}/{path}")
            data = account.commit_frame(seq, path, record, "2025-01-01T00:00:00.000Z")
            out.write(struct.pack(">I", len(data)) + data)
    meta = {
        "format": FORMAT_VERSION, "entries": entries, "schemas": schemas, "last_seq": last_seq, "live": live,
        "live_uris": live_names,
        "accounts": [{"did": a.did, "multikey": a.signer.multikey} for a in accounts],
    }
    meta_path.write_text(json.dumps(meta))
    print(f"  recorded {entries + schemas:,} commits in {time.perf_counter() - started:.0f} s", flush=True)
    return meta


def read_frames(path: Path) -> list[bytes]:
    data = path.read_bytes()
    frames, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        frames.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return frames


# ---------------------------------------------------------------------------------------------- servers


def firehose_server(folder: str, port_file: str, rate: float) -> None:
    """The firehose process: plays frames.bin to each subscriber from its cursor; on a line ``live``
    on stdin, sends live.bin's commits ``rate`` a second, writing each one's send time to live-times.json."""
    from websockets.sync.server import serve

    recorded = read_frames(Path(folder) / "frames.bin")
    live = read_frames(Path(folder) / "live.bin")
    sent_live: list[bytes] = []
    subscribers: list[Any] = []
    lock = threading.Lock()

    def handler(websocket: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(websocket.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else 0
        for data in recorded[cursor:]:
            websocket.send(data)
        with lock:
            for data in sent_live:
                websocket.send(data)
            subscribers.append(websocket)
        try:
            for _ in websocket:
                pass
        except Exception:  # noqa: BLE001 - the subscriber went away
            pass
        finally:
            with lock:
                if websocket in subscribers:
                    subscribers.remove(websocket)

    # No keepalive pings: behind a backlog of frames a pong cannot arrive in time, and the
    # subscriber would be dropped and reconnect (which the service survives, but it is not timed here).
    with serve(handler, "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None) as server:
        Path(port_file).write_text(str(server.socket.getsockname()[1]))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for line in sys.stdin:
            if line.strip() != "live":
                continue
            times = []
            start = time.time()
            for n, data in enumerate(live):
                pause = start + n / rate - time.time()
                if pause > 0:
                    time.sleep(pause)
                with lock:
                    times.append(time.time())
                    for websocket in list(subscribers):
                        websocket.send(data)
                    sent_live.append(data)
            (Path(folder) / "live-times.json").write_text(json.dumps(times))
            print("done", flush=True)
        server.shutdown()


class Firehose:
    """The firehose process, started and stopped by its process id."""

    def __init__(self, folder: Path, rate: float):
        port_file = folder / f"port-{os.getpid()}"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--firehose-server", str(folder), "--port-file", str(port_file),
             "--live-rate", str(rate)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 120
        while not port_file.exists() or not port_file.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the firehose process did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"
        port_file.unlink()

    def go_live(self) -> None:
        self.process.stdin.write("live\n")
        self.process.stdin.flush()

    def wait_live(self) -> None:
        while True:
            line = self.process.stdout.readline()
            if not line or line.strip() == "done":
                return

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


def plc_directory(documents: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = documents.get(self.path.lstrip("/"))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            body = body or b'{"message": "DID not registered"}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# ---------------------------------------------------------------------------------------------- measuring


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ingest(store: Any, meta: dict, firehose: Firehose, client: Any, stop: threading.Event) -> tuple[float, float, float, threading.Thread]:
    """Follow the firehose into ``store`` until its cursor reaches the last recorded frame:
    (records/s, seconds, CPU seconds of this process). Ingestion goes on until ``stop`` is set."""
    from atdata_index_appview.ingest import IngestSettings, run_ingest

    settings = IngestSettings(subscribe=(firehose.url,), replay=True, resync_interval=0)
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            run_ingest(settings, store, stop_event=stop, client=client)
        except BaseException as err:  # noqa: BLE001 - reported by the caller
            failure.append(err)

    started, cpu = time.perf_counter(), time.process_time()
    thread = threading.Thread(target=follow, name="ingest", daemon=True)
    thread.start()
    host = settings.subscribe[0]
    last = meta["last_seq"]
    while True:
        time.sleep(0.02)
        if failure:
            raise RuntimeError(f"ingestion failed: {failure[0]!r}")
        if (store.cursor(host) or 0) >= last:
            break
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return (meta["entries"] + meta["schemas"]) / elapsed, elapsed, cpu, thread


def commit_to_searchable(store: Any, meta: dict, firehose: Firehose, folder: Path) -> list[float]:
    """Seconds from the firehose sending each live commit to a tag search finding it."""
    found: dict[str, float] = {}
    wanted = set(meta["live_uris"])
    (folder / "live-times.json").unlink(missing_ok=True)
    firehose.go_live()
    deadline = time.monotonic() + 60 + meta["live"]
    while len(found) < len(wanted) and time.monotonic() < deadline:
        page = store.search_entries([], tags=[LIVE_TAG], limit=100)
        now = time.time()
        for record in page.records:
            if record.uri in wanted and record.uri not in found:
                found[record.uri] = now
        time.sleep(0.005)
    firehose.wait_live()
    sent = json.loads((folder / "live-times.json").read_text())
    missing = len(wanted) - len(found)
    if missing:
        print(f"  {missing} live commits were not searchable within the deadline")
    return [found[uri] - at for uri, at in zip(meta["live_uris"], sent) if uri in found]


def search_latencies(store: Any, meta: dict, rounds: int, queries: int) -> dict[str, list[float]]:
    from atdata_index_appview.store import search_words

    rng = random.Random(11)
    dids = [account["did"] for account in meta["accounts"]]
    # Words and tags drawn evenly from the vocabulary (a few match many entries, most a few
    # hundred), and separately the ten most common ones, which match most of the index: a
    # ranked search scores every match, so those cost in proportion to the index.
    kinds = {
        "text, 1 word": lambda: store.search_entries(search_words(rng.choice(WORDS)), limit=25),
        "text, 2 words": lambda: store.search_entries(search_words(f"{rng.choice(WORDS)} {rng.choice(WORDS)}"), limit=25),
        "text, a top-10 word": lambda: store.search_entries(search_words(rng.choice(WORDS[:10])), limit=25),
        "tag": lambda: store.search_entries([], tags=[rng.choice(TAGS)], limit=25),
        "tag, a top-10 tag": lambda: store.search_entries([], tags=[rng.choice(TAGS[:10])], limit=25),
        "author": lambda: store.search_entries([], did=rng.choice(dids), limit=25),
        "author + text": lambda: store.search_entries(search_words(rng.choice(WORDS)), did=rng.choice(dids), limit=25),
    }
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for kind, run in kinds.items():  # warm the caches
        for _ in range(5 if "top-10" in kind else 20):
            run()
    for _ in range(rounds):
        for kind, run in kinds.items():
            for _ in range(max(1, queries // 10) if "top-10" in kind else queries):
                started = time.perf_counter()
                run()
                times[kind].append(time.perf_counter() - started)
    return times


def paging(store: Any, total: int, rounds: int) -> dict[str, tuple[list[float], list[float], int]]:
    """Walk ``total`` results 100 a page: (walk seconds per round, page seconds, rows seen)."""
    from atdata_index_appview.store import search_words

    # A word that 10% of 100,000 entries hold, and the most common tag (a third of them).
    walks = {
        f"text {PAGED_WORD!r}": lambda after: store.search_entries(search_words(PAGED_WORD), after=after, limit=100),
        f"tag {TAGS[0]!r}": lambda after: store.search_entries([], tags=[TAGS[0]], after=after, limit=100),
    }
    out = {}
    for name, fetch in walks.items():
        walk_times, page_times, seen = [], [], 0
        for _ in range(rounds):
            after, seen, uris = None, 0, set()
            started = time.perf_counter()
            while seen < total:
                t = time.perf_counter()
                page = fetch(after)
                page_times.append(time.perf_counter() - t)
                uris.update(record.uri for record in page.records)
                seen += len(page.records)
                if page.next is None:
                    break
                after = page.next
            walk_times.append(time.perf_counter() - started)
            if len(uris) != seen:
                print(f"  {name}: {seen - len(uris)} rows came twice while paging")
        out[name] = (walk_times, page_times, seen)
    return out


def bench_store(kind: str, url: str, meta: dict, folder: Path, client: Any, args: argparse.Namespace) -> dict:
    from atdata_index_appview.store import open_store

    store = open_store(url)
    firehose = Firehose(folder, args.live_rate)
    result: dict[str, Any] = {"kind": kind}
    stop = threading.Event()
    thread = None
    try:
        print(f"[{kind}] ingesting {meta['entries'] + meta['schemas']:,} commits ...", flush=True)
        load = os.getloadavg()[0]
        rate, elapsed, cpu, thread = ingest(store, meta, firehose, client, stop)
        load = (load + os.getloadavg()[0]) / 2
        records = meta["entries"] + meta["schemas"]
        result.update(rate=rate, ingest_seconds=elapsed, cpu_rate=records / cpu, load=load)
        print(f"[{kind}] {rate:,.0f} records/s ({elapsed:.1f} s; {records / cpu:,.0f} records per CPU second "
              f"of this process; load average about {load:.1f})", flush=True)
        result["visible"] = commit_to_searchable(store, meta, firehose, folder)
        stop.set()
        thread.join(timeout=60)
        counts = store.record_counts()
        result["counts"] = counts
        print(f"[{kind}] searching ...", flush=True)
        result["search"] = search_latencies(store, meta, args.rounds, args.queries)
        result["paging"] = paging(store, args.page_total, args.rounds)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=60)
        firehose.stop()
        store.close()
    return result


def report(results: list[dict], meta: dict, args: argparse.Namespace) -> dict:
    """Print the table; return it (title, columns, rows, each target with met / not met per store) for --json."""
    print()
    title = (f"population: {meta['entries']:,} entries and {meta['schemas']:,} schemas of {len(meta['accounts']):,} "
             f"accounts; {args.rounds} rounds of {args.queries} queries of each kind; {os.cpu_count()} cores, "
             f"load average {os.getloadavg()[0]:.1f}")
    print(title)
    names = [result["kind"] for result in results]
    header = f"{'':40}" + "".join(f"{name:>22}" for name in names) + f"{'target':>12}"
    print(header)
    print("-" * len(header))

    rows: list[list[str]] = []

    def row(label: str, cells: list[str], target: str = "", met: list[bool] | None = None) -> None:
        print(f"{label:40}" + "".join(f"{cell:>22}" for cell in cells) + f"{target:>12}")
        if met is not None:
            target += ": " + ", ".join(f"{name} {'met' if ok else 'not met'}" for name, ok in zip(names, met))
        rows.append([label.strip(), *cells, target])

    row("ingested, records/s", [f"{r['rate']:,.0f}" for r in results], f">= {TARGET_RATE:,.0f}",
        [r["rate"] >= TARGET_RATE for r in results])
    row("  per CPU second of this process", [f"{r['cpu_rate']:,.0f}" for r in results])
    row("  load average meanwhile", [f"{r['load']:.1f}" for r in results])
    row("commit to searchable p50/p99, ms",
        [f"{ms(percentile(r['visible'], 50))} / {ms(percentile(r['visible'], 99))}" for r in results],
        f"p99 <= {TARGET_VISIBLE_P99 * 1000:.0f}", [percentile(r["visible"], 99) <= TARGET_VISIBLE_P99 for r in results])
    for kind in results[0]["search"]:
        row(f"search {kind} p50/p99, ms",
            [f"{ms(percentile(r['search'][kind], 50))} / {ms(percentile(r['search'][kind], 99))}" for r in results],
            f"p99 <= {TARGET_SEARCH_P99 * 1000:.0f}",
            [percentile(r["search"][kind], 99) <= TARGET_SEARCH_P99 for r in results])
    for name in results[0]["paging"]:
        row(f"paging {name}: rows",
            [f"{r['paging'][name][2]:,}" for r in results])
        row("  whole walk best, ms", [ms(min(r['paging'][name][0])) for r in results])
        row("  a page p50/p99, ms",
            [f"{ms(percentile(r['paging'][name][1], 50))} / {ms(percentile(r['paging'][name][1], 99))}" for r in results])
    for r in results:
        print(f"{r['kind']}: {r['counts']}")
    return {"title": title, "columns": ["", *names, "target"], "rows": rows,
            "notes": [f"{r['kind']}: {r['counts']}" for r in results]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="dataset entries to index (default 100,000)")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite, postgresql or both (default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of queries and of paging (default 3)")
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind per round (default 200)")
    parser.add_argument("--live", type=int, default=200, help="commits timed from commit to searchable (default 200)")
    parser.add_argument("--live-rate", type=float, default=20.0, help="live commits a second (default 20)")
    parser.add_argument("--page-total", type=int, default=10_000, help="results to page through (default 10,000)")
    parser.add_argument("--folder", help="where the recording is kept (default: a folder in the temporary folder)")
    parser.add_argument("--json", metavar="PATH", help="also write the table printed, as JSON, to PATH")
    parser.add_argument("--firehose-server", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.firehose_server:
        firehose_server(args.firehose_server, args.port_file, args.live_rate)
        return 0

    os.environ.setdefault("ATDATA_NETWORK_ALLOW_HOSTS", "127.0.0.1,localhost")
    folder = Path(args.folder or Path(tempfile.gettempdir()) / f"atdata-bench-appview-{args.entries}")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"recording the firehose in {folder} ...", flush=True)
    meta = record_population(args.entries, folder, args.live)

    documents: dict[str, bytes] = {}
    plc, plc_url = plc_directory(documents)
    os.environ["ATDATA_PLC_URL"] = plc_url
    for item in meta["accounts"]:
        documents[item["did"]] = json.dumps(did_document(item["did"], item["multikey"], plc_url)).encode()
    from atdata_core.plugins import Client

    client = Client.anonymous()
    started = time.perf_counter()
    for did in documents:
        client.identity.resolve_did(did)
    print(f"looked up {len(documents):,} DID documents in {time.perf_counter() - started:.1f} s", flush=True)

    results = []
    with tempfile.TemporaryDirectory(prefix="atdata-bench-appview-stores-") as scratch:
        for kind in [k.strip() for k in args.stores.split(",") if k.strip()]:
            if kind == "sqlite":
                results.append(bench_store(kind, f"sqlite:///{scratch}/appview.db", meta, folder, client, args))
            elif kind in ("postgresql", "postgres"):
                from atdata_index_appview.store.testing import PostgresServer

                server = PostgresServer.start(durable=True, settings=PG_SETTINGS)
                try:
                    results.append(bench_store("postgresql", server.create_database("bench"), meta, folder, client, args))
                finally:
                    server.stop()
            else:
                parser.error(f"unknown store {kind!r}")
    plc.shutdown()
    table = report(results, meta, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "AppView", "tables": [table]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
