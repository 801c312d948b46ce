"""Built-in index providers: where published records are found.

- ``sqlite``: an embedded index in one SQLite file (the default): records you
  publish or load are kept there, searchable offline.
- ``pds``: reads an account's records straight from its own PDS (no AppView).

Both implement :class:`atdata_core.plugins.IndexProvider`; the AppView
provider comes from the ``atdata-index-appview`` plugin.
"""

from __future__ import annotations

from atdata_core.index._select import at_uri_parts, newest_first, pick_label, pick_schema, search

__all__ = ["at_uri_parts", "newest_first", "pick_label", "pick_schema", "search"]
