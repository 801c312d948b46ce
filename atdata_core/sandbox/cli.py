"""``atdata sandbox up|down|status``: the local PDS sandbox from the command line."""

from __future__ import annotations

import json
import logging
import sys

import click

from atdata_core.errors import SandboxError

# `status` exit codes, as LSB init scripts use them.
STATUS_RUNNING, STATUS_STALE, STATUS_NOT_RUNNING = 0, 1, 3


def _sandbox(state_dir):
    from atdata_core.sandbox import Sandbox

    return Sandbox(state_dir)


def _exports(info) -> dict[str, str]:
    """The variables that point a shell's configuration at this sandbox."""
    return {"ATDATA_PLC_URL": info.plc_url, "ATDATA_SANDBOX_PDS_URL": info.pds_url}


def _info_json(info) -> dict:
    return {
        "pds_url": info.pds_url,
        "plc_url": info.plc_url,
        "state_file": str(info.state_file) if info.state_file else None,
        "environment": _exports(info),
        "pids": dict(info.pids),
        "alive": dict(info.alive),
        "running": info.running,
        "data_dir": str(info.data_dir),
        "started_at": info.started_at,
        "accounts": [{"handle": a.handle, "did": a.did} for a in info.accounts],
        "services": [{"name": s.name, "url": s.url, "pid": s.pid, "alive": s.alive} for s in info.services],
    }


def _print_info(info) -> None:
    def state(name):
        return "running" if info.alive.get(name) else "NOT running"

    click.echo(f"PDS   {info.pds_url}   pid {info.pids.get('pds')}  {state('pds')}")
    click.echo(f"PLC   {info.plc_url}   pid {info.pids.get('plc')}  {state('plc')}")
    for service in info.services:
        click.echo(f"{service.name}  {service.url}   pid {service.pid}  {'running' if service.alive else 'NOT running'}")
    click.echo(f"data  {info.data_dir}")
    for acct in info.accounts:
        click.echo(f"account  {acct.handle}  {acct.did}")


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    envvar="ATDATA_SANDBOX_STATE",
    default=None,
    help="Where the state file of the sandbox lives (default: the user's state folder).",
)


@click.group("sandbox")
def sandbox() -> None:
    """A local PDS and PLC directory on loopback, for tests and demos.

    Needs Node.js >= 22: pip install 'atdata-core[sandbox]'. The first `up`
    installs the pinned npm packages into the user's cache folder (once).
    """


@sandbox.command("up")
@click.option(
    "--account", "-a", "accounts", multiple=True, metavar="HANDLE:PASSWORD",
    help="Create this account (repeatable). A handle without a dot gets .test.",
)
@click.option("--port", type=int, default=None, help="PDS port (default: a free one).")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the servers.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@state_dir_option
def up_command(accounts, port, timeout, as_json, state_dir) -> None:
    """Start the PLC directory and the PDS; print their URLs and the accounts' DIDs."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        info = _sandbox(state_dir).up(accounts, port=port, timeout=timeout)
    except SandboxError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(_info_json(info), indent=2))
    else:
        _print_info(info)
        _print_how_to_use(info)
        click.echo("stop it with: atdata sandbox down")


def _print_how_to_use(info) -> None:
    from atdata_core.sandbox import default_state_dir

    exports = [f"  export {name}={value}" for name, value in _exports(info).items()]
    state_dir = info.state_file.parent if info.state_file else None
    if state_dir is not None and state_dir.resolve() == default_state_dir().resolve():
        click.echo(
            "While it runs, atdata commands and the Python API of this user use it with no flags "
            f"(handles ending in .test resolve on its PDS; its state: {info.state_file})."
        )
        click.echo("A shell with another HOME or state folder needs:")
    else:
        click.echo(f"Its state is in {state_dir}, not the default folder. In another shell, either")
        click.echo(f"  export ATDATA_SANDBOX_STATE={state_dir}")
        click.echo("or")
    for line in exports:
        click.echo(line)


@sandbox.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@state_dir_option
def status_command(as_json, state_dir) -> None:
    """Say what runs where.

    Exit status, as for LSB init scripts: 0 if the sandbox runs, 3 if none
    was started, 1 if one was started but a process of it is gone
    (`atdata sandbox down` clears that).
    """
    try:
        info = _sandbox(state_dir).status()
    except SandboxError as e:
        raise click.ClickException(str(e)) from None
    if info is None:
        if as_json:
            click.echo(json.dumps({"running": False}))
        else:
            click.echo("no sandbox is running (start one with: atdata sandbox up)")
        sys.exit(STATUS_NOT_RUNNING)
    if as_json:
        click.echo(json.dumps(_info_json(info), indent=2))
    else:
        _print_info(info)
        if not info.running:
            click.echo("the sandbox is only partly running; `atdata sandbox down` clears it")
    sys.exit(STATUS_RUNNING if info.running else STATUS_STALE)


@sandbox.command("install")
def install_command() -> None:
    """Install the pinned npm packages now (up does it on first use); print the folder."""
    from atdata_core.sandbox import ensure_installed

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        click.echo(ensure_installed())
    except SandboxError as e:
        raise click.ClickException(str(e)) from None


@sandbox.command("down")
@click.option("--keep-data", is_flag=True, help="Keep the PDS data folder.")
@state_dir_option
def down_command(keep_data, state_dir) -> None:
    """Stop what `up` started (and the AppView `atdata demo` started beside it), and nothing else."""
    sb = _sandbox(state_dir)
    try:
        info = sb.status()
        stopped = sb.down(keep_data=keep_data)
    except SandboxError as e:
        raise click.ClickException(str(e)) from None
    if info is None:
        click.echo("no sandbox was running")
    elif stopped:
        also = "".join(f", {s.name} {s.url}" for s in info.services)
        click.echo(f"stopped the sandbox (PDS {info.pds_url}, PLC {info.plc_url}{also})")
    else:
        click.echo("the sandbox's processes were already gone; cleared its state")
