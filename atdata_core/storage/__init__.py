"""Shard storage: opening shard URLs and expanding dataset sources.

The backends themselves come from plugins (built in: :mod:`.file` for
``file://`` URLs and plain paths, :mod:`.http` for ``http(s)://``), chosen by
URL scheme through :func:`atdata_core.plugins.storage_backend`.

>>> expand_source("shards/data-{000..002}.tar")
['shards/data-000.tar', 'shards/data-001.tar', 'shards/data-002.tar']
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, BinaryIO

from atdata_core.storage._source import MAX_EXPANSION, expand_braces, expand_source

if TYPE_CHECKING:
    from atdata_core.plugins import StorageBackend

__all__ = ["MAX_EXPANSION", "expand_braces", "expand_source", "open_shard", "put_shard", "storage_for"]


def storage_for(url: str | os.PathLike[str]) -> StorageBackend:
    """The storage backend registered for ``url``'s scheme (plain paths: file storage)."""
    from atdata_core.plugins import storage_backend

    return storage_backend(os.fspath(url))


def open_shard(url: str | os.PathLike[str]) -> BinaryIO:
    """Open a shard for streaming reads, through the backend for its URL scheme.

    Raises :class:`~atdata_core.errors.StorageNotFound` when there is no such
    shard and :class:`~atdata_core.errors.MissingImplementation` (naming what
    to install) when no backend handles the scheme.
    """
    text = os.fspath(url)
    return storage_for(text).open(text)


def put_shard(local_path: str | os.PathLike[str], url: str) -> str:
    """Copy a finished local shard to ``url`` through its backend; returns the shard's URL."""
    return storage_for(url).put(os.fspath(local_path), url)
