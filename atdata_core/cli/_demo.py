"""``atdata demo``: the main job on a local federation (PDS sandbox and AppView), left running."""

from __future__ import annotations

import logging

import click


@click.command("demo")
@click.option("--samples", type=click.IntRange(1, 1_000_000), default=4000, show_default=True,
              help="How many samples alice publishes.")
@click.option("--appview-port", type=click.IntRange(0, 65535), default=2590, show_default=True,
              help="Port of the AppView on 127.0.0.1 (0: a free one). Ignored when one already runs.")
@click.option("--state-dir", type=click.Path(file_okay=False), envvar="ATDATA_SANDBOX_STATE", default=None,
              help="The sandbox's state folder (default: the user's state folder, where `atdata sandbox` looks).")
def demo(samples: int, appview_port: int, state_dir: str | None) -> None:
    """Publish a typed dataset on a local federation and find and load it from another account.

    Starts (or reuses) the local PDS sandbox and an AppView following its
    firehose, creates alice.test and bob.test, publishes a dataset of
    waveforms (schema, lens, shards as PDS blobs) as alice, waits until the
    AppView has indexed it, searches for it and loads it through the lens as
    bob, then prints a summary. The services keep running; `atdata sandbox
    down` stops them. Needs the atdata-storage-blob and atdata-index-appview
    plugins and the sandbox extra: pip install 'atdata-core[sandbox]'
    atdata-storage-blob atdata-index-appview
    """
    from atdata_core.demo import run_demo

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    run_demo(samples=samples, appview_port=appview_port, state_dir=state_dir)
