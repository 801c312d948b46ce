"""A store killed at any moment holds exactly the commits up to its cursor: nothing lost, nothing twice.

A child process applies one commit per firehose event (one record each, the
cursor moving with it) and is killed with SIGKILL while it writes; another
child carries on from the saved cursor, as a restarted service does. Wherever
the kills land, the store then holds the records of events 1..cursor, each
once, and no other.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from atdata_core.plugins import ENTRY_NSID

from atdata_index_appview.store import open_store

REPO = "did:plc:durability000000000000000"

_CHILD = r"""
import sys
from atdata_index_appview.ingest import CommitBatch, RecordOp
from atdata_index_appview.store import open_store

url, repo = sys.argv[1], sys.argv[2]
store = open_store(url)
seq = (store.cursor("https://pds.test") or 0) + 1
while seq <= 100000:
    uri = f"at://{repo}/science.alt.dataset.entry/3k{seq:011d}"
    record = {"$type": "science.alt.dataset.entry", "name": f"dataset {seq}", "createdAt": "2025-01-01T00:00:00Z",
              "tags": ["durable"], "description": "x" * 500}
    store.apply(CommitBatch(source="https://pds.test", seq=seq, did=repo, rev=f"3l{seq:011d}",
                            ops=(RecordOp(action="create", uri=uri, cid=None, record=record, raw=b"\xa0" * 64),)))
    store.count("records_indexed")
    seq += 1
"""


def _wait_for_progress(url: str, past: int, child: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with open_store(url) as watcher:
        while (watcher.cursor("https://pds.test") or 0) < past:
            assert child.poll() is None, f"the writer exited early with {child.returncode}"
            assert time.monotonic() < deadline, "the writer made no progress"
            time.sleep(0.01)


def test_killing_the_writer_loses_and_duplicates_nothing(store_url):
    open_store(store_url).close()  # migrated before the first child starts
    env = dict(os.environ)
    for round_ in range(4):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, store_url, REPO], env=env)
        try:
            with open_store(store_url) as watcher:
                start = watcher.cursor("https://pds.test") or 0
            _wait_for_progress(store_url, start + 15 + 7 * round_, child)
            time.sleep(0.003 * round_)  # land the kill at different points of a commit
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=30)
    with open_store(store_url) as store:
        cursor = store.cursor("https://pds.test")
        assert cursor is not None and cursor >= 15
        with store._read() as db:
            rows = db.all("SELECT uri FROM records WHERE collection = ?", (ENTRY_NSID,))
            tags = db.all("SELECT COUNT(*) FROM record_tags")
        found = sorted(row[0] for row in rows)
        assert found == sorted(f"at://{REPO}/{ENTRY_NSID}/3k{seq:011d}" for seq in range(1, cursor + 1))
        assert tags[0][0] == cursor
        assert store.repo_rev(REPO) == f"3l{cursor:011d}"
        assert len(store.search_entries(["durable"], limit=100).records) == min(cursor, 100)
