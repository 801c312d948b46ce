"""`atdata demo` (what `make demo` runs) end to end, in a state folder of its own.

The demo starts its own sandbox and AppView there (never the user's, never the
one the other tests share), leaves them running, reuses them when run again,
and `atdata sandbox down` then stops every process it started.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest


def installed(distribution: str) -> bool:
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


# Asked of the installed metadata: building the plugin registry here would cache it for every test.
pytestmark = pytest.mark.skipif(
    not (installed("atdata-storage-blob") and installed("atdata-index-appview")),
    reason="the demo needs the atdata-storage-blob and atdata-index-appview plugins",
)


def atdata(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "atdata_core.cli", *args], env=env, capture_output=True, check=False,
                          text=True, timeout=timeout)


@pytest.fixture
def demo_env(tmp_path):
    """Environment of a user with nothing configured, whose sandbox state lives in tmp_path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATDATA_")}
    env.update(
        ATDATA_SANDBOX_STATE=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_STATE_HOME=str(tmp_path / "state-home"),
    )
    if "ATDATA_SANDBOX_CACHE" in os.environ:  # the npm packages, installed once
        env["ATDATA_SANDBOX_CACHE"] = os.environ["ATDATA_SANDBOX_CACHE"]
    yield env
    atdata(["sandbox", "down"], env, timeout=120)  # whatever happened, nothing is left running


def summary_row(out: str, step: str) -> str:
    match = re.search(rf"^  {re.escape(step)}\s+(.+?)\s+\d+\.\d\ds", out, re.MULTILINE)
    assert match, f"no summary row {step!r} in:\n{out}"
    return match.group(1)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_the_demo_publishes_finds_and_loads_then_sandbox_down_stops_everything(pds_sandbox, demo_env):
    # pds_sandbox: the sandbox's npm packages are installed; the demo runs a sandbox of its own.
    first = atdata(["demo", "--samples", "1200", "--appview-port", "0"], demo_env)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert summary_row(out, "written") == "1,200 samples"
    assert summary_row(out, "found by bob") == "1 dataset(s)"
    assert summary_row(out, "loaded as Trace") == "1,200 samples"
    assert "bob loads demo-readings through the lens trace_of ... 1,200 of 1,200 samples as Trace" in out
    dids = dict(re.findall(r"^  (alice\.test|bob\.test)\s+(did:plc:\S+)$", out, re.MULTILINE))
    assert set(dids) == {"alice.test", "bob.test"} and dids["alice.test"] != dids["bob.test"]
    uris = dict(re.findall(r"^  (schema|lens|entry)\s+(at://\S+)$", out, re.MULTILINE))
    assert uris["entry"].startswith(f"at://{dids['alice.test']}/science.alt.dataset.entry/")
    assert uris["lens"].startswith(f"at://{dids['alice.test']}/science.alt.dataset.lens/")
    appview_url = re.search(r"^AppView  (http://127\.0\.0\.1:\d+)/", out, re.MULTILINE).group(1)

    # Left running: the AppView answers after the command ended, and knows the entry.
    with urllib.request.urlopen(f"{appview_url}/xrpc/science.alt.dataset.getRecord?uri={uris['entry']}") as resp:
        assert json.load(resp)["uri"] == uris["entry"]
    status = atdata(["sandbox", "status", "--json"], demo_env)
    assert status.returncode == 0, status.stdout + status.stderr
    info = json.loads(status.stdout)
    assert [(s["name"], s["url"], s["alive"]) for s in info["services"]] == [("appview", appview_url, True)]
    pids = [*info["pids"].values(), info["services"][0]["pid"]]
    assert len(pids) == 3 and all(alive(pid) for pid in pids)
    # While they run, the commands the summary suggests work with no flags.
    search = atdata(["search", "seismic"], demo_env)
    assert search.returncode == 0, search.stdout + search.stderr
    assert uris["entry"] in search.stdout

    # Run again: the services are reused, the accounts and records of the first run do not get in the way.
    again = atdata(["demo", "--samples", "600", "--appview-port", "0"], demo_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "using the sandbox already running here" in again.stdout
    assert f"using the AppView already running here: {appview_url}" in again.stdout
    assert summary_row(again.stdout, "found by bob") == "1 dataset(s)"  # the first run's entry was replaced
    assert summary_row(again.stdout, "loaded as Trace") == "600 samples"

    down = atdata(["sandbox", "down"], demo_env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"appview {appview_url}" in down.stdout
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "processes the demo started outlived `atdata sandbox down`"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{appview_url}/xrpc/_health", timeout=2)


def test_a_port_in_use_is_named_before_anything_starts(demo_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = atdata(["demo", "--appview-port", str(port)], demo_env, timeout=120)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "--appview-port" in result.stderr
    assert not (tmp_path / "state" / "sandbox.json").exists()  # no sandbox was started


def test_without_the_blob_plugin_the_demo_says_what_to_install(demo_env, tmp_path):
    result = atdata(["demo"], demo_env | {"ATDATA_PLUGINS_DENY": "blob"}, timeout=120)
    assert result.returncode == 1
    assert "pip install atdata-storage-blob" in result.stderr
    assert not (tmp_path / "state" / "sandbox.json").exists()
