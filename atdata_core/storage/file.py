"""Local file storage: ``file://`` URLs and plain paths.

URLs keep the form they were given in: list a plain path, get plain paths;
list a ``file://`` URL, get ``file://`` URLs.

Local files are for your own code. A URL that a record named (a
:class:`~atdata_core._netpolicy.RecordUrl`) is refused before the file
system is touched, whatever it looks like: the network policy refuses such
URLs when the record is loaded, and this is the second lock on the same door.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

from atdata_core.errors import NetworkPolicyError, StorageError, StorageNotFound
from atdata_core.storage._base import StorageBase

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


def _refuse_record_url(url: Any) -> None:
    if type(url) is str:
        return  # a plain str is never a RecordUrl (a str subclass): opening a path needs no policy module
    from atdata_core._netpolicy import RecordUrl

    if isinstance(url, RecordUrl):
        named = f" by {url.named_by}" if url.named_by else " by a record"
        raise NetworkPolicyError(
            f"refused {str(url)[:200]!r}, named{named}: a record never opens a local file. Local files are "
            "for your own code (Dataset('/path/to/shards'))"
        )


def _is_file_url(url: str) -> bool:
    return url[:7].lower() == "file://"


class FileStorage(StorageBase):
    """Reads and writes shards on the local filesystem.

    ``put`` copies to a temporary name in the destination folder and renames
    it into place, so a reader never sees half a shard. A directory is a
    folder, not an object: ``open`` and ``size`` of one raise
    :class:`StorageNotFound` and ``exists`` is False. Local files have no
    storage record: publish shards from shared storage (http(s), s3://, PDS
    blobs).
    """

    def __init__(self, config: Any = None):
        self.config = config

    def open(self, url: str) -> BinaryIO:
        _refuse_record_url(url)
        path = local_path(url)
        try:
            return open(path, "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError):
            raise StorageNotFound(f"no file at {url}") from None
        except IsADirectoryError:
            raise StorageNotFound(f"{url} is a directory, not a shard file") from None
        except OSError as err:
            raise StorageError(f"cannot open {url}: {err.strerror or err}") from err

    def size(self, url: str) -> int | None:
        _refuse_record_url(url)
        path = local_path(url)
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise StorageNotFound(f"no file at {url}") from None
        except OSError as err:
            raise StorageError(f"cannot stat {url}: {err.strerror or err}") from err
        if stat.S_ISDIR(info.st_mode):
            raise StorageNotFound(f"{url} is a directory, not a shard file")
        return info.st_size

    def list(self, prefix: str) -> list[str]:
        """Every file at or below the folder ``prefix``, recursively, sorted.

        URLs keep the form of ``prefix``: a plain path gives plain paths (an
        empty prefix: paths relative to the working folder), a ``file://``
        URL gives ``file://`` URLs whose added part is percent-encoded.
        """
        root = local_path(prefix)
        if os.path.isfile(root):
            return [prefix]
        if not os.path.isdir(root or "."):
            return []
        base = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        encode = quote if _is_file_url(prefix) else (lambda text: text)
        found = []
        for folder, _dirs, files in os.walk(root or "."):
            relative = os.path.relpath(folder, root or ".")
            for name in files:
                path = name if relative == "." else os.path.join(relative, name)
                found.append(base + encode(path.replace(os.sep, "/")))
        return sorted(found)

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
        except (FileNotFoundError, NotADirectoryError):
            raise StorageNotFound(f"no file at {url}") from None
        except IsADirectoryError:
            raise StorageNotFound(f"{url} is a directory, not a shard file") from None
        except OSError as err:
            raise StorageError(f"cannot delete {url}: {err.strerror or err}") from err

    def __repr__(self) -> str:
        return "FileStorage()"
