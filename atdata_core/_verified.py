"""Local shard files already verified against a checksum, and unchanged since: not hashed again.

A training run reads the same local shards every epoch, and hashing them again
each time costs more than decoding them (sha256 runs at about 1.8 GB/s on one
core). A file whose sha256 matched is remembered by what identifies its
contents on this machine: device, inode, size, modification and change times
(the change time is set by the kernel on every write, rename or ``utime`` and
cannot be set back without changing the system clock), with the checksum it
matched. A later read of a file with exactly that identity, against that
checksum, skips the hash; anything else (a write, a replaced file, another
checksum) is hashed again, as is every remote shard.

A remembered file is an empty marker in ``user_dir("cache")/verified/``,
named by a hash of the identity, written only when the file's identity was the
same before its first byte was read and after its digest matched. Turn it off
with ``[shards] remember_verified = false`` (or
``ATDATA_SHARDS_REMEMBER_VERIFIED=0``); ``atdata cache clear`` forgets every file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path
from typing import Any

__all__ = ["Identity", "forget_all", "identity_of", "is_remembered", "remember", "verified_dir"]

#: ``(device, inode, size, mtime_ns, ctime_ns)`` of an open regular file.
Identity = tuple[int, int, int, int, int]

# A file changed less than this long ago is not remembered yet (see remember).
_SETTLED_NS = 2_000_000_000


def verified_dir() -> Path:
    """The folder of the markers: ``user_dir("cache")/verified``."""
    from .config import user_dir

    return user_dir("cache") / "verified"


def identity_of(stream: Any) -> Identity | None:
    """The identity of an open local regular file, read from its descriptor; None for anything else."""
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _marker(identity: Identity, sha256: str) -> Path:
    key = hashlib.sha256(("%d:%d:%d:%d:%d:" % identity + sha256.lower()).encode()).hexdigest()
    return verified_dir() / key[:2] / key


def is_remembered(identity: Identity | None, sha256: str | None) -> bool:
    """Whether a file of this identity was verified against ``sha256`` before."""
    if identity is None or not sha256:
        return False
    return _marker(identity, sha256).exists()


def remember(identity: Identity | None, sha256: str, stream: Any) -> None:
    """Note that the file open as ``stream`` matched ``sha256``, if its identity is still ``identity``
    (the one it had before its first byte was read). A cache that cannot be written is no error."""
    if identity is None or identity_of(stream) != identity:
        return
    if time.time_ns() - max(identity[3], identity[4]) < _SETTLED_NS:
        # Written moments ago: a write within the file system's timestamp granularity could
        # leave the same identity to other bytes. A later read remembers it.
        return
    marker = _marker(identity, sha256)
    try:
        marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        pass


def forget_all() -> int:
    """Forget every verified file; how many were remembered."""
    import shutil

    folder = verified_dir()
    count = sum(1 for _ in folder.glob("*/*")) if folder.is_dir() else 0
    shutil.rmtree(folder, ignore_errors=True)
    return count
