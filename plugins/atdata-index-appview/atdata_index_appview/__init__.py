"""atdata-index-appview: a firehose-fed index of science.alt.dataset records.

Two things in one distribution:

- the **service** (``atdata appview serve``): follows the firehose of relays
  or PDSes, keeps every ``science.alt.dataset.*`` record in a store (SQLite
  with FTS5 by default, PostgreSQL for larger deployments) and answers the
  ``science.alt.dataset.*`` XRPC queries (search, listing, resolution);
- the **index provider** ``appview`` for the core: ``[index] default =
  "appview"`` makes ``load()``, discovery and ``atdata search`` ask a running
  AppView (``[appview] url``), falling back to the accounts' own PDSes when it
  cannot be reached.

This module holds the hook implementations only and stays cheap to import:
the store, the web application and the client load when first used.
"""

from __future__ import annotations

from typing import Any

from atdata_core.plugins import IndexProviderSpec, hookimpl

from atdata_index_appview.settings import AppViewSettings

__all__ = ["AppViewSettings"]


@hookimpl
def atdata_index_providers() -> list[IndexProviderSpec]:
    return [
        IndexProviderSpec(
            name="appview",
            factory="atdata_index_appview.provider:AppViewIndex",
            settings=AppViewSettings,
            section="appview",
            description="search and resolution through an AppView ([appview] url), PDS reads when it is down",
        )
    ]


@hookimpl
def atdata_cli_commands() -> list[Any]:
    from atdata_index_appview.cli import appview, search

    return [appview, search]
