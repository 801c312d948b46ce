"""``ShardRef``: one shard as a dataset, a storage record or an index names it."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

__all__ = ["ShardRef", "as_shard_ref"]


class ShardRef(NamedTuple):
    """One shard: its URL, and what is known about it (None when unknown).

    ``sha256`` is the hex digest a reader verifies; ``count`` and ``size`` are
    the samples and bytes the publisher recorded.

    >>> ShardRef("https://example.org/a-000000.tar", "9f86d0...")
    ShardRef(url='https://example.org/a-000000.tar', sha256='9f86d0...', count=None, size=None)
    """

    url: str
    sha256: str | None = None
    count: int | None = None
    size: int | None = None


def as_shard_ref(item: Any) -> ShardRef:
    """A ShardRef from a URL, a path, a ``(url, sha256)`` pair, a ShardInfo or anything with ``url``."""
    if isinstance(item, ShardRef):
        return item
    if isinstance(item, (str, os.PathLike)):
        return ShardRef(os.fspath(item))
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (str, os.PathLike)):
        return ShardRef(os.fspath(item[0]), sha256=item[1])
    url = getattr(item, "url", None)
    if url is None:
        raise TypeError(f"cannot read a shard from {item!r}: pass URLs, paths or ShardInfo objects (with .url)")
    return ShardRef(
        os.fspath(url),
        sha256=getattr(item, "sha256", None),
        count=getattr(item, "count", None),
        size=getattr(item, "size", None),
    )
