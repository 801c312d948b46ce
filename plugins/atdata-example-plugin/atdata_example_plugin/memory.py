"""In-memory shard storage: ``mem://<bucket>/<key>``.

Every ``MemoryStorage`` in a process shares one store, so shards written
through one instance (for example in a test) are read through another (the
one atdata's registry builds). Use it as a test double for code that reads
and writes shards, and ``MemoryStorage.clear()`` between tests.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from atdata_core.errors import RecordError, StorageError, StorageNotFound

_store: dict[str, bytes] = {}
_lock = threading.Lock()


def _check(url: str) -> str:
    if not url.startswith("mem://") or len(url) <= len("mem://"):
        raise StorageError(f"not a mem:// URL: {url!r}")
    return url


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A shell pattern as a regex where ``*`` and ``?`` stop at ``/``."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


class MemoryStorage:
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
        return io.BytesIO(data)

    def size(self, url: str) -> int | None:
        with _lock:
            data = _store.get(_check(url))
        if data is None:
            raise StorageNotFound(f"no object at {url}")
        return len(data)

    def exists(self, url: str) -> bool:
        with _lock:
            return _check(url) in _store

    def list(self, url_prefix: str) -> list[str]:
        _check(url_prefix)
        with _lock:
            return sorted(url for url in _store if url.startswith(url_prefix))

    def glob(self, pattern: str) -> list[str]:
        regex = _pattern_regex(_check(pattern))
        with _lock:
            return sorted(url for url in _store if regex.match(url))

    def put(self, local_path: str, url: str) -> str:
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

    def to_storage_record(self, shards: Sequence[tuple[str, str]]) -> dict[str, Any]:
        raise StorageError("mem:// shards live in one process's memory and cannot be published")

    def from_storage_record(self, record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        raise RecordError(f"mem:// storage reads no storage records (got $type {record.get('$type')!r})")
