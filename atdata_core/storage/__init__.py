"""Shard storage: opening shard URLs and expanding dataset sources.

The backends themselves come from plugins (built in: :mod:`.file` for
``file://`` URLs and plain paths, :mod:`.http` for ``http(s)://``), chosen by
URL scheme through :func:`atdata_core.plugins.storage_backend`. A backend
subclasses :class:`StorageBase`: it writes five primitives and inherits
``exists``, ``glob`` and ``expand``.

>>> expand_source("shards/data-{000..002}.tar")
['shards/data-000.tar', 'shards/data-001.tar', 'shards/data-002.tar']
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

from atdata_core.storage._base import StorageBase
from atdata_core.storage._source import MAX_EXPANSION, expand_braces, expand_source

if TYPE_CHECKING:
    from atdata_core.plugins import StorageBackend

# a URL scheme as the plugin registry reads one (plain paths have none)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")

__all__ = [
    "MAX_EXPANSION",
    "StorageBase",
    "expand_braces",
    "expand_source",
    "open_shard",
    "put_shard",
    "shards_from_storage_record",
    "storage_for",
    "storage_record_for",
]


def storage_for(url: str | os.PathLike[str]) -> StorageBackend:
    """The storage backend registered for ``url``'s scheme (plain paths: file storage)."""
    from atdata_core.plugins import storage_backend

    return storage_backend(os.fspath(url))


def open_shard(url: str | os.PathLike[str]) -> BinaryIO:
    """Open a shard for streaming reads, through the backend for its URL scheme.

    Raises :class:`~atdata_core.errors.StorageNotFound` when there is no such
    shard and :class:`~atdata_core.errors.MissingImplementation` (naming what
    to install) when no backend handles the scheme. A plain path or ``file://``
    URL opens without discovering plugins, unless configuration chooses another
    backend for them (see :func:`atdata_core.plugins._manager.local_file_storage`).
    """
    text = os.fspath(url)
    backend = _local_file_storage(text)
    if backend is None:
        backend = storage_for(text)
    return backend.open(text)


_LOCAL_SCHEMES = ("", "file")
_local_files: Any = None


def _local_file_storage(url: str) -> Any:
    """The core's file backend for a plain path or ``file://`` URL, without discovering plugins.

    It is what discovery would choose, unless the configuration says
    otherwise: None (discover, and choose as always) once this process has
    discovered plugins, for any other URL, when ``[storage.select]`` names a
    backend for plain paths or ``file://``, and when the core's own plugin
    (``builtin``, ``atdata-core``) is deny-listed. Another plugin registering
    plain paths would make discovery fail with a duplicate until
    ``[storage.select]`` chooses one, so none takes local paths over without
    that setting. Not even the plugin machinery is imported on this path.
    """
    global _local_files
    manager = sys.modules.get("atdata_core.plugins._manager")
    if manager is not None and manager.discovered():
        return None
    match = _SCHEME.match(url)
    if match is not None and match.group(1).lower() not in _LOCAL_SCHEMES:
        return None
    from atdata_core.config import load_config

    config = load_config()
    deny = {name.strip().lower().replace("_", "-").replace(".", "-") for name in config.get_list("plugins.deny")}
    if "builtin" in deny or "atdata-core" in deny:
        return None
    select = config.get("storage.select")
    if isinstance(select, dict) and any(key in select for key in _LOCAL_SCHEMES):
        return None
    if _local_files is None:
        from atdata_core.storage.file import FileStorage

        _local_files = FileStorage(config)
    return _local_files


def put_shard(local_path: str | os.PathLike[str], url: str) -> str:
    """Copy a finished local shard to ``url`` through its backend; returns the shard's URL."""
    return storage_for(url).put(os.fspath(local_path), url)


def storage_record_for(shards: Iterable[Any]) -> dict[str, Any]:
    """The entry record's ``storage`` member for shards of one URL scheme.

    ``shards`` are :class:`~atdata_core.plugins.ShardRef` values (or anything
    with ``url`` and ``sha256``, such as ``ShardWriter.shards``). The backend
    of their scheme writes the member, so it must be a
    :class:`~atdata_core.plugins.StorageRecordMapper`; one that is not (local
    files, an in-memory store) raises :class:`~atdata_core.errors.StorageError`
    saying where to put the shards instead.
    """
    from atdata_core._shardref import as_shard_ref
    from atdata_core.errors import StorageError
    from atdata_core.plugins import get_registry, url_scheme
    from atdata_core.plugins._contracts import StorageRecordMapper

    refs = [as_shard_ref(shard) for shard in shards]
    if not refs:
        raise StorageError("a storage record needs at least one shard")
    schemes = sorted({url_scheme(ref.url) for ref in refs})
    if len(schemes) > 1:
        raise StorageError(
            f"the shards mix URL schemes ({', '.join(s or 'plain path' for s in schemes)}); "
            "one storage record lists shards of one storage kind"
        )
    registry = get_registry().storage
    spec = registry.spec_for_url(refs[0].url)
    backend = registry.instance(spec)
    if not isinstance(backend, StorageRecordMapper):
        where = (
            "local files cannot be published: other people cannot read them"
            if schemes[0] in ("", "file")
            else f"{schemes[0]}:// shards cannot be published: their storage backend {spec.name!r} "
            f"from {spec.provider()} has no storage record type"
        )
        raise StorageError(
            f"{where}. Put the shards on shared storage first (an http(s) server, s3:// with "
            "atdata-storage-s3, or PDS blobs with atdata-storage-blob) and publish those URLs; "
            "ShardWriter(..., base_url=...) names shards by the URL they will be served from"
        )
    return backend.to_storage_record(refs)


def shards_from_storage_record(record: Any, *, repo: str | None = None) -> list[Any]:
    """The shards an entry's ``storage`` member lists, as :class:`~atdata_core.plugins.ShardRef` values.

    The mapper registered for the member's ``$type`` reads it. ``repo`` is the
    DID of the repository holding the entry; it is passed on to a mapper whose
    ``from_storage_record`` takes a ``repo`` keyword (a member such as
    ``storageBlobs`` names blobs of the entry's own repository without saying
    which), and left out for the others, so mappers written before it keep
    working.
    """
    import inspect
    from collections.abc import Mapping

    from atdata_core.errors import RecordError
    from atdata_core.plugins import storage_record_mapper

    record_type = record.get("$type") if isinstance(record, Mapping) else None
    if not isinstance(record_type, str):
        raise RecordError("the entry's storage has no $type, so nothing says where the shards are")
    mapper = storage_record_mapper(record_type.removesuffix("#main"))
    try:
        parameters = inspect.signature(mapper.from_storage_record).parameters.values()
    except (TypeError, ValueError):
        parameters = ()
    takes_repo = any(p.name == "repo" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    if takes_repo and repo is not None:
        return list(mapper.from_storage_record(record, repo=repo))
    return list(mapper.from_storage_record(record))
