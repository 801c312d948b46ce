"""Two accounts on a local federation: alice publishes a typed dataset, bob finds and loads it.

Run with ``.venv/bin/python examples/federation.py`` (after ``make demo``). It starts the reference PDS and
an in-memory PLC directory on loopback (``atdata sandbox``), serves alice's
shards over HTTP from a loopback server, and keeps every session and setting
in a temporary folder, so nothing of yours is touched.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

from atdata_core import ShardWriter, packable


@packable
class Reading:
    """One sensor reading: a short waveform and where it came from."""

    waveform: NDArray[np.float32]
    station: str
    quality: float


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _ShardServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a reader that stops early closes its connection mid-shard: not an error here


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from atdata_core.sandbox import Sandbox

        print("starting a local PDS and PLC directory (the first run installs them, ~30 s)...")
        sandbox = Sandbox(root / "sandbox")
        info = sandbox.up(accounts=[("alice.test", "alice-pw"), ("bob.test", "bob-pw")])
        server = None
        try:
            print(f"PDS {info.pds_url}, PLC {info.plc_url}")
            # This process plays both users; each gets a config folder of their own.
            os.environ["ATDATA_PLC_URL"] = info.plc_url

            served = root / "served"
            served.mkdir()
            server = _ShardServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            base_url = f"http://127.0.0.1:{server.server_address[1]}"
            # Records may name loopback servers only where this machine allows it ([network]
            # allow_hosts): here the sandbox's PLC and PDS, and alice's shard server.
            os.environ["ATDATA_NETWORK_ALLOW_HOSTS"] = ",".join(
                urlsplit(url).netloc for url in (info.plc_url, info.pds_url, base_url)
            )

            # --- alice writes shards, places them on her web server, and publishes the records
            rng = np.random.default_rng(1)
            # Written into the served folder, named by the URL readers will fetch them from.
            with ShardWriter(served / "readings-%06d.tar", maxcount=250, base_url=base_url) as sink:
                for i in range(1_000):
                    wave = rng.standard_normal(256).astype(np.float32)
                    sink.write(Reading(wave, f"station-{i % 5}", float(rng.random())))

            os.environ["XDG_CONFIG_HOME"] = str(root / "alice-config")
            _fresh_settings()
            from atdata_core.atproto import login
            from atdata_core.publish import publish_dataset, publish_label, publish_schema

            alice = login("alice.test", "alice-pw", pds_url=info.pds_url)
            schema = publish_schema(alice, Reading, schema_id="test.alice.reading", version="1.0.0")
            entry = publish_dataset(
                alice, "seismic-readings", sink.shards, schema=schema, description="1,000 synthetic readings",
                tags=["timeseries", "demo"],
            )
            publish_label(alice, "seismic-readings", entry.uri, version="v1")
            print(f"alice published\n  schema {schema.uri}\n  entry  {entry.uri}")

            # --- bob, on "another machine", finds and loads it: no class, no shared state
            os.environ["XDG_CONFIG_HOME"] = str(root / "bob-config")
            _fresh_settings()
            import atdata_core
            from atdata_core.discover import list_datasets

            login("bob.test", "bob-pw", pds_url=info.pds_url)
            found = list_datasets("alice.test", tags=["timeseries"])
            print(f"bob lists alice's datasets tagged 'timeseries': {[r.value['name'] for r in found]}")
            dataset = atdata_core.load("@alice.test/seismic-readings@v1")
            print(f"bob loads it: {dataset!r}, {len(dataset)} samples known from the entry")
            batch = next(iter(dataset.ordered(batch_size=100)))
            print(f"  a batch: waveform {batch.waveform.shape} {batch.waveform.dtype}, "
                  f"stations {sorted(set(batch.station))}")
            print(f"  the class was generated from alice's schema: {dataset.sample_type.__name__}")
        finally:
            if server is not None:
                server.shutdown()
            sandbox.down()
            print("sandbox stopped")


def _fresh_settings() -> None:
    # configuration and identities are cached per process; a new user starts clean
    from atdata_core.atproto import clear_identity_cache
    from atdata_core.plugins import reset_plugins

    clear_identity_cache()
    reset_plugins()


if __name__ == "__main__":
    main()
