"""``atdata search`` when the AppView is down: the account's own PDS answers (the local sandbox PDS here)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import numpy as np
import pytest
from numpy.typing import NDArray

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.plugins import Client, reset_plugins


@packable
class Reading:
    values: NDArray[np.float32]
    station: str


def atdata(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atdata_core.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def published(pds_sandbox, make_account, tmp_path, monkeypatch):
    """An account with two datasets on the sandbox PDS, and an AppView URL nothing answers at."""
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.setenv("ATDATA_SANDBOX_PDS_URL", pds_sandbox.pds_url)
    hosts = sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts))
    reset_plugins()
    account = make_account("erin")
    client = Client.login(account.handle, account.password, pds_url=account.pds_url)
    schema = atdata_core.publish_schema(client, Reading, schema_id="com.example.reading", version="1.0.0")
    uris = {}
    for name, tags, description in (("rainfall-2024", ["weather", "rain"], "Daily rainfall at river stations"),
                                    ("river-levels", ["hydrology"], "Hourly river levels")):
        (tmp_path / name).mkdir()
        with ShardWriter(str(tmp_path / name / "part-%06d.tar")) as sink:
            sink.write(Reading(values=np.zeros(3, dtype=np.float32), station="a"))
        uris[name] = atdata_core.publish_dataset(client, name, sink.shards, schema=schema, storage="blob",
                                                 description=description, tags=tags).uri
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("ATDATA_APPVIEW_URL", down)
    monkeypatch.setenv("ATDATA_APPVIEW_RETRIES", "0")
    return account, uris, down


def test_search_reads_the_accounts_pds_when_the_appview_is_down(published):
    account, uris, down = published
    found = atdata("search", "river", "--repo", account.handle, "--json")
    assert found.returncode == 0, found.stderr
    assert sorted(item["uri"] for item in json.loads(found.stdout)) == sorted(uris.values())
    assert down in found.stderr  # the user learns the AppView was not used

    tagged = atdata("search", "river", "--repo", account.handle, "--tag", "rain")
    assert tagged.returncode == 0, tagged.stderr
    assert "rainfall-2024  #weather #rain" in tagged.stdout and "river-levels" not in tagged.stdout
    assert uris["rainfall-2024"] in tagged.stdout
    assert atdata("search", "snow", "--repo", account.did).stdout.strip() == "no datasets found"


def test_a_search_of_the_whole_network_without_the_appview_asks_for_an_account(published):
    down = published[2]
    result = atdata("search", "river")
    assert result.returncode == 1
    assert f"the AppView at {down} cannot answer the search" in result.stderr and "--repo" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
