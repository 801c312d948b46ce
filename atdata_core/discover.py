"""Discovery without an AppView: one account's schemas, datasets, lenses and labels.

Each function reads the account's repository on its own PDS (through
:class:`~atdata_core.index.pds.PdsIndex`, or the ``index`` you pass) and
filters by text (``query`` in the name or description, ignoring case) and
tags (every tag given must be present). Newest first::

    from atdata_core.discover import list_datasets
    for found in list_datasets("alice.example.com", query="mnist", tags=["vision"]):
        print(found.uri, found.value["name"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atdata_core.plugins import IndexedRecord

__all__ = ["list_datasets", "list_labels", "list_lenses", "list_schemas"]

_SCHEMA = "science.alt.dataset.schema"


def _list(collection: str, handle_or_did: str, query: str | None, tags: Sequence[str], limit: int | None,
          index: Any) -> list[IndexedRecord]:
    if index is None:
        from atdata_core.index.pds import PdsIndex

        index = PdsIndex()
        repo = index.resolve_repo(handle_or_did)
    else:
        repo = handle_or_did.strip().lstrip("@")
        if not repo.startswith("did:"):
            from atdata_core.atproto import resolve_identity

            repo = resolve_identity(repo).did
    if collection == _SCHEMA and tags:
        # A schema record keeps its tags under metadata.tags, not at the top level.
        wanted = set(tags)
        found = [
            r for r in index.list_records(collection, repo=repo, query=query)
            if wanted <= set(((r.value.get("metadata") or {}).get("tags")) or ())
        ]
        return found[:limit] if limit is not None else found
    return index.list_records(collection, repo=repo, query=query, tags=tuple(tags), limit=limit)


def list_datasets(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                  limit: int | None = None, index: Any = None) -> list[IndexedRecord]:
    """Dataset entries (``science.alt.dataset.entry``) of one account."""
    return _list("science.alt.dataset.entry", handle_or_did, query, tags, limit, index)


def list_schemas(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                 limit: int | None = None, index: Any = None) -> list[IndexedRecord]:
    """Schema records of one account (every version of every schema id); tags match ``metadata.tags``."""
    return _list(_SCHEMA, handle_or_did, query, tags, limit, index)


def list_lenses(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                limit: int | None = None, index: Any = None) -> list[IndexedRecord]:
    """Lens records of one account."""
    return _list("science.alt.dataset.lens", handle_or_did, query, tags, limit, index)


def list_labels(handle_or_did: str, query: str | None = None, tags: Sequence[str] = (), *,
                limit: int | None = None, index: Any = None) -> list[IndexedRecord]:
    """Label records of one account."""
    return _list("science.alt.dataset.label", handle_or_did, query, tags, limit, index)
