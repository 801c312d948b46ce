"""Starting, recognising and stopping the sandbox's Node processes.

A PID alone does not identify a process: after ours exits the number can be
reused by anything. So each process is recorded with its full command line
(which carries a random run token) and, on Linux, its start time; ``down``
signals a PID only while both still match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import attrs


@attrs.frozen
class ProcessRecord:
    """What identifies one process the sandbox started."""

    name: str
    pid: int
    cmdline: tuple[str, ...]
    start_time: int | None = None

    def to_json(self) -> dict:
        return {"name": self.name, "pid": self.pid, "cmdline": list(self.cmdline), "start_time": self.start_time}

    @classmethod
    def from_json(cls, data: Mapping) -> "ProcessRecord":
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            cmdline=tuple(str(a) for a in data["cmdline"]),
            start_time=None if data.get("start_time") is None else int(data["start_time"]),
        )


def spawn(argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    """Start a process detached from our terminal (it outlives ``atdata sandbox up``), logging to a file."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )


def record(name: str, proc: subprocess.Popen, argv: Sequence[str]) -> ProcessRecord:
    return ProcessRecord(name=name, pid=proc.pid, cmdline=tuple(argv), start_time=start_time(proc.pid))


def read_cmdline(pid: int) -> tuple[str, ...] | None:
    """The command line of a live process, or None if there is none (or it is a zombie)."""
    proc_file = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self/cmdline").exists():
        try:
            raw = proc_file.read_bytes()
        except OSError:
            return None
        if not raw or _is_zombie(pid):
            return None
        return tuple(part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0"))
    # No /proc (macOS): ask ps. Its output joins arguments with spaces, so it is
    # compared joined too (see matches()).
    try:
        out = subprocess.run(["ps", "-o", "stat=,args=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    line = out.stdout.strip()
    if out.returncode != 0 or not line:
        return None
    stat, _, args = line.partition(" ")
    if stat.startswith("Z"):
        return None
    return (args.strip(),)


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the parenthesised command name (which may hold spaces).
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("Z", "X")


def matches(rec: ProcessRecord) -> bool:
    """True while ``rec.pid`` is still the process the sandbox started."""
    current = read_cmdline(rec.pid)
    if current is None:
        return False
    if len(current) == 1 and len(rec.cmdline) > 1:  # ps fallback: compare the joined form
        if current[0] != " ".join(rec.cmdline):
            return False
    elif current != rec.cmdline:
        return False
    if rec.start_time is not None:
        now = start_time(rec.pid)
        if now is not None and now != rec.start_time:
            return False
    return True


def stop(rec: ProcessRecord, timeout: float = 10.0) -> bool:
    """Stop the process if it is still ours: SIGTERM, then SIGKILL after ``timeout``.

    Returns True if it was running and was stopped, False if it was already gone
    or the PID now belongs to another process (which is left alone).
    """
    if not matches(rec):
        _reap(rec.pid)
        return False
    _signal(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not matches(rec):
            return True
        time.sleep(0.05)
    if matches(rec):
        _signal(rec.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        for _ in range(100):
            _reap(rec.pid)
            if not matches(rec):
                break
            time.sleep(0.05)
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child, so it does not linger as a zombie."""
    if sys.platform == "win32":
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
