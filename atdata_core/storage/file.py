"""Local file storage: ``file://`` URLs and plain paths.

URLs keep the form they were given in: list a plain path, get plain paths;
list a ``file://`` URL, get ``file://`` URLs.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

from atdata_core.errors import RecordError, StorageError, StorageNotFound

__all__ = ["FileStorage", "local_path"]


def local_path(url: str | os.PathLike[str]) -> str:
    """The filesystem path of a ``file://`` URL or plain path.

    >>> local_path("file:///data/set%201/a.tar")
    '/data/set 1/a.tar'
    """
    text = os.fspath(url)
    if text[:7].lower() != "file://":
        return text
    # Not urlsplit: '?' and '#' in a file URL are part of the path (and of glob patterns).
    rest = text[7:]
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost"):
        raise StorageError(f"{text}: file URLs on another host ({host}) cannot be opened")
    return unquote(slash + path)


def _is_file_url(url: str) -> bool:
    return url[:7].lower() == "file://"


def _like(original: str, path: str) -> str:
    """``path`` in the style of ``original`` (file URL or plain path)."""
    if _is_file_url(original):
        return "file://" + quote(os.path.abspath(path))
    return path


class FileStorage:
    """Reads and writes shards on the local filesystem.

    ``put`` copies to a temporary name in the destination folder and renames
    it into place, so a reader never sees half a shard.
    """

    def __init__(self, config: Any = None):
        self.config = config

    def open(self, url: str) -> BinaryIO:
        path = local_path(url)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise StorageNotFound(f"no file at {url}") from None
        except IsADirectoryError:
            raise StorageError(f"{url} is a directory, not a shard file") from None
        except OSError as err:
            raise StorageError(f"cannot open {url}: {err.strerror or err}") from err

    def size(self, url: str) -> int | None:
        path = local_path(url)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise StorageNotFound(f"no file at {url}") from None
        except OSError as err:
            raise StorageError(f"cannot stat {url}: {err.strerror or err}") from err

    def exists(self, url: str) -> bool:
        return os.path.isfile(local_path(url))

    def list(self, url_prefix: str) -> list[str]:
        prefix = local_path(url_prefix)
        if os.path.isdir(prefix):
            root, name_prefix = prefix, None
        else:
            root, name_prefix = os.path.dirname(prefix) or ".", prefix
        found = []
        for folder, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                if name_prefix is None or path.startswith(name_prefix):
                    found.append(path)
        return sorted(_like(url_prefix, path) for path in found)

    def glob(self, pattern: str) -> list[str]:
        path_pattern = local_path(pattern)
        matches = [p for p in _glob.glob(path_pattern) if os.path.isfile(p)]
        return sorted(_like(pattern, path) for path in matches)

    def put(self, local_path_: str | os.PathLike[str], url: str) -> str:
        source = os.fspath(local_path_)
        dest = local_path(url)
        if not os.path.isfile(source):
            raise StorageNotFound(f"cannot put {source} at {url}: no such local file")
        if os.path.exists(dest) and os.path.samefile(source, dest):
            return url
        folder = os.path.dirname(os.path.abspath(dest))
        temp = os.path.join(folder, f".{os.path.basename(dest)}.{uuid.uuid4().hex}.part")
        try:
            os.makedirs(folder, exist_ok=True)
            shutil.copyfile(source, temp)
            os.replace(temp, dest)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise StorageError(f"cannot write {url}: {err.strerror or err}") from err
        return url

    def delete(self, url: str) -> None:
        try:
            os.unlink(local_path(url))
        except FileNotFoundError:
            raise StorageNotFound(f"no file at {url}") from None
        except OSError as err:
            raise StorageError(f"cannot delete {url}: {err.strerror or err}") from err

    def to_storage_record(self, shards: Sequence[tuple[str, str]]) -> dict[str, Any]:
        raise StorageError(
            "local files cannot be published: other people cannot read them. Put the shards on "
            "shared storage first (an http(s) server, s3:// with atdata-storage-s3, or PDS blobs "
            "with atdata-storage-blob) and publish those URLs"
        )

    def from_storage_record(self, record: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        raise RecordError(
            f"the file storage backend reads no storage records (got $type {record.get('$type')!r})"
        )

    def __repr__(self) -> str:
        return "FileStorage()"
