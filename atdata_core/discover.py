"""Discovery without an AppView: one account's schemas, datasets, lenses and labels.

Each function asks the configured index provider (``[index] default``: by
default ``pds``, the account's repository on its own PDS), or the ``index``
you pass (a provider or its name), and
filters by text (``query`` in the name or description, ignoring case) and
tags (every tag given must be present). Newest first::

    from atdata_core.discover import list_datasets
    for found in list_datasets("alice.example.com", query="mnist", tags=["vision"]):
        print(found.uri, found.value["name"])
"""

from __future__ import annotations

from collections.abc import Sequence

from atdata_core._nsids import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID
from atdata_core.plugins._contracts import IndexedRecord, IndexProvider

__all__ = ["list_datasets", "list_labels", "list_lenses", "list_schemas"]


def _list(collection: str, handle_or_did: str, query: str | None, tags: Sequence[str], limit: int | None,
          index: IndexProvider | str | None) -> list[IndexedRecord]:
    from atdata_core._loading import index_for

    provider = index_for(index)
    repo = provider.resolve_repo(handle_or_did)
    return provider.list_records(collection, repo=repo, query=query, tags=tuple(tags), limit=limit)


def list_datasets(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                  limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Dataset entries (``science.alt.dataset.entry``) of one account."""
    return _list(ENTRY_NSID, handle_or_did, query, tags, limit, index)


def list_schemas(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                 limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Schema records of one account (every version of every schema id); tags match ``metadata.tags``."""
    return _list(SCHEMA_NSID, handle_or_did, query, tags, limit, index)


def list_lenses(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Lens records of one account."""
    return _list(LENS_NSID, handle_or_did, query, tags, limit, index)


def list_labels(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                limit: int | None = None, index: IndexProvider | str | None = None) -> list[IndexedRecord]:
    """Label records of one account."""
    return _list(LABEL_NSID, handle_or_did, query, tags, limit, index)
