"""The core's own implementations, registered through the same hooks as any plugin.

The ``atdata`` entry point ``builtin`` names this module. Factories are
strings so that nothing here imports ``requests`` until an http(s) URL is used.
"""

from __future__ import annotations

from atdata_core.plugins import StorageBackendSpec, hookimpl


@hookimpl
def atdata_storage_backends() -> list[StorageBackendSpec]:
    return [
        StorageBackendSpec(
            name="file",
            schemes=("file", ""),
            factory="atdata_core.storage.file:FileStorage",
            description="local files: file:// URLs and plain paths",
        ),
        StorageBackendSpec(
            name="http",
            schemes=("http", "https"),
            record_types=("science.alt.dataset.storageHttp",),
            factory="atdata_core.storage.http:HttpStorage",
            description="http(s) URLs: streaming reads with Range resume; PUT and DELETE for writes",
        ),
    ]
