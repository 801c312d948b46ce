"""Shard sources: what a :class:`~atdata_core.Dataset` is built from, turned into a list of shards.

A source is a URL or path, a brace pattern, a glob, a directory, a list of any
of these, or shard records (anything with a ``url``, such as
:class:`~atdata_core.ShardInfo`). Expansion and opening go through the storage
registry, imported on first use.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ._shardref import ShardRef, as_shard_ref
from .errors import AtdataError, StorageNotFound


def resolve_shards(source: Any, shards: Iterable[Any] | None, checksums: dict[str, str] | None) -> list[ShardRef]:
    """The shards of a dataset, with what ``shards=`` and ``checksums=`` say of them."""
    known: dict[str, ShardRef] = {}
    if shards is not None:
        for item in shards:
            ref = as_shard_ref(item)
            known[ref.url] = ref
    if source is None:
        if not known:
            raise ValueError("Dataset needs a source: a URL, a pattern, a directory, a list, or shards=[ShardInfo, ...]")
        refs = list(known.values())
    elif _is_shard_records(source):
        refs = [as_shard_ref(item) for item in source]
        refs = [known.get(r.url, r) for r in refs]
    elif not isinstance(source, (str, os.PathLike, list, tuple)) and hasattr(source, "url"):
        refs = [known.get(os.fspath(source.url), as_shard_ref(source))]
    else:
        urls = _expand_source(source)
        if not urls:
            raise StorageNotFound(
                f"no shards found for {describe_source(source)}: the pattern, glob or directory "
                "matched nothing. Check the path and the brace range (e.g. data-{000000..000009}.tar)"
            )
        refs = [known.get(url) or ShardRef(url) for url in urls]
        if known:
            missing = set(known) - set(urls)
            if missing:
                raise ValueError(
                    f"shards= names {len(missing)} shard(s) that the source does not match, "
                    f"e.g. {sorted(missing)[0]!r}"
                )
    if checksums:
        by_url = {r.url: i for i, r in enumerate(refs)}
        unknown = [url for url in checksums if url not in by_url]
        if unknown:
            raise ValueError(
                f"checksums= names {len(unknown)} URL(s) that are not shards of this dataset, "
                f"e.g. {unknown[0]!r}; its shards are like {refs[0].url!r}"
            )
        for url, digest in checksums.items():
            i = by_url[url]
            refs[i] = refs[i]._replace(sha256=digest)
    return refs


def describe_source(source: Any) -> str:
    """A short text naming a source, for messages and ``repr``."""
    if isinstance(source, (list, tuple)):
        if not all(isinstance(s, (str, os.PathLike)) for s in source):
            return f"{len(source)} shard records"
        if len(source) <= 2:
            return repr([os.fspath(s) for s in source])
        return f"[{os.fspath(source[0])!r}, ... {len(source)} items]"
    return repr(os.fspath(source) if isinstance(source, os.PathLike) else source)


def open_shard(url: str) -> Any:
    """A readable binary stream of one shard, from the storage backend of its URL."""
    from .storage import open_shard as open_with_storage

    return open_with_storage(url)


def _is_shard_records(source: Any) -> bool:
    return isinstance(source, (list, tuple)) and bool(source) and all(
        not isinstance(s, (str, os.PathLike)) and hasattr(s, "url") for s in source
    )


def _expand_source(source: Any) -> list[str]:
    from .storage import expand_source

    urls = list(expand_source(source))
    if urls and _all_local_missing(urls):
        raise StorageNotFound(
            f"no shards found for {describe_source(source)}: none of its {len(urls)} path(s) exists, "
            f"e.g. {urls[0]!r}. Check the folder and the brace range (data-{{000000..000009}}.tar)"
        )
    return urls


def _all_local_missing(urls: list[str]) -> bool:
    """True when every URL is a local path and none exists (a typo in the pattern, usually)."""
    from .storage.file import local_path

    for url in urls:
        if "://" in url and not url[:7].lower() == "file://":
            return False
        try:
            if os.path.exists(local_path(url)):
                return False
        except AtdataError:
            return False
    return True
