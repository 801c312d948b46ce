"""The sandbox itself: an in-memory PLC directory and the reference PDS on loopback.

``Sandbox.up`` starts both, waits until they answer, creates any requested
accounts and writes a state file (PIDs, command lines, ports, URLs, data folder)
so ``status`` and ``down`` in another process find what it started.
``Sandbox.start_service`` starts a process beside them (``atdata demo``'s
AppView) and records it in the same file, so ``down`` stops it too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import attrs

from atdata_core.errors import SandboxError
from atdata_core.sandbox import _install, _process
from atdata_core.config import sandbox_state_dir
from atdata_core.sandbox._state import STATE_FILE_NAME, STATE_VERSION, is_running, read_state

DEFAULT_TIMEOUT = 120.0
HANDLE_DOMAIN = ".test"


@attrs.frozen
class SandboxAccount:
    """An account on the sandbox PDS."""

    handle: str
    did: str
    password: str = attrs.field(repr=False)
    pds_url: str = ""
    email: str | None = None


@attrs.frozen
class SandboxService:
    """A process started beside the sandbox (such as an AppView), which ``down`` stops with it."""

    name: str
    url: str
    pid: int
    alive: bool = False


@attrs.frozen
class SandboxInfo:
    """Where a sandbox runs and what it holds.

    ``alive`` maps each process name (``plc``, ``pds``) to whether it still runs,
    as seen when this object was made. ``services`` are the processes
    :meth:`Sandbox.start_service` started beside them; they do not count
    towards ``running``.
    """

    pds_url: str
    plc_url: str
    pids: Mapping[str, int]
    data_dir: Path
    accounts: tuple[SandboxAccount, ...] = ()
    alive: Mapping[str, bool] = attrs.field(factory=dict)
    admin_password: str = attrs.field(default="", repr=False)
    started_at: str = ""
    state_file: Path | None = None
    services: tuple[SandboxService, ...] = ()

    @property
    def running(self) -> bool:
        """Both processes are up."""
        return bool(self.alive) and all(self.alive.values())

    def service(self, name: str) -> SandboxService | None:
        """The service of that name started beside the sandbox, alive or not; None if there is none."""
        return next((service for service in self.services if service.name == name), None)

    def account(self, handle: str) -> SandboxAccount:
        for acct in self.accounts:
            if acct.handle == handle or acct.handle == normalize_handle(handle):
                return acct
        raise KeyError(handle)


def normalize_handle(handle: str) -> str:
    """``alice`` -> ``alice.test``; a handle with a dot is kept as given."""
    handle = handle.strip().lstrip("@").lower()
    return handle if "." in handle else handle + HANDLE_DOMAIN


def parse_account_spec(spec: str | Sequence[str]) -> tuple[str, str]:
    """``"alice.test:secret"`` or ``("alice.test", "secret")`` -> ``(handle, password)``."""
    if isinstance(spec, str):
        handle, sep, password = spec.partition(":")
        if not sep or not handle or not password:
            raise SandboxError(f"account {spec!r} should be handle:password, e.g. alice.test:hunter22")
        return normalize_handle(handle), password
    handle, password = spec
    return normalize_handle(handle), password


def default_email(handle: str) -> str:
    return f"{normalize_handle(handle).split('.')[0]}@example.com"


def create_account(
    handle: str, password: str, email: str | None = None, *, pds_url: str, timeout: float = 30.0
) -> tuple[str, str]:
    """Create an account with ``com.atproto.server.createAccount``; return ``(did, handle)``.

    The reference PDS requires an email address; by default one is made up from
    the handle (nothing is ever sent to it).
    """
    import requests

    handle = normalize_handle(handle)
    email = email or default_email(handle)
    url = pds_url.rstrip("/") + "/xrpc/com.atproto.server.createAccount"
    try:
        with requests.Session() as http:
            http.trust_env = False  # loopback: never through a proxy from the environment
            resp = http.post(url, json={"handle": handle, "password": password, "email": email}, timeout=timeout)
    except requests.RequestException as e:
        raise SandboxError(f"could not reach the sandbox PDS at {pds_url} to create {handle}: {e}") from e
    if resp.status_code != 200:
        try:
            body = resp.json()
            why = f"{body.get('error')}: {body.get('message')}"
        except ValueError:
            why = resp.text[:300]
        raise SandboxError(f"creating account {handle} on {pds_url} failed with HTTP {resp.status_code} {why}")
    body = resp.json()
    return body["did"], body["handle"]


def default_state_dir() -> Path:
    """``ATDATA_SANDBOX_STATE``, else ``$XDG_STATE_HOME/atdata/sandbox`` (``~/.local/state/atdata/sandbox``)."""
    return sandbox_state_dir()


class Sandbox:
    """A PLC directory and a PDS on loopback, tracked by a state file in ``state_dir``.

    >>> sb = Sandbox()                                  # doctest: +SKIP
    >>> info = sb.up(accounts=["alice.test:pw"])        # doctest: +SKIP
    >>> info.pds_url, info.account("alice.test").did    # doctest: +SKIP
    >>> sb.down()                                       # doctest: +SKIP

    Two ``Sandbox`` objects with different state folders are independent (the
    pytest fixture uses its own, so it never touches a user's sandbox).
    """

    def __init__(self, state_dir: str | os.PathLike | None = None):
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self._children: dict[int, subprocess.Popen] = {}

    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE_NAME

    # ---------------------------------------------------------------- up

    def up(
        self,
        accounts: Iterable[str | Sequence[str]] = (),
        *,
        port: int | None = None,
        data_dir: str | os.PathLike | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        pds_env: Mapping[str, str] | None = None,
        parent_pid: int | None = None,
    ) -> SandboxInfo:
        """Start the PLC directory and the PDS, wait until both answer, create ``accounts``.

        ``accounts``: ``"handle:password"`` strings or ``(handle, password)`` pairs;
        a handle without a dot gets ``.test``. ``port``: the PDS port (a free one
        by default). ``data_dir``: a fresh, empty folder for the PDS's data (by
        default one is made under the state folder and removed by ``down``).
        ``pds_env``: extra ``PDS_*`` settings, e.g. ``{"PDS_BLOB_UPLOAD_LIMIT": "1000"}``.
        ``parent_pid``: if given, the servers exit by themselves when that process does.
        """
        specs = [parse_account_spec(a) for a in accounts]
        current = self.status()
        if current is not None:
            if current.running:
                raise SandboxError(
                    f"a sandbox is already running here (PDS {current.pds_url}, PLC {current.plc_url}, "
                    f"state {self.state_file}); run `atdata sandbox down` first"
                )
            self.down()  # stale: clear what is left

        node = _install.node_executable()
        modules = _install.ensure_installed(node)
        run_id = secrets.token_hex(6)
        owns_data_dir = data_dir is None
        if data_dir is None:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
            data = self.state_dir / "runs" / f"{stamp}-{run_id}"
        else:
            data = Path(data_dir)
            if data.exists() and any(data.iterdir()):
                raise SandboxError(f"data folder {data} is not empty; the sandbox needs a fresh one per run")
        data.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _owner_only(self.state_dir)

        env = _install.node_environment(node)
        env["ATDATA_SANDBOX_MODULES"] = str(modules)
        if parent_pid:
            env["ATDATA_SANDBOX_PARENT_PID"] = str(parent_pid)
        started: list[_process.ProcessRecord] = []
        try:
            plc_rec, plc_port = self._start_service(
                "plc", node, env | {"PLC_PORT": "0"}, data, run_id, timeout,
                health="/_health",
            )
            started.append(plc_rec)
            plc_url = f"http://localhost:{plc_port}"
            admin_password = secrets.token_hex(16)
            pds_rec = pds_port = None
            for attempt in range(3):
                chosen = port or _free_port()
                (data / "pds" / "blobs").mkdir(parents=True, exist_ok=True)
                pds_env_full = env | _pds_settings(chosen, data, plc_url, admin_password) | dict(pds_env or {})
                try:
                    pds_rec, pds_port = self._start_service(
                        "pds", node, pds_env_full, data, run_id, timeout, health="/xrpc/_health",
                    )
                    break
                except _PortTaken:
                    if port is not None or attempt == 2:
                        raise SandboxError(f"port {chosen} is already in use; choose another with --port") from None
            started.append(pds_rec)
            pds_url = f"http://localhost:{pds_port}"
            state = {
                "version": STATE_VERSION,
                "run_id": run_id,
                "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "pds_url": pds_url,
                "plc_url": plc_url,
                "pds_port": pds_port,
                "plc_port": plc_port,
                "data_dir": str(data),
                "owns_data_dir": owns_data_dir,
                "admin_password": admin_password,
                "processes": [r.to_json() for r in started],
                "accounts": [],
            }
            self._write_state(state)
        except BaseException:
            for rec in reversed(started):
                self._stop(rec)
            raise
        try:
            for handle, password in specs:
                self.create_account(handle, password)
        except BaseException:
            self.down()
            raise
        info = self.status()
        assert info is not None
        return info

    def _start_service(
        self, name: str, node: Path, env: Mapping[str, str], data: Path, run_id: str, timeout: float, *, health: str
    ) -> tuple[_process.ProcessRecord, int]:
        script = _install.HERE / f"{name}.mjs"
        ready_file = data / f"{name}.ready.json"
        ready_file.unlink(missing_ok=True)
        log_path = data / f"{name}.log"
        # The run token makes the command line unique to this run, for down's identity check.
        argv = [str(node), str(script), f"--atdata-sandbox-run={run_id}"]
        proc = _process.spawn(argv, env=dict(env) | {"ATDATA_SANDBOX_READY_FILE": str(ready_file)},
                              log_path=log_path, cwd=data)
        self._children[proc.pid] = proc
        rec = _process.record(name, proc, argv)
        deadline = time.monotonic() + timeout
        port = None
        while True:
            code = proc.poll()
            if code is not None:
                text = log_path.read_text(errors="replace") if log_path.exists() else ""
                if "EADDRINUSE" in text:
                    raise _PortTaken(name)
                raise SandboxError(
                    f"the sandbox {name.upper()} exited with code {code} while starting; log {log_path}:\n"
                    f"{_install.tail(log_path)}"
                )
            if port is None and ready_file.exists():
                port = int(json.loads(ready_file.read_text())["port"])
            if port is not None and _answers(f"http://127.0.0.1:{port}{health}"):
                # Record the start time now that exec has certainly happened.
                return attrs.evolve(rec, start_time=_process.start_time(proc.pid)), port
            if time.monotonic() > deadline:
                self._stop(rec)
                raise SandboxError(
                    f"the sandbox {name.upper()} did not answer {health} within {timeout:.0f} s; log {log_path}:\n"
                    f"{_install.tail(log_path)}"
                )
            time.sleep(0.1)

    # ---------------------------------------------------------------- status / down

    def status(self) -> SandboxInfo | None:
        """What the state file says runs, with each process checked; None if nothing was started here."""
        state = self._read_state()
        if state is None:
            return None
        records = [_process.ProcessRecord.from_json(p) for p in state.get("processes", [])]
        return SandboxInfo(
            pds_url=state["pds_url"],
            plc_url=state["plc_url"],
            pids={r.name: r.pid for r in records},
            data_dir=Path(state["data_dir"]),
            accounts=tuple(SandboxAccount(**a, pds_url=state["pds_url"]) for a in state.get("accounts", [])),
            alive={r.name: _process.matches(r) for r in records},
            admin_password=state.get("admin_password", ""),
            started_at=state.get("started_at", ""),
            state_file=self.state_file,
            services=tuple(
                SandboxService(item["name"], item["url"], item["pid"], _process.matches(_process.ProcessRecord.from_json(item)))
                for item in state.get("services", [])
            ),
        )

    def down(self, *, keep_data: bool = False) -> bool:
        """Stop the processes ``up`` and ``start_service`` started here, and only those; remove the state file.

        A recorded PID that now belongs to another process is left alone. The
        data folder is removed if ``up`` made it (the PLC was in memory, so the
        PDS's data is useless without it), unless ``keep_data``. Returns True if
        a running process was stopped.
        """
        state = self._read_state()
        if state is None:
            return False
        stopped = False
        # Services first: an AppView following the PDS's firehose would only retry while it goes.
        for item in [*state.get("services", []), *reversed(state.get("processes", []))]:
            stopped |= self._stop(_process.ProcessRecord.from_json(item))
        if state.get("owns_data_dir") and not keep_data:
            shutil.rmtree(state["data_dir"], ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        return stopped

    def _stop(self, rec: _process.ProcessRecord) -> bool:
        stopped = _process.stop(rec)
        child = self._children.pop(rec.pid, None)
        if child is not None and child.poll() is None and not _process.matches(rec):
            try:
                child.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        return stopped

    # ---------------------------------------------------------------- services beside the sandbox

    def start_service(
        self,
        name: str,
        argv: Sequence[str],
        *,
        url: str,
        health: str,
        env: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> SandboxService:
        """Start ``argv`` beside the running sandbox, wait until ``url + health`` answers, and record it.

        The process outlives the caller, logs to ``<name>.log`` in the sandbox's
        data folder, and is stopped by ``down`` (and by the next
        ``start_service`` of the same name). Check that its port is free
        first: whatever answers at ``url`` counts as the service.
        """
        state = self._read_state()
        if state is None or not is_running(state):
            raise SandboxError(f"no sandbox is running here (state {self.state_file}); run `atdata sandbox up` first")
        for item in state.get("services", []):
            if item["name"] == name:
                self._stop(_process.ProcessRecord.from_json(item))
        data = Path(state["data_dir"])
        log_path = data / f"{name}.log"
        proc = _process.spawn(argv, env=os.environ if env is None else env, log_path=log_path, cwd=data)
        self._children[proc.pid] = proc
        rec = _process.record(name, proc, argv)
        deadline = time.monotonic() + timeout
        while not _answers(url.rstrip("/") + health):
            code = proc.poll()
            if code is not None:
                raise SandboxError(
                    f"{name} exited with code {code} while starting; log {log_path}:\n{_install.tail(log_path)}"
                )
            if time.monotonic() > deadline:
                self._stop(rec)
                raise SandboxError(
                    f"{name} did not answer {health} within {timeout:.0f} s; log {log_path}:\n{_install.tail(log_path)}"
                )
            time.sleep(0.1)
        state = self._read_state() or state
        others = [item for item in state.get("services", []) if item["name"] != name]
        state["services"] = [*others, rec.to_json() | {"url": url}]
        self._write_state(state)
        return SandboxService(name, url, proc.pid, alive=True)

    # ---------------------------------------------------------------- accounts

    def create_account(self, handle: str, password: str, email: str | None = None) -> tuple[str, str]:
        """Create an account on this sandbox's PDS and remember it in the state file."""
        state = self._read_state()
        if state is None:
            raise SandboxError(f"no sandbox is running (no state at {self.state_file}); run `atdata sandbox up`")
        did, real_handle = create_account(handle, password, email, pds_url=state["pds_url"])
        state = self._read_state() or state
        state["accounts"].append({"handle": real_handle, "did": did, "password": password, "email": email or default_email(handle)})
        self._write_state(state)
        return did, real_handle

    # ---------------------------------------------------------------- state file

    def _read_state(self) -> dict | None:
        return read_state(self.state_file)

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(state, out, indent=2)
        os.replace(tmp, self.state_file)


class _PortTaken(Exception):
    pass


def _pds_settings(port: int, data: Path, plc_url: str, admin_password: str) -> dict[str, str]:
    return {
        "PDS_HOSTNAME": "localhost",
        "PDS_PORT": str(port),
        "PDS_DATA_DIRECTORY": str(data / "pds"),
        "PDS_BLOBSTORE_DISK_LOCATION": str(data / "pds" / "blobs"),
        "PDS_JWT_SECRET": secrets.token_hex(32),
        "PDS_ADMIN_PASSWORD": admin_password,
        # Any 32 random bytes are a valid secp256k1 key but for a 2^-128 chance.
        "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": secrets.token_hex(32),
        "PDS_DID_PLC_URL": plc_url,
        "PDS_INVITE_REQUIRED": "false",
        "PDS_DEV_MODE": "true",
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        with _direct.open(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _owner_only(path: Path) -> None:
    # The state file holds the admin password and the accounts' passwords.
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
