"""``StorageBase``: write five primitives, inherit ``exists``, ``glob`` and ``expand``.

In the spirit of fsspec's ``AbstractFileSystem``: listing and pattern matching
are derived once, here, from the primitives, so every backend matches patterns
the same way.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from typing import BinaryIO

from atdata_core.errors import StorageNotFound
from atdata_core.storage._source import expand_braces

__all__ = ["StorageBase", "glob_regex", "has_glob_magic"]

_MAGIC = re.compile(r"[*?\[]")


def has_glob_magic(pattern: str) -> bool:
    """Whether ``pattern`` holds ``*``, ``?`` or ``[``."""
    return _MAGIC.search(pattern) is not None


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A shell pattern as a regular expression matching whole URLs.

    ``*`` is any run of characters and ``?`` one character, neither matching
    ``/``; ``[abc]``, ``[a-z]`` and ``[!abc]`` are character classes (never
    matching ``/`` either); a ``[`` without its ``]`` is literal.

    >>> bool(glob_regex("mem://b/*.tar").match("mem://b/sub/a.tar"))
    False
    """
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(pattern, index)
            if end is None:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                negate = body.startswith("!")
                if negate:
                    body = body[1:]
                # Escape everything but '-' (ranges), so that '\\', '^', '[' and
                # set operators stay literal members of the class.
                members = "".join(c if c == "-" else re.escape(c) for c in body)
                out.append(f"(?!/)[^{members}]" if negate else f"(?!/)[{members}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _class_end(pattern: str, start: int) -> int | None:
    """Index of the ``]`` closing the class opened at ``start``; a ``]`` right after ``[`` or ``[!`` is a member."""
    index = start + 1
    if index < len(pattern) and pattern[index] == "!":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    end = pattern.find("]", index)
    return end if end >= 0 else None


class StorageBase(ABC):
    """Base class for storage backends: implement the primitives, inherit the rest.

    A backend serves the URLs of the schemes it registered
    (:class:`~atdata_core.plugins.StorageBackendSpec`), always as full strings
    (``mem://bucket/set/data-000000.tar``), and writes five primitives:

    ``open(url) -> BinaryIO``
        A readable binary stream of the object's bytes, from the start. It
        streams (a large object is not read into memory first); ``read(n)``
        returns at most ``n`` bytes and ``b""`` at the end; the caller closes it.
        Optionally, a stream that checks its bytes against a sha256 itself
        (a content-addressed blob) says so with ``verifies_sha256`` (hex, on
        the stream or on its ``raw``): it then raises instead of handing out
        its last byte unless all its bytes hash to that digest. A shard whose
        recorded checksum is that digest, read to the stream's end, is not
        hashed again by the reader.
    ``size(url) -> int | None``
        The object's size in bytes, or None when the store cannot tell without
        reading it.
    ``put(local_path, url) -> str``
        Copy a finished local file to ``url``, replacing any object there
        whole, and return the object's URL. Readers never see a partial
        object under ``url``.
    ``delete(url) -> None``
        Remove the object.
    ``list(prefix) -> list[str]``
        Every object *at or below* ``prefix``, which names a folder: the
        object whose URL is ``prefix`` itself (if any) and every object whose
        URL starts with ``prefix + "/"``, at any depth, sorted. A trailing
        ``/`` on ``prefix`` changes nothing. So ``list("mem://b/set")``
        returns ``mem://b/set/a.tar`` and ``mem://b/set/sub/b.tar`` but never
        ``mem://b/set2/x.tar``. A prefix with nothing below it gives ``[]``.

    and inherits :meth:`exists` (from ``size``), :meth:`glob` (from ``list``)
    and :meth:`expand` (brace expansion, then ``glob``). Override a derived
    method only when the store can answer faster (a listing API that filters
    by pattern), never to change what it returns.

    Errors: a missing object raises
    :class:`~atdata_core.errors.StorageNotFound` from ``open``, ``size`` and
    ``delete`` (and from ``put`` when the local file is missing); any other
    failure raises :class:`~atdata_core.errors.StorageError` naming the URL
    and saying what to do. An operation the store cannot do at all (listing
    plain HTTP, writing to a read-only store) raises ``StorageError`` saying so.
    ``list`` of a prefix with nothing below it is ``[]``, not an error.

    Thread safety: a backend must be safe to use from several threads at
    once. The registry calls a backend's factory once per process and shares
    the instance between threads (and, through ``fork``, with data-loader
    worker processes, so per-process resources such as connection pools
    must be rebuilt when ``os.getpid()`` changes); ``ShardWriter`` calls
    ``put`` from a background thread while the caller keeps reading.

    Mapping shards to an entry record's ``storage`` member is a separate
    capability, :class:`~atdata_core.plugins.StorageRecordMapper`, for
    backends that have a record type.

    >>> class MemoryStorage(StorageBase):  # doctest: +SKIP
    ...     def open(self, url): ...
    ...     def size(self, url): ...
    ...     def put(self, local_path, url): ...
    ...     def delete(self, url): ...
    ...     def list(self, prefix): ...
    >>> MemoryStorage().glob("mem://b/data-*.tar")  # doctest: +SKIP
    ['mem://b/data-000000.tar', 'mem://b/data-000001.tar']
    """

    # -- primitives ----------------------------------------------------------

    @abstractmethod
    def open(self, url: str) -> BinaryIO:
        """A readable binary stream of the object at ``url``, from its first byte."""

    @abstractmethod
    def size(self, url: str) -> int | None:
        """The size in bytes of the object at ``url``, or None when the store cannot tell."""

    @abstractmethod
    def put(self, local_path: str | os.PathLike[str], url: str) -> str:
        """Copy a finished local file to ``url`` (replacing an object there whole); return the object's URL."""

    @abstractmethod
    def delete(self, url: str) -> None:
        """Remove the object at ``url``."""

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The URLs at or below the folder ``prefix``, recursively, sorted (see the class docstring)."""

    # -- derived -------------------------------------------------------------

    def exists(self, url: str) -> bool:
        """Whether an object exists at ``url`` (a folder is not an object).

        Other failures than a missing object (a server error, a refused
        permission) raise :class:`~atdata_core.errors.StorageError`.
        """
        try:
            self.size(url)
        except StorageNotFound:
            return False
        return True

    def glob(self, pattern: str) -> list[str]:
        """URLs of the objects matching a shell pattern, sorted.

        ``*`` matches any run of characters and ``?`` one character, neither
        crossing ``/``; ``[abc]``, ``[a-z]`` and ``[!abc]`` match one character
        of (or not of) a set. Each of ``*``, ``?`` and ``[`` is a pattern
        character, anywhere in the URL. A pattern without any is one URL:
        ``[pattern]`` if it exists, else ``[]``.

        The backend lists once, below the longest literal folder of the
        pattern (``mem://b/set/`` for ``mem://b/set/*/data-?.tar``).

        >>> backend.glob("mem://b/set/data-*.tar")  # doctest: +SKIP
        ['mem://b/set/data-000000.tar', 'mem://b/set/data-000001.tar']
        """
        first = _MAGIC.search(pattern)
        if first is None:
            return [pattern] if self.exists(pattern) else []
        folder = pattern[: pattern.rfind("/", 0, first.start()) + 1]
        regex = glob_regex(pattern)
        return sorted(url for url in self.list(folder) if regex.match(url))

    def expand(self, pattern: str) -> list[str]:
        """The URLs a brace and glob pattern names, in order.

        Braces expand first, as a shell does: numeric ranges keep their zero
        padding (``data-{000000..000009}.tar``), lists give each option
        (``{train,test}``). Each expanded URL holding ``*``, ``?`` or ``[`` is
        then globbed (its matches, sorted, possibly none); the others are kept
        as they are, unchecked, so a range of remote shards costs no requests.

        >>> backend.expand("mem://b/{train,test}-{0..1}.tar")  # doctest: +SKIP
        ['mem://b/train-0.tar', 'mem://b/train-1.tar', 'mem://b/test-0.tar', 'mem://b/test-1.tar']
        """
        urls: list[str] = []
        for candidate in expand_braces(pattern):
            if has_glob_magic(candidate):
                urls.extend(self.glob(candidate))
            else:
                urls.append(candidate)
        return urls
