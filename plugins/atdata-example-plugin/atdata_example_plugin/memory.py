"""In-memory shard storage: ``mem://<bucket>/<key>``.

Every ``MemoryStorage`` in a process shares one store, so shards written
through one instance (for example in a test) are read through another (the
one atdata's registry builds). Use it as a test double for code that reads
and writes shards, and ``MemoryStorage.clear()`` between tests.

It subclasses :class:`atdata_core.plugins.StorageBase`, so it writes only the
five primitives (``open``, ``size``, ``put``, ``delete``, ``list``) and
inherits ``exists``, ``glob`` and ``expand``. It has no storage record type:
``mem://`` shards cannot be published, so it does not implement
``StorageRecordMapper``.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any, BinaryIO

from atdata_core.errors import StorageError, StorageNotFound
from atdata_core.plugins import StorageBase

# One store per process, guarded by one lock: the registry shares a backend
# between threads, and ShardWriter calls put() from a background thread.
_store: dict[str, bytes] = {}
_lock = threading.Lock()


def _check(url: str) -> str:
    if not url.startswith("mem://") or len(url) <= len("mem://"):
        raise StorageError(f"not a mem:// URL: {url!r}; use mem://<bucket>/<key>")
    return url


class MemoryStorage(StorageBase):
    """Shards held in this process's memory."""

    def __init__(self, config: Any = None):
        self.config = config

    @staticmethod
    def clear() -> None:
        """Forget every stored object."""
        with _lock:
            _store.clear()

    def open(self, url: str) -> BinaryIO:
        with _lock:
            data = _store.get(_check(url))
        if data is None:
            raise StorageNotFound(f"no object at {url}")
        return io.BytesIO(data)  # bytes are immutable: a later put() never changes this stream

    def size(self, url: str) -> int | None:
        with _lock:
            data = _store.get(_check(url))
        if data is None:
            raise StorageNotFound(f"no object at {url}")
        return len(data)

    def put(self, local_path: str | os.PathLike[str], url: str) -> str:
        _check(url)
        try:
            with open(local_path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise StorageNotFound(f"cannot put {local_path} at {url}: no such local file") from None
        with _lock:
            _store[url] = data  # one assignment: readers see the old object or the new one
        return url

    def delete(self, url: str) -> None:
        with _lock:
            if _store.pop(_check(url), None) is None:
                raise StorageNotFound(f"no object at {url}")

    def list(self, prefix: str) -> list[str]:
        # ``prefix`` names a folder: the object named exactly so, and everything below "prefix/".
        if not prefix.startswith("mem://"):
            raise StorageError(f"not a mem:// URL: {prefix!r}; use mem://<bucket>/<key>")
        exact = prefix.rstrip("/")
        below = exact + "/"
        with _lock:
            return sorted(url for url in _store if url == exact or url.startswith(below))

    def __repr__(self) -> str:
        return "MemoryStorage()"
