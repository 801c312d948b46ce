"""``atdata appview serve|backfill`` and ``atdata search``: commands this plugin adds to the CLI."""

from __future__ import annotations

import click

__all__ = ["appview", "search"]


@click.group(help="Run an AppView: the firehose-fed index of science.alt.dataset records and its XRPC API.")
def appview() -> None:
    pass


@click.command(help="Search datasets across the network through the AppView ([appview] url).")
@click.argument("text", required=False, default="")
@click.option("--tag", "tags", multiple=True, help="Only datasets carrying this tag (repeat for several).")
def search(text: str, tags: tuple[str, ...]) -> None:
    raise click.ClickException("atdata search is not available yet")
