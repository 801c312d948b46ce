"""atdata's plugin framework: hooks, descriptors, contracts and registries.

A plugin is a module named by an entry point in the ``atdata`` group. It
implements hooks from :mod:`atdata_core.plugins.hookspecs` with
:data:`hookimpl`; each extension-point hook returns descriptors
(:class:`StorageBackendSpec`, ...) whose factories build implementations of
the contracts (:class:`StorageBackend`, ...). The core picks among them by
URL scheme, record ``$type``, name or configuration. See ``docs/plugins.md``.

>>> from atdata_core.plugins import storage_backend
>>> backend = storage_backend("file:///tmp/data-000000.tar")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import pluggy

from atdata_core.plugins._contracts import (
    IndexedRecord,
    IndexProvider,
    LensExecutor,
    SchemaFormat,
    ShardRef,
    StorageBackend,
)
from atdata_core.plugins._descriptors import (
    ImplementationSpec,
    IndexProviderSpec,
    LensExecutorSpec,
    SchemaFormatSpec,
    StorageBackendSpec,
)
from atdata_core.plugins._manager import (
    ENTRY_POINT_GROUP,
    PluginInfo,
    get_config,
    get_plugin_manager,
    get_registry,
    plugin_registered,
    plugin_report,
    reset_plugins,
)
from atdata_core.plugins._registry import KNOWN_DISTRIBUTIONS, Registry, url_scheme

#: Marks a function as a hook implementation: ``@hookimpl def atdata_storage_backends(): ...``
hookimpl = pluggy.HookimplMarker("atdata")

__all__ = [
    "ENTRY_POINT_GROUP",
    "KNOWN_DISTRIBUTIONS",
    "ImplementationSpec",
    "IndexProvider",
    "IndexProviderSpec",
    "IndexedRecord",
    "LensExecutor",
    "LensExecutorSpec",
    "PluginInfo",
    "Registry",
    "SchemaFormat",
    "SchemaFormatSpec",
    "ShardRef",
    "StorageBackend",
    "StorageBackendSpec",
    "cli_commands",
    "get_config",
    "get_plugin_manager",
    "get_registry",
    "hookimpl",
    "index_provider",
    "lens_executor",
    "plugin_problems",
    "plugin_registered",
    "plugin_report",
    "reset_plugins",
    "schema_format",
    "storage_backend",
    "url_scheme",
]


def storage_backend(url: str | None = None, *, record_type: str | None = None, name: str | None = None) -> StorageBackend:
    """The storage backend for a URL's scheme, a storage-union ``$type``, or a name (give one)."""
    registry = get_registry().storage
    _exactly_one(url=url, record_type=record_type, name=name)
    if url is not None:
        return registry.for_url(str(url))
    if record_type is not None:
        return registry.for_record_type(record_type)
    return registry.named(name)  # type: ignore[arg-type]


def schema_format(
    schema_type: str | None = None, *, union_type: str | None = None, name: str | None = None
) -> SchemaFormat:
    """The schema format for a ``schemaType``, a ``schema`` union ``$type``, or a name (give one)."""
    registry = get_registry().schema_formats
    _exactly_one(schema_type=schema_type, union_type=union_type, name=name)
    if schema_type is not None:
        return registry.for_schema_type(schema_type)
    if union_type is not None:
        return registry.for_union_type(union_type)
    return registry.named(name)  # type: ignore[arg-type]


def index_provider(name: str | None = None) -> IndexProvider:
    """The index provider named ``name``, or the configured default (``[index] default``)."""
    registry = get_registry().index_providers
    return registry.named(name) if name else registry.default()


def lens_executor(name: str | None = None, *, language: str | None = None) -> LensExecutor:
    """The lens executor named ``name``, or the one for a code ``language`` (give one)."""
    registry = get_registry().lens_executors
    _exactly_one(name=name, language=language)
    if language is not None:
        return registry.for_language(language)
    return registry.named(name)  # type: ignore[arg-type]


def cli_commands() -> list[Any]:
    """The click commands every loaded plugin adds to the ``atdata`` CLI, in plugin order."""
    import warnings

    commands: list[Any] = []
    manager = get_plugin_manager()
    for impl in manager.hook.atdata_cli_commands.get_hookimpls():
        try:
            result = impl.function()
        except Exception as err:  # one broken plugin must not take the CLI down
            warnings.warn(f"plugin {impl.plugin_name!r}: atdata_cli_commands() raised {err!r}", RuntimeWarning, stacklevel=2)
            continue
        commands.extend(result or ())
    return commands


def plugin_problems() -> list[str]:
    """Problems that leave atdata working but deserve a look, as messages.

    Hook implementations that raised or returned the wrong thing (their
    contributions are ignored) and keys two plugins claim (an error when that
    key is used). ``atdata plugins`` prints these after the plugin list.
    """
    registry = get_registry()
    return [*registry.hook_errors, *registry.duplicates()]


def _exactly_one(**keys: Any) -> None:
    given = [key for key, value in keys.items() if value is not None]
    if len(given) != 1:
        raise TypeError(f"give exactly one of {', '.join(keys)}; got {', '.join(given) or 'none'}")
