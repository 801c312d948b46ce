"""Every hook a plugin can implement.

Hooks are called by the core, never by plugins. Implement one by decorating a
function of the same name with :data:`atdata_core.plugins.hookimpl` in the
module your ``atdata`` entry point names. Each extension-point hook returns a
list of descriptors; the core records which plugin returned each one.

Hooks are only ever added. An added argument is fine for existing plugins
(pluggy passes a hook implementation only the arguments it names); removing
or renaming one would break them, so that never happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from atdata_core.config import Config
    from atdata_core.plugins._descriptors import (
        IndexProviderSpec,
        LensExecutorSpec,
        SchemaFormatSpec,
        StorageBackendSpec,
    )

hookspec = pluggy.HookspecMarker("atdata")


@hookspec
def atdata_storage_backends() -> list[StorageBackendSpec]:
    """Storage backends this plugin provides, keyed by URL scheme and storage-union ``$type``.

    Called once, when the storage registry is first needed. Return
    :class:`~atdata_core.plugins.StorageBackendSpec` objects whose factory builds a
    :class:`~atdata_core.plugins.StorageBackend`.
    """


@hookspec
def atdata_schema_formats() -> list[SchemaFormatSpec]:
    """Schema formats this plugin provides, keyed by ``schemaType`` and ``schema`` union ``$type``.

    Called once, when the schema-format registry is first needed. Return
    :class:`~atdata_core.plugins.SchemaFormatSpec` objects whose factory builds a
    :class:`~atdata_core.plugins.SchemaFormat`.
    """


@hookspec
def atdata_index_providers() -> list[IndexProviderSpec]:
    """Index and discovery providers this plugin provides, keyed by name.

    Called once, when the index registry is first needed. Return
    :class:`~atdata_core.plugins.IndexProviderSpec` objects whose factory builds an
    :class:`~atdata_core.plugins.IndexProvider`.
    """


@hookspec
def atdata_lens_executors() -> list[LensExecutorSpec]:
    """Lens executors this plugin provides, keyed by name and code language.

    Called once, when the lens-executor registry is first needed. Return
    :class:`~atdata_core.plugins.LensExecutorSpec` objects whose factory builds a
    :class:`~atdata_core.plugins.LensExecutor`.
    """


@hookspec
def atdata_configure(config: Config) -> None:
    """Receive the merged configuration once, after every plugin is loaded and before any is used.

    Read your own section (``config.section("myplugin")``) here; raise
    :class:`~atdata_core.errors.ConfigError` for a value you cannot accept. The
    return value is ignored.
    """


@hookspec
def atdata_cli_commands() -> list[Any]:
    """``click`` commands or groups to add to the ``atdata`` command line.

    Called when the CLI starts. Import click inside the hook implementation, not
    at module level, so that loading the plugin stays cheap.
    """
