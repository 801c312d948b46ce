"""An example atdata plugin: in-memory ``mem://`` storage.

This module is what the plugin's entry point names, so atdata imports it at
discovery. Keep it cheap: it only describes the backend; the implementation
module is imported the first time a ``mem://`` URL is used.
"""

from __future__ import annotations

from atdata_core.plugins import StorageBackendSpec, hookimpl

__version__ = "0.1.0"


@hookimpl
def atdata_storage_backends() -> list[StorageBackendSpec]:
    return [
        StorageBackendSpec(
            name="mem",
            schemes=("mem",),
            factory="atdata_example_plugin.memory:MemoryStorage",
            description="in-memory shards for tests: mem://<bucket>/<key>, gone when the process ends",
        )
    ]
