"""The sandbox's state file, and what a running sandbox tells the configuration.

``Sandbox.up`` records its processes and URLs in ``<state folder>/sandbox.json``;
the state folder is ``ATDATA_SANDBOX_STATE``, else ``user_dir("state")/sandbox``
(:func:`atdata_core.config.sandbox_state_dir`).
While both processes that file names are alive, :func:`running_sandbox_settings`
gives the configuration layer that points this user's CLI and Python API at the
sandbox (its PLC directory, and its PDS for ``.test`` handles) and lets records
name exactly its two loopback servers (:func:`sandbox_hosts`, added to
``[network] allow_hosts``; every other loopback address stays refused to
records, DESIGN D8). Once they are
gone the layer is ignored, so a sandbox that was never taken down does not
send anyone to a dead port.

This module stays light (json and ``/proc``): the configuration asks it on
every load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from atdata_core.errors import SandboxError

STATE_VERSION = 1
STATE_FILE_NAME = "sandbox.json"

log = logging.getLogger("atdata_core.sandbox")


def read_state(state_file: Path) -> dict[str, Any] | None:
    """The recorded state, or None when there is no state file; SandboxError when it is unreadable."""
    try:
        text = state_file.read_text()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except ValueError as e:
        raise SandboxError(f"the sandbox state file {state_file} is not valid JSON ({e}); remove it") from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise SandboxError(
            f"the sandbox state file {state_file} has version {version!r}, expected "
            f"{STATE_VERSION}; stop that sandbox with the atdata version that started it, or remove the file"
        )
    return state


def is_running(state: Mapping[str, Any]) -> bool:
    """Whether every process the state records is still the one the sandbox started."""
    from atdata_core.sandbox import _process

    records = [_process.ProcessRecord.from_json(item) for item in state.get("processes", [])]
    return bool(records) and all(_process.matches(record) for record in records)


def running_sandbox_settings(state_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """``(state file, settings)`` of the sandbox whose state is in ``state_dir``, while it runs; else None.

    The settings are ``{"plc": {"url": ...}, "sandbox": {"pds_url": ...},
    "network": {"allow_hosts": [...]}}``, and ``{"appview": {"url": ...}}``
    while an AppView started beside the sandbox runs. A missing state file, a stopped sandbox or an unreadable state file give None
    (the last with a warning: it must not stop every command).
    """
    state_file = state_dir / STATE_FILE_NAME
    if not state_file.is_file():
        return None
    try:
        state = read_state(state_file)
        if state is None or not is_running(state):
            return None
        plc_url, pds_url = state["plc_url"], state["pds_url"]
    except (SandboxError, KeyError, TypeError, ValueError) as err:
        log.warning("ignoring the sandbox state file %s: %s", state_file, err)
        return None
    settings: dict[str, Any] = {
        "plc": {"url": plc_url},
        "sandbox": {"pds_url": pds_url},
        "network": {"allow_hosts": sandbox_hosts(plc_url, pds_url)},
    }
    appview = _running_service(state, "appview")
    if appview is not None:  # started beside it by `atdata demo`: `atdata search` asks it with no flags
        settings["appview"] = {"url": appview["url"]}
    return state_file, settings


def _running_service(state: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    from atdata_core.sandbox import _process

    for item in state.get("services", []):
        if item.get("name") == name and isinstance(item.get("url"), str):
            return item if _process.matches(_process.ProcessRecord.from_json(item)) else None
    return None


def sandbox_hosts(*urls: str) -> list[str]:
    """The ``host:port`` entries of ``[network] allow_hosts`` that let records name a sandbox's servers.

    The sandbox's PDS writes its own loopback URL into every DID document it
    makes, and its PLC directory serves them: without these entries the
    network policy would refuse both, as it refuses any loopback address a
    record names.

    >>> sandbox_hosts("http://localhost:2582", "http://localhost:2583/")
    ['localhost:2582', 'localhost:2583']
    """
    hosts = []
    for url in urls:
        parts = urlsplit(url)
        if not parts.hostname:
            raise SandboxError(f"the sandbox URL {url!r} names no host")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        hosts.append(f"{host}:{port}")
    return list(dict.fromkeys(hosts))
