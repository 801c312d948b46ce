"""Turning a dataset source (URL, brace pattern, glob, folder, list) into shard URLs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Union
from urllib.parse import urlsplit

from atdata_core.errors import StorageError, StorageNotFound

Source = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]]

#: Refuse brace patterns that would expand to more URLs than this.
MAX_EXPANSION = 1_000_000

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$")
_GLOB_MAGIC = re.compile(r"[*?\[]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def expand_braces(pattern: str) -> list[str]:
    """Expand shell-style braces: numeric ranges and comma lists, several and nested.

    Ranges keep zero padding when either end has a leading zero.

    >>> expand_braces("data-{000..002}.tar")
    ['data-000.tar', 'data-001.tar', 'data-002.tar']
    >>> expand_braces("{train,test}-{0..1}.tar")
    ['train-0.tar', 'train-1.tar', 'test-0.tar', 'test-1.tar']

    A brace holding neither ``..`` nor a top-level comma stays literal.
    """
    results = _expand(pattern, 0)
    if len(results) > MAX_EXPANSION:
        raise StorageError(f"{pattern!r} expands to {len(results)} URLs, more than {MAX_EXPANSION}")
    return results


def _expand(text: str, search_from: int) -> list[str]:
    start = text.find("{", search_from)
    while start >= 0:
        end = _matching_brace(text, start)
        if end is None:
            raise StorageError(f"unbalanced '{{' at position {start} in {text!r}")
        options = _brace_options(text[start + 1 : end])
        if options is not None:
            prefix, suffix = text[:start], text[end + 1 :]
            out: list[str] = []
            for option in options:
                # The option may hold braces of its own; the prefix holds only literal ones.
                for head in _expand(prefix + option, start):
                    out.extend(head + tail for tail in _expand(suffix, 0))
                if len(out) > MAX_EXPANSION:
                    raise StorageError(f"{text!r} expands to more than {MAX_EXPANSION} URLs")
            return out
        start = text.find("{", start + 1)
    return [text]


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def _brace_options(body: str) -> list[str] | None:
    match = _RANGE.match(body)
    if match:
        first_text, last_text, step_text = match.groups()
        first, last = int(first_text), int(last_text)
        step = abs(int(step_text)) if step_text else 1
        if step == 0:
            raise StorageError(f"brace range {{{body}}} has a step of 0")
        if abs(last - first) // step + 1 > MAX_EXPANSION:
            raise StorageError(f"brace range {{{body}}} expands to more than {MAX_EXPANSION} values")
        padded = any(len(t.lstrip("-")) > 1 and t.lstrip("-").startswith("0") for t in (first_text, last_text))
        width = max(len(first_text), len(last_text)) if padded else 0
        direction = step if last >= first else -step
        values = range(first, last + (1 if direction > 0 else -1), direction)
        return [f"{value:0{width}d}" if width else str(value) for value in values]
    parts, depth, current = [], 0, []
    for char in body:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        current.append(char)
    if not parts:
        return None
    parts.append("".join(current))
    return parts


def _has_glob_magic(url: str) -> bool:
    match = _SCHEME.match(url)
    if match and match.group(1).lower() != "file":
        # In a remote URL '?' starts the query; only the path can hold a pattern.
        return bool(_GLOB_MAGIC.search(urlsplit(url).path))
    return bool(_GLOB_MAGIC.search(url))


def _local_folder(url: str) -> str | None:
    match = _SCHEME.match(url)
    if match and match.group(1).lower() != "file":
        return None
    from atdata_core.storage.file import local_path

    path = local_path(url)
    return path if os.path.isdir(path) else None


def expand_source(source: Source) -> list[str]:
    """The shard URLs a dataset source names, in order.

    ``source`` is a URL or path, a brace pattern (``data-{000000..000099}.tar``),
    a glob (``shards/*.tar``, matched by the storage backend of its scheme), a
    local folder (every ``*.tar`` directly inside, sorted), a
    :class:`pathlib.Path`, or a list or tuple of any of these. Brace-expanded
    URLs are not checked for existence (opening them will be); a glob or
    folder that matches nothing raises :class:`StorageNotFound`.

    >>> expand_source(["a.tar", "https://host/b-{0..1}.tar"])
    ['a.tar', 'https://host/b-0.tar', 'https://host/b-1.tar']
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise StorageError("no shards: the list of sources is empty")
        urls: list[str] = []
        for item in source:
            if isinstance(item, (list, tuple)):
                urls.extend(expand_source(item))
            else:
                urls.extend(_expand_one(item))
        return urls
    return _expand_one(source)


def _expand_one(item: object) -> list[str]:
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, bytes):
        raise TypeError("shard sources are str or os.PathLike, not bytes")
    if not isinstance(item, str):
        raise TypeError(f"a shard source is a URL, path, or a list of them, not {type(item).__name__}")
    if not item.strip():
        raise StorageError("no shards: the source is an empty string")
    urls: list[str] = []
    for candidate in expand_braces(item):
        folder = _local_folder(candidate)
        if folder is not None:
            urls.extend(_tars_in(candidate, folder))
        elif _has_glob_magic(candidate):
            from atdata_core.plugins import storage_backend

            matches = storage_backend(candidate).glob(candidate)
            if not matches:
                origin = f" (from {item!r})" if candidate != item else ""
                raise StorageNotFound(f"no shards match {candidate!r}{origin}")
            urls.extend(matches)
        else:
            urls.append(candidate)
    return urls


def _tars_in(url: str, folder: str) -> list[str]:
    names = sorted(name for name in os.listdir(folder) if name.endswith(".tar") and os.path.isfile(os.path.join(folder, name)))
    if not names:
        raise StorageNotFound(f"folder {url} holds no .tar shards")
    base = url if url.endswith("/") else url + "/"
    if base.lower().startswith("file://"):
        from urllib.parse import quote

        return [base + quote(name) for name in names]
    return [os.path.join(url, name) for name in names]
