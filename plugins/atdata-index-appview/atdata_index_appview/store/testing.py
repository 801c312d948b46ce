"""A throwaway PostgreSQL server on loopback, for tests and benchmarks of the PostgreSQL store.

::

    with PostgresServer.start() as server:
        store = open_store(server.create_database())

The server binaries are found with ``pg_config --bindir`` or in Debian's
versioned folders (``/usr/lib/postgresql/<version>/bin``); when there are none
and this process may use ``apt-get``, they are installed (``postgresql``),
otherwise :class:`RuntimeError` says what to install. ``initdb`` refuses to
run as root, so as root the cluster belongs to the ``postgres`` user (through
``runuser``), in a fresh folder that user owns (not pytest's ``tmp_path``,
which only root may enter). The server listens on a free loopback port, with
durability switched off (``fsync``: a test cluster is thrown away), and is
stopped by its process id. A watchdog process stops it too (and deletes its
folder) if the process that started it dies without stopping it, so a test
run killed half way leaves no server behind.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PostgresServer", "postgres_bindir"]

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0

# Stops the server (by its PID) when the process that started it is gone, then deletes its folder.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
parent, server, base = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

while alive(parent) and alive(server):
    time.sleep(0.5)
if alive(server):
    os.kill(server, signal.SIGINT)
    for _ in range(300):
        if not alive(server):
            break
        time.sleep(0.1)
    else:
        os.kill(server, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)
"""


def _candidates() -> list[Path]:
    found: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False)
            if out.returncode == 0 and out.stdout.strip():
                found.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")], reverse=True)
    found.extend(Path(p) for p in versions)
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).parent)
    return found


def postgres_bindir(install: bool = True) -> Path:
    """The folder holding ``initdb`` and ``postgres``; installed with apt-get when missing and allowed."""
    for folder in _candidates():
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
            result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
            if result.returncode != 0:
                raise RuntimeError(
                    f"the PostgreSQL server is not installed and `{' '.join(command)}` failed:\n{result.stderr[-2000:]}"
                )
        return postgres_bindir(install=False)
    raise RuntimeError(
        "the PostgreSQL server binaries (initdb, postgres) are not installed: install them "
        "(Debian: apt-get install postgresql) so that the PostgreSQL store can be tested"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """A running test cluster: ``url(database)``, ``create_database()``, ``stop()``."""

    def __init__(self, base: Path, port: int, process: subprocess.Popen, as_postgres: bool):
        self.base = base
        self.data = base / "data"
        self.port = port
        self._process = process
        self._as_postgres = as_postgres
        self._databases = 0
        self._stopped = False
        self._watchdog: subprocess.Popen | None = None

    # ------------------------------------------------------------------ start and stop

    @classmethod
    def start(cls, *, durable: bool = False, settings: Mapping[str, str] | None = None) -> PostgresServer:
        """initdb a fresh cluster and start it on a free loopback port; raises RuntimeError with the log on failure.

        ``durable``: keep PostgreSQL's default durability (``fsync``, synchronous
        commits), as a deployment would, for benchmarks; tests go without it.
        ``settings``: more server settings (``{"shared_buffers": "1GB"}``).
        """
        bindir = postgres_bindir()
        as_postgres = os.geteuid() == 0
        base = Path(tempfile.mkdtemp(prefix="atdata-appview-pg-", dir=os.environ.get("ATDATA_PG_TMPDIR") or "/tmp"))
        prefix: list[str] = []
        if as_postgres:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(base, user.pw_uid, user.pw_gid)
            runuser = shutil.which("runuser") or "/sbin/runuser"
            prefix = [runuser, "-u", "postgres", "--"]
        init = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust", "-U", "postgres",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if init.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
        last_error = ""
        for _ in range(3):  # a free port can be taken between finding and binding it
            port = _free_port()
            log = open(base / "server.log", "ab")
            try:
                process = subprocess.Popen(
                    [*prefix, str(bindir / "postgres"), "-D", str(base / "data"), "-p", str(port),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={base}",
                     *([] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                           "-c", "full_page_writes=off"]),
                     "-c", "max_connections=200",
                     *[arg for name, value in (settings or {}).items() for arg in ("-c", f"{name}={value}")]],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            finally:
                log.close()
            server = cls(base, port, process, as_postgres)
            try:
                server._wait_ready()
                server._watch()
                return server
            except RuntimeError as err:
                last_error = str(err)
                server.stop(remove=False)
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL server did not start: {last_error}")

    def _log_tail(self) -> str:
        try:
            return (self.base / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._process.returncode}:\n{self._log_tail()}")
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections in {_START_TIMEOUT:.0f} s:\n{self._log_tail()}")
                time.sleep(0.05)

    def _watch(self) -> None:
        pid = self._server_pid()
        if pid is None:
            return
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(pid), str(self.base)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def _server_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, remove: bool = True) -> None:
        """Stop the server (fast shutdown, by its PID; killed if it lingers) and delete its folder."""
        if self._stopped:
            return
        self._stopped = True
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait(timeout=_STOP_TIMEOUT)
        pid = self._server_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pid = None
        try:
            self._process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._process.kill()
            self._process.wait(timeout=_STOP_TIMEOUT)
        if pid is not None:  # runuser may return before its child is gone
            deadline = time.monotonic() + _STOP_TIMEOUT
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ databases

    def url(self, database: str = "postgres") -> str:
        """The connection URL of ``database`` as the superuser ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template`` (a database of this server); its URL."""
        import psycopg

        self._databases += 1
        name = name or f"appview_{os.getpid()}_{self._databases}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (its connections are ended first)."""
        import psycopg

        name = url.rsplit("/", 1)[-1]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
