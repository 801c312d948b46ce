"""Search across the network: an AppView on SQLite follows the sandbox's firehose, bob searches it.

Run with ``python examples/appview_search.py`` (needs ``atdata-index-appview``
and ``atdata-storage-blob``). It starts ``atdata appview serve`` with an
embedded SQLite store, subscribed to the local PDS's firehose. Alice and carol
publish datasets; the AppView indexes each record a moment after it is
written (verifying the commit's signature and the record's lexicon). Bob, with
``[index] default = "appview"``, searches by text and tag with ``atdata
search`` and from Python, and loads what he found, all through the AppView.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.atproto import login
from atdata_core.plugins import index_provider

from _local_federation import local_federation


@packable
class Clip:
    """A short mono audio clip and its label."""

    audio: NDArray[np.int16]
    label: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise SystemExit(f"{what} did not happen within {timeout:.0f} s")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/xrpc/_health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def indexed(provider) -> list:
    """What the AppView finds tagged 'audio'; nothing yet when it is busy indexing and does not answer in time."""
    from atdata_core.errors import NetworkError

    try:
        return provider.search("", tags=["audio"])
    except NetworkError:
        return []


def publish(federation, name: str, dataset: str, labels: list[str], description: str, tags: list[str]) -> str:
    handle, password = federation.account(name)
    federation.become(name)
    client = login(handle, password)
    with ShardWriter(federation.folder / f"{name}-%06d.tar", maxcount=50) as sink:
        for i in range(120):
            sink.write(Clip((np.sin(np.arange(800) * (i % 7 + 1) / 40) * 3000).astype(np.int16), labels[i % len(labels)]))
    schema = atdata_core.publish_schema(client, Clip, schema_id="test.example.clip", version="1.0.0")
    entry = atdata_core.publish_dataset(client, dataset, sink.shards, schema=schema, storage="blob",
                                        description=description, tags=tags)
    print(f"{handle} published {dataset}: {entry.uri}")
    return handle


def main() -> None:
    with local_federation() as federation:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        store = federation.folder / "appview.db"
        command = [sys.executable, "-m", "atdata_core.cli", "appview", "serve", "--store", f"sqlite:///{store}",
                   "--port", str(port), "--subscribe", federation.pds_url]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for("the AppView answering", lambda: server.poll() is None and healthy(url))
            print(f"AppView on {url}/xrpc/ (SQLite store {store.name}), following {federation.pds_url}")

            alice = publish(federation, "alice", "birdsong-2026", ["wren", "robin", "blackbird"],
                            "Garden birdsong recorded at dawn", ["audio", "birds"])
            publish(federation, "carol", "engine-noise", ["idle", "rev"],
                            "Engine noise of parked cars", ["audio", "vehicles"])

            # Bob's machine: the AppView is his index, for the CLI and the Python API alike.
            handle, password = federation.account("bob")
            os.environ["ATDATA_INDEX_DEFAULT"] = "appview"
            os.environ["ATDATA_APPVIEW_URL"] = url
            os.environ["ATDATA_APPVIEW_FALLBACK"] = "false"  # an answer from the AppView or an error, never the PDS's
            federation.become("bob")
            login(handle, password)
            provider = index_provider()
            wait_for("both datasets being indexed", lambda: len(indexed(provider)) == 2, timeout=120)

            cli = subprocess.run([sys.executable, "-m", "atdata_core.cli", "search", "birdsong", "--tag", "audio"],
                                 capture_output=True, text=True, check=True)
            print("$ atdata search birdsong --tag audio\n" + cli.stdout.rstrip())
            found = provider.search("noise", tags=["vehicles"])
            print(f"search 'noise' #vehicles from Python: {[r.value['name'] for r in found]}")
            everyone = provider.search("", tags=["audio"])
            print(f"everything tagged 'audio', across accounts: {sorted(r.value['name'] for r in everyone)}")

            clips = list(atdata_core.load(f"@{alice}/birdsong-2026").ordered())
            print(f"bob loaded {len(clips)} clips of @{alice}/birdsong-2026 through the AppView; "
                  f"labels {sorted({c.label for c in clips})}")
            with urllib.request.urlopen(f"{url}/xrpc/science.alt.dataset.describeService") as answer:
                described = json.load(answer)
            counts = described["recordCount"]
            print(f"describeService: {counts['science.alt.dataset.entry']} entries and "
                  f"{counts['science.alt.dataset.schema']} schemas indexed")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
            print("AppView stopped")


if __name__ == "__main__":
    main()
