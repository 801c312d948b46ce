"""Killing ingestion at any moment and starting it again loses and duplicates nothing.

An account publishes a few thousand records (creates, then updates and
deletes among them) in commits of varied sizes while a consumer process
follows the sandbox's firehose into the AppView's store (SQLite, and
PostgreSQL, whose store writes a run of commits on a thread of its own while
the next are checked). The consumer
is killed with SIGKILL at random moments while it writes, and started again
each time from the cursor the store saved. At the end the index holds exactly
the account's records, each at its last version, and no restarted consumer
ever met a commit already applied (the cursor never fell behind the writes)
or had to repair a gap (it never ran ahead of them).

The random choices are seeded; the moments of the kills depend on timing, the
outcome checked does not.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest

from atdata_core.plugins import Client

LABEL = "science.alt.dataset.label"
CREATES = 2400
UPDATES = 300
DELETES = 300
KILLS = 6

CONSUMER = """
import logging, signal, sys, threading
from atdata_core.plugins import Client
from atdata_index_appview.ingest import IngestSettings, run_ingest
from atdata_index_appview.store import open_store

store_url, pds_url, log_path = sys.argv[1:4]
handler = logging.FileHandler(log_path)
handler.setFormatter(logging.Formatter("%(process)d %(levelname)s %(message)s"))
ingest_log = logging.getLogger("atdata_index_appview.ingest")
ingest_log.addHandler(handler)
ingest_log.setLevel(logging.DEBUG)
store = open_store(store_url)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *args: stop.set())
print("ready", flush=True)
run_ingest(IngestSettings(subscribe=[pds_url], replay=True), store, stop_event=stop, client=Client.anonymous())
store.close()
"""


def label(i: int, version: int = 1) -> dict:
    return {"$type": LABEL, "name": f"record {i} v{version}", "createdAt": "2024-01-01T00:00:00.000Z",
            "datasetUri": f"at://did:plc:abc/science.alt.dataset.entry/3k{i:06d}"}


def planned_writes(rng: random.Random) -> list[list[dict]]:
    """The account's writes, in commits of 1 to 60: creates, then updates and deletes of random
    earlier records (the creates come first, so every update and delete has its record)."""
    rkeys = [f"3kr{i:06d}" for i in range(CREATES)]
    writes = [{"$type": "com.atproto.repo.applyWrites#create", "collection": LABEL, "rkey": rkey,
               "value": label(i)} for i, rkey in enumerate(rkeys)]
    changed = rng.sample(range(CREATES), UPDATES + DELETES)
    writes += [{"$type": "com.atproto.repo.applyWrites#update", "collection": LABEL, "rkey": rkeys[i],
                "value": label(i, 2)} for i in changed[:UPDATES]]
    writes += [{"$type": "com.atproto.repo.applyWrites#delete", "collection": LABEL, "rkey": rkeys[i]}
               for i in changed[UPDATES:]]
    commits = []
    while writes:
        size = rng.randint(1, 60)
        commits.append(writes[:size])
        del writes[:size]
    return commits


def publish(client: Client, commits: list[list[dict]], failures: list) -> None:
    try:
        for writes in commits:
            client.apply_writes(writes)
    except BaseException as err:  # reported by the test
        failures.append(err)


def indexed(store_url: str, did: str) -> tuple[dict[str, str], str | None, int | None]:
    """(uri -> cid of the account's records, its rev, the highest cursor) as the store holds them,
    read with the database's own driver (not through the store under test)."""
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///")
        if not os.path.exists(path):
            return {}, None, None
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        missing: type[Exception] = sqlite3.OperationalError
        mark = "?"
    else:
        import psycopg

        db = psycopg.connect(store_url, autocommit=True)
        missing, mark = psycopg.errors.UndefinedTable, "%s"
    try:
        records = dict(db.execute(f"SELECT uri, cid FROM records WHERE did = {mark}", (did,)).fetchall())
        rev = db.execute(f"SELECT rev FROM accounts WHERE did = {mark}", (did,)).fetchone()
        seq = db.execute("SELECT MAX(seq) FROM cursors").fetchone()
    except missing:  # the schema is not there yet
        return {}, None, None
    finally:
        db.close()
    return records, rev[0] if rev else None, seq[0] if seq else None


def wait_for(predicate, *, timeout: float, what: str, details=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s\n{details()}")
        time.sleep(0.05)


@pytest.fixture
def sandbox_env(pds_sandbox, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATDATA_")}
    hosts = sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"), ATDATA_SANDBOX_STATE=str(tmp_path / "no-user-sandbox"),
        ATDATA_PLC_URL=pds_sandbox.plc_url, ATDATA_SANDBOX_PDS_URL=pds_sandbox.pds_url,
        ATDATA_NETWORK_ALLOW_HOSTS=",".join(hosts), ATDATA_HTTP_RETRIES="2", ATDATA_HTTP_BACKOFF="0.05",
    )
    return env


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store_url(request, tmp_path):
    """An empty store's URL, its schema made by the first consumer (the PostgreSQL database created here)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'appview.db'}"
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(pds_sandbox, make_account, sandbox_env, tmp_path,
                                                                 empty_store_url):
    rng = random.Random(20240601)
    account = make_account("restart-" + empty_store_url.split(":", 1)[0][:2])
    client = Client.login(account.handle, account.password, pds_url=account.pds_url, save=False)
    store_path = empty_store_url
    log_path = str(tmp_path / "ingest.log")
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)

    errors = open(tmp_path / "consumer.err", "w")

    def start() -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, str(script), store_path, pds_sandbox.pds_url, log_path], env=sandbox_env,
            stdout=subprocess.PIPE, stderr=errors, text=True,
        )
        assert process.stdout.readline().strip() == "ready", errors_so_far()
        return process

    def errors_so_far() -> str:
        errors.flush()
        return (tmp_path / "consumer.err").read_text(errors="replace")[-3000:]

    # The commits go out in rounds, one per consumer life, so that every consumer has new
    # commits to ingest while it is killed (some from before it started, some while it runs).
    commits = planned_writes(rng)
    share = -(-len(commits) // (KILLS + 1))
    rounds = [commits[i:i + share] for i in range(0, len(commits), share)]
    assert len(rounds) == KILLS + 1
    failures: list = []
    killed_at = []
    for round_commits in rounds[:-1]:
        publisher = threading.Thread(target=publish, args=(client, round_commits, failures), name="publisher")
        publisher.start()
        before = indexed(store_path, account.did)[2]
        consumer = start()
        try:
            # Kill it while it writes: once the cursor has moved, a random moment later.
            wait_for(lambda: indexed(store_path, account.did)[2] != before, timeout=60,
                     what="the consumer to write", details=errors_so_far)
            time.sleep(rng.uniform(0.0, 0.15))
        finally:
            consumer.send_signal(signal.SIGKILL)
            consumer.wait(timeout=30)
            publisher.join(timeout=300)
        killed_at.append(indexed(store_path, account.did)[2])
    publish(client, rounds[-1], failures)
    assert not failures, failures

    expected = {f"at://{account.did}/{LABEL}/{item['uri'].rsplit('/', 1)[1]}": item["cid"]
                for item in client.list_records(account.did, LABEL)}
    head = client.call("com.atproto.sync.getLatestCommit", params={"did": account.did}).json()["rev"]
    assert len(expected) == CREATES - DELETES

    consumer = start()
    try:
        wait_for(lambda: indexed(store_path, account.did)[:2] == (expected, head), timeout=180,
                 what="the restarted consumer to catch up with the repository", details=errors_so_far)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=30)
    assert consumer.returncode == 0, errors_so_far()
    errors.close()

    records, rev, _ = indexed(store_path, account.did)
    assert records == expected and rev == head  # every record, at its last version, and nothing else
    assert len(set(killed_at)) >= 3, f"the kills did not land at different points of the stream: {killed_at}"
    log = open(log_path, encoding="utf-8", errors="replace").read()
    assert not [line for line in log.splitlines() if account.did in line and "not newer than the index" in line], \
        "a restarted consumer met a commit it had already applied: the cursor fell behind the writes"
    assert not [line for line in log.splitlines() if account.did in line and "resyncing" in line], \
        "a restarted consumer found a gap: the cursor ran ahead of the writes"
