"""``atdata plugins``: what is installed, what it implements, what failed to load."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List installed plugins: versions, hooks, what each registered, and failures.

    A plugin's name (first on each line) is its entry-point name, the one
    ``[plugins] allow`` / ``deny`` take (its distribution name works too).
    The names of the implementations it provides are the ones selection
    uses: ``[index] default``, ``[storage.select]``... Exits 1 when a plugin
    failed to load (the others still work).
    """
    from atdata_core.plugins import plugin_problems, plugin_report

    report = plugin_report()
    problems = plugin_problems()
    publishing = _publish_default()
    if as_json:
        click.echo(json.dumps(
            {"plugins": [_as_dict(info) for info in report], "problems": problems, "publish_storage": publishing},
            indent=2,
        ))
    else:
        for info in report:
            dist = f"{info.distribution} {info.version}" if info.distribution else "(registered in-process)"
            colour = {"loaded": "green", "failed": "red", "blocked": "yellow"}.get(info.status, None)
            click.echo(f"{click.style(info.name, bold=True)}  {dist}  " + click.style(info.status, fg=colour))
            if info.hooks:
                click.echo(f"    hooks: {', '.join(info.hooks)}")
            for line in info.provides:
                click.echo(f"    provides {line}")
            if info.error:
                click.echo(f"    {'error' if info.status == 'failed' else 'reason'}: {info.error}")
        for problem in problems:
            click.echo(click.style("problem: ", fg="yellow") + problem)
        if publishing["storage"]:
            where = f" (storage backend {publishing['backend']!r})" if publishing["backend"] else ""
            click.echo(f"publish storage: {publishing['storage']}{where}, from {publishing['source']}")
        else:
            click.echo("publish storage: not set ([publish] storage); local shards need --storage")
        click.echo(f"    backends that can publish: {', '.join(publishing['backends']) or 'none'}")
    if any(info.status == "failed" for info in report):
        raise SystemExit(1)


def _publish_default() -> dict:
    """Where `atdata publish dataset` places local shards by default, and which backends can publish."""
    from atdata_core.plugins import get_registry
    from atdata_core.publish import publish_storage, publishing_backends

    storage, source = publish_storage()
    backend = None
    if storage:
        try:
            registry = get_registry().storage
            backend = (registry.spec_for_url(storage) if "://" in storage else registry.spec_named(storage)).name
        except Exception as err:  # noqa: BLE001 - shown, not raised: the listing must still print
            source = f"{source}; no installed backend takes it: {err}"
    return {
        "storage": storage,
        "source": source,
        "backend": backend,
        "backends": [name for name, _schemes, _by_name in publishing_backends()],
    }


def _as_dict(info) -> dict:
    return {
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "status": info.status,
        "hooks": list(info.hooks),
        "error": info.error,
        "entry_point": info.entry_point,
        "provides": list(info.provides),
    }
