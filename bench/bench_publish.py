"""Publish 1,000 dataset entry records to a local PDS: batched applyWrites against one createRecord each.

Run from the repository root (Node >= 22 is needed for the sandbox: the
``sandbox`` extra brings it):

    python bench/bench_publish.py                  # 1,000 records each way
    python bench/bench_publish.py --records 2000 --repeat 3

It starts its own sandbox (the reference PDS and an in-memory PLC directory on
loopback, in a temporary folder), creates an account, and publishes the same
kind of ``science.alt.dataset.entry`` records two ways in the same run:

- one ``com.atproto.repo.createRecord`` call per record;
- ``Client.apply_writes``: ``com.atproto.repo.applyWrites`` with 200 writes per call.

Both paths validate every record against its lexicon and JSON-encode it the
same way; only the number of round trips and repository commits differs. It
prints records/s for each (best of ``--repeat`` runs) and the speed-up of the
batched path (the target is at least 5x). Nothing is written to the user's
configuration: the session is not saved.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from atdata_core.atproto import Client, Create  # noqa: E402
from atdata_core.records import EntryRecord, HttpShard, ShardChecksum, StorageHttp, to_record  # noqa: E402
from atdata_core.sandbox import Sandbox, create_account  # noqa: E402

COLLECTION = "science.alt.dataset.entry"
TARGET_SPEEDUP = 5.0


def entry(did: str, run: str, i: int) -> dict:
    """An entry record like a real one: two HTTP shards with sha256 checksums, a schema reference."""
    shards = [
        HttpShard(
            f"https://data.example.com/{run}/set-{i:05d}/shard-{n:03d}.tar",
            ShardChecksum.sha256(f"{run}-{i}-{n}".encode()),
        )
        for n in range(2)
    ]
    record = EntryRecord(
        name=f"{run}-set-{i:05d}",
        schema_ref=f"at://{did}/science.alt.dataset.schema/com.example.digit:1.0.0",
        storage=StorageHttp(shards),
    )
    return to_record(record)


def publish_one_by_one(client: Client, records: list[dict]) -> float:
    started = time.perf_counter()
    for record in records:
        client.create_record(COLLECTION, record)
    return time.perf_counter() - started


def publish_batched(client: Client, records: list[dict]) -> float:
    started = time.perf_counter()
    results = client.apply_writes([Create(COLLECTION, record) for record in records])
    elapsed = time.perf_counter() - started
    assert len(results) == len(records) and all(r.uri for r in results)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="records published each way (default 1000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path; the best is reported")
    parser.add_argument("--json", metavar="PATH", help="also write the table printed, as JSON, to PATH")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="atdata-bench-publish-") as tmp:
        sandbox = Sandbox(os.path.join(tmp, "sandbox"))
        print("starting the sandbox PDS ...", flush=True)
        info = sandbox.up(parent_pid=os.getpid())
        # The sandbox's hosts are on loopback: allow the PDS endpoint its DID documents name.
        os.environ["ATDATA_NETWORK_ALLOW_HOSTS"] = ",".join(
            sorted({urlsplit(url).netloc for url in (info.pds_url, info.plc_url)}))
        try:
            password = secrets.token_urlsafe(12)
            did, handle = create_account(f"bench{secrets.token_hex(3)}.test", password, pds_url=info.pds_url)
            client = Client.login(did, password, plc_url=info.plc_url, save=False)
            print(f"PDS {info.pds_url}, account {handle} ({did})")

            # Warm up both paths (connections, the account's repository) outside the timings.
            client.apply_writes([Create(COLLECTION, entry(did, "warm", i)) for i in range(10)])
            for i in range(10):
                client.create_record(COLLECTION, entry(did, "warm1", i))

            single, batched = [], []
            for run in range(args.repeat):
                records = [entry(did, f"single{run}", i) for i in range(args.records)]
                single.append(publish_one_by_one(client, records))
                records = [entry(did, f"batch{run}", i) for i in range(args.records)]
                batched.append(publish_batched(client, records))
        finally:
            sandbox.down()

    n = args.records
    single_rate = n / min(single)
    batched_rate = n / min(batched)
    speedup = batched_rate / single_rate
    print()
    print(f"{'path':<42}{'records/s':>12}{'seconds':>10}")
    print(f"{'one createRecord per record':<42}{single_rate:>12,.0f}{min(single):>10.2f}")
    print(f"{'applyWrites, 200 per call':<42}{batched_rate:>12,.0f}{min(batched):>10.2f}")
    verdict = "ok" if speedup >= TARGET_SPEEDUP else "BELOW TARGET"
    print(f"speed-up of the batched path: {speedup:.1f}x (target >= {TARGET_SPEEDUP:g}x: {verdict})")
    if args.json:
        met = "met" if speedup >= TARGET_SPEEDUP else "not met"
        table = {
            "title": f"Publishing {n:,} dataset entry records to a local PDS (best of {args.repeat})",
            "columns": ["path", "records/s", "seconds", "ratio", "target"],
            "rows": [
                ["one createRecord per record", f"{single_rate:,.0f}", f"{min(single):.2f}", "1.00x", ""],
                ["applyWrites, 200 per call", f"{batched_rate:,.0f}", f"{min(batched):.2f}", f"{speedup:.1f}x",
                 f">= {TARGET_SPEEDUP:g}x: {met}"],
            ],
        }
        with open(args.json, "w") as f:
            json.dump({"benchmark": "publishing", "tables": [table]}, f, indent=1)
    return 0 if speedup >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
