"""Built-in index providers: where published records are found.

- ``pds`` (the default): reads an account's records straight from its own PDS
  (no AppView).
- ``sqlite``: an embedded index in one SQLite file: records you publish are
  kept there, searchable offline.

The selection rules every provider shares (:func:`select_schema`,
:func:`select_label`, :func:`search_records`...) are exported here and from
:mod:`atdata_core.plugins`.

Both implement :class:`atdata_core.plugins.IndexProvider`; the AppView
provider comes from the ``atdata-index-appview`` plugin.
"""

from __future__ import annotations

from atdata_core.index._select import (
    newest_first,
    record_tags,
    search_records,
    select_label,
    select_schema,
    text_matches,
)

__all__ = ["newest_first", "record_tags", "search_records", "select_label", "select_schema", "text_matches"]
