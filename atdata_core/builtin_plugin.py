"""The core's own implementations, registered through the same hooks as any plugin.

The ``atdata`` entry point ``builtin`` names this module. Factories are
strings or small functions that import inside, so that discovering this
plugin imports neither ``requests`` nor ``sqlite3`` nor the lens machinery.
"""

from __future__ import annotations

import os
from typing import Any

from atdata_core.plugins import (
    JSON_SCHEMA_FORMAT_NSID,
    STORAGE_HTTP_NSID,
    IndexProviderSpec,
    LensExecutorSpec,
    SchemaFormatSpec,
    StorageBackendSpec,
    hookimpl,
)


@hookimpl
def atdata_storage_backends() -> list[StorageBackendSpec]:
    return [
        StorageBackendSpec(
            name="file",
            schemes=("file", ""),
            factory="atdata_core.storage.file:FileStorage",
            description="local files: file:// URLs and plain paths (no storage record: not publishable)",
        ),
        StorageBackendSpec(
            name="http",
            schemes=("http", "https"),
            record_types=(STORAGE_HTTP_NSID,),
            factory="atdata_core.storage.http:HttpStorage.from_config",
            description="http(s) URLs: streaming reads with Range resume; PUT and DELETE for writes",
        ),
    ]


def _sqlite_index(config: Any) -> Any:
    # [index] sqlite_path is read here; the index receives a path, never the configuration.
    from atdata_core.index.sqlite import SqliteIndex, default_path

    path = config.get_str("index.sqlite_path") if config is not None else None
    return SqliteIndex(os.path.expanduser(path) if path else default_path())


@hookimpl
def atdata_index_providers() -> list[IndexProviderSpec]:
    return [
        IndexProviderSpec(
            name="sqlite",
            factory=_sqlite_index,
            description="embedded index in one SQLite file ([index] sqlite_path), searchable offline",
        ),
        IndexProviderSpec(
            name="pds",
            factory="atdata_core.index.pds:PdsIndex.from_config",
            description="reads one account's records straight from its own PDS (no AppView)",
        ),
    ]


def _python_lens_executor(config: Any) -> Any:
    # The [lens] section becomes typed settings here; the executor never reads configuration.
    from atdata_core.executors import PythonExecutorSettings, PythonLensExecutor

    settings = PythonExecutorSettings(
        trusted_dids=config.get_list("lens.trusted_dids"),
        pinned_commits=config.get_list("lens.pinned_commits"),
        require_verified_commit=bool(config.get_bool("lens.require_verified_commit", False)),
        allow_working_directory=bool(config.get_bool("lens.allow_working_directory", False)),
    )
    return PythonLensExecutor(settings)


@hookimpl
def atdata_lens_executors() -> list[LensExecutorSpec]:
    return [
        LensExecutorSpec(
            name="python",
            languages=("python",),
            factory=_python_lens_executor,
            description="runs Python lens code installed here whose reference matches; nothing from the network",
        ),
    ]


def _json_schema_format(config: Any) -> Any:
    # The JSON Schema format has no settings: nothing of the configuration reaches it.
    from atdata_core.schema import JsonSchemaFormat

    return JsonSchemaFormat()


@hookimpl
def atdata_schema_formats() -> list[SchemaFormatSpec]:
    return [
        SchemaFormatSpec(
            name="jsonSchema",
            schema_types=("jsonSchema",),
            union_types=(JSON_SCHEMA_FORMAT_NSID,),
            factory=_json_schema_format,
            description="JSON Schema draft-07 with the NDArray shim",
        ),
    ]
