"""``atdata lens``: published lenses, their verifications, and whom you trust to run lens code."""

from __future__ import annotations

import click


@click.group("lens")
def lens_group() -> None:
    """List, show and verify published lenses; choose whose lens code may run."""
