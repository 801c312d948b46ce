"""``atdata plugins``: what is installed, what it implements, what failed to load."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins with versions, hooks and load failures.

    Exits 1 when a plugin failed to import (the others still work).
    """
    from atdata_core.plugins import plugin_report

    report = plugin_report()
    if as_json:
        click.echo(json.dumps([_as_dict(info) for info in report], indent=2))
    else:
        for info in report:
            dist = f"{info.distribution} {info.version}" if info.distribution else "(registered in-process)"
            colour = {"loaded": "green", "failed": "red", "blocked": "yellow"}.get(info.status, None)
            click.echo(f"{click.style(info.name, bold=True)}  {dist}  " + click.style(info.status, fg=colour))
            if info.hooks:
                click.echo(f"    hooks: {', '.join(info.hooks)}")
            if info.error:
                click.echo(f"    {'error' if info.status == 'failed' else 'reason'}: {info.error}")
    if any(info.status == "failed" for info in report):
        raise SystemExit(1)


def _as_dict(info) -> dict:
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "status": info.status,
        "hooks": list(info.hooks),
        "error": info.error,
        "entry_point": info.entry_point,
    }
