"""Typed registries: the core's choice among what plugins contribute.

One registry per extension point. Each indexes descriptors by their keys
(name, URL scheme, ``$type``, language), builds an implementation on first use
and keeps it. A key two plugins claim is an error when it is looked up, naming
both, unless configuration says which one wins::

    [storage.select]
    https = "fast-http"                             # by scheme
    "science.alt.dataset.storageHttp" = "fast-http" # by record $type

    [schema.select]        # by schemaType or union $type
    [lens.select]          # by language

A key nobody claims raises :class:`MissingImplementation` naming the
distribution to install when the core knows one.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from atdata_core.errors import DuplicateImplementation, MissingImplementation, PluginLoadError
from atdata_core.plugins._descriptors import (
    ImplementationSpec,
    IndexProviderSpec,
    LensExecutorSpec,
    SchemaFormatSpec,
    StorageBackendSpec,
)

if TYPE_CHECKING:
    import pluggy

    from atdata_core.config import Config

__all__ = [
    "IndexProviderRegistry",
    "LensExecutorRegistry",
    "Registry",
    "SchemaFormatRegistry",
    "StorageRegistry",
    "url_scheme",
]

S = TypeVar("S", bound=ImplementationSpec)

#: What to install for keys nobody registered: (kind, key type, key) -> distribution.
KNOWN_DISTRIBUTIONS: dict[tuple[str, str, str], str] = {
    # The core's own, in case its built-in plugin is deny-listed.
    ("storage", "scheme", ""): "atdata-core",
    ("storage", "scheme", "file"): "atdata-core",
    ("storage", "scheme", "http"): "atdata-core",
    ("storage", "scheme", "https"): "atdata-core",
    ("storage", "record type", "science.alt.dataset.storageHttp"): "atdata-core",
    ("storage", "scheme", "s3"): "atdata-storage-s3",
    ("storage", "scheme", "at"): "atdata-storage-blob",
    ("storage", "record type", "science.alt.dataset.storageS3"): "atdata-storage-s3",
    ("storage", "record type", "science.alt.dataset.storageBlobs"): "atdata-storage-blob",
    ("schema", "schemaType", "protobuf"): "atdata-schema-protobuf",
    ("schema", "union $type", "science.alt.dataset.schema#protobufFormat"): "atdata-schema-protobuf",
    ("index", "name", "appview"): "atdata-index-appview",
}

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def url_scheme(url: str) -> str:
    """The lower-case scheme of ``url``; ``""`` for a plain path.

    >>> url_scheme("HTTPS://host/a.tar"), url_scheme("/data/a.tar"), url_scheme("shards/a.tar")
    ('https', '', '')
    """
    match = _SCHEME_RE.match(url)
    return match.group(1).lower() if match else ""


class _TypedRegistry(Generic[S]):
    kind = "implementation"  # "storage backend"...
    section = ""  # config section and hint-table kind

    def __init__(
        self,
        specs: Iterable[S],
        config: Config,
        hint_status: Callable[[str], str | None] | None = None,
    ):
        self._config = config
        self._hint_status = hint_status or (lambda _dist: None)
        self._specs: list[S] = list(specs)
        self._instances: dict[int, Any] = {}
        self._lock = threading.RLock()
        self._by_name: dict[str, list[S]] = {}
        for spec in self._specs:
            self._by_name.setdefault(spec.name, []).append(spec)

    def specs(self) -> list[S]:
        """Every descriptor contributed for this extension point, in registration order."""
        return list(self._specs)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def spec_named(self, name: str) -> S:
        return self._one("name", name, self._by_name.get(name, []), selectable=False)

    def named(self, name: str) -> Any:
        """The implementation registered under ``name``."""
        return self.instance(self.spec_named(name))

    def instance(self, spec: S) -> Any:
        """Build (once) and return the implementation a descriptor names."""
        with self._lock:
            key = id(spec)
            if key not in self._instances:
                try:
                    self._instances[key] = spec.create(self._config)
                except PluginLoadError:
                    raise
                except Exception as err:
                    raise PluginLoadError(
                        f"{spec.kind} {spec.name!r} from {spec.provider()} failed to start: "
                        f"{type(err).__name__}: {err}"
                    ) from err
            return self._instances[key]

    def duplicates(self) -> list[str]:
        """Messages for every key more than one descriptor claims (for ``atdata plugins``)."""
        problems = []
        for key_type, table in self._tables().items():
            for key, specs in sorted(table.items()):
                if len(specs) > 1:
                    problems.append(self._duplicate_message(key_type, key, specs))
        return problems

    def _tables(self) -> dict[str, dict[str, list[S]]]:
        return {"name": self._by_name}

    def _one(self, key_type: str, key: str, specs: list[S], *, selectable: bool = True) -> S:
        if not specs:
            raise MissingImplementation(self._missing_message(key_type, key))
        if len(specs) == 1:
            return specs[0]
        # Keys may hold dots ($type values), so index the table rather than the dotted path.
        table = self._config.get(f"{self.section}.select") if selectable else None
        chosen = table.get(key) if isinstance(table, dict) else None
        if isinstance(chosen, str):
            for spec in specs:
                if spec.name == chosen:
                    return spec
        raise DuplicateImplementation(self._duplicate_message(key_type, key, specs))

    def _duplicate_message(self, key_type: str, key: str, specs: list[S]) -> str:
        who = " and ".join(f"{spec.name!r} from {spec.provider()}" for spec in specs)
        fix = "Uninstall or deny-list one of the plugins ([plugins] deny = [...] or ATDATA_PLUGINS_DENY)"
        if key_type != "name":
            fix = f'Choose one in configuration ([{self.section}.select] "{key}" = "<name>"), or u' + fix[1:]
        return f"{self.kind} {key_type} {key!r} is registered twice: {who}. {fix}"

    def _missing_message(self, key_type: str, key: str) -> str:
        if key_type == "scheme":
            message = f"no {self.kind} is registered for " + (f"{key}:// URLs" if key else "plain paths")
        else:
            message = f"no {self.kind} is registered for {key_type} {key!r}"
        distribution = KNOWN_DISTRIBUTIONS.get((self.section, key_type, key))
        if distribution:
            status = self._hint_status(distribution)
            if status:
                return f"{message}: {status}"
            return f"{message}. Install the {distribution} plugin: pip install {distribution}"
        available = ", ".join(sorted(self._keys(key_type))) or "none"
        return f"{message} (registered: {available}). Is the plugin that provides it installed and allowed?"

    def _keys(self, key_type: str) -> list[str]:
        table = self._tables().get(key_type, {})
        if key_type == "scheme":
            return [f"{k}://" if k else "plain paths" for k in table]
        return list(table)


class StorageRegistry(_TypedRegistry[StorageBackendSpec]):
    """Storage backends by URL scheme, storage-union ``$type`` or name."""

    kind = "storage backend"
    section = "storage"

    def __init__(self, specs, config, hint_status=None):
        super().__init__(specs, config, hint_status)
        self._by_scheme: dict[str, list[StorageBackendSpec]] = {}
        self._by_record_type: dict[str, list[StorageBackendSpec]] = {}
        for spec in self._specs:
            for scheme in spec.schemes:
                self._by_scheme.setdefault(scheme, []).append(spec)
            for record_type in spec.record_types:
                self._by_record_type.setdefault(record_type, []).append(spec)

    def _tables(self):
        return {"name": self._by_name, "scheme": self._by_scheme, "record type": self._by_record_type}

    def spec_for_url(self, url: str) -> StorageBackendSpec:
        scheme = url_scheme(str(url))
        return self._one("scheme", scheme, self._by_scheme.get(scheme, []))

    def for_url(self, url: str) -> Any:
        """The backend for ``url``'s scheme (plain paths: the file backend)."""
        return self.instance(self.spec_for_url(url))

    def for_record_type(self, record_type: str) -> Any:
        """The backend that reads storage-union members of ``record_type``."""
        return self.instance(self._one("record type", record_type, self._by_record_type.get(record_type, [])))

    def for_record(self, record: dict[str, Any]) -> Any:
        """The backend for a storage-union member, by its ``$type``."""
        record_type = record.get("$type") if isinstance(record, dict) else None
        if not isinstance(record_type, str):
            from atdata_core.errors import RecordError

            raise RecordError(f"storage record has no $type: {record!r:.200}")
        return self.for_record_type(record_type)

    def schemes(self) -> list[str]:
        return sorted(self._by_scheme)


class SchemaFormatRegistry(_TypedRegistry[SchemaFormatSpec]):
    """Schema formats by ``schemaType``, ``schema`` union ``$type`` or name."""

    kind = "schema format"
    section = "schema"

    def __init__(self, specs, config, hint_status=None):
        super().__init__(specs, config, hint_status)
        self._by_schema_type: dict[str, list[SchemaFormatSpec]] = {}
        self._by_union_type: dict[str, list[SchemaFormatSpec]] = {}
        for spec in self._specs:
            for schema_type in spec.schema_types:
                self._by_schema_type.setdefault(schema_type, []).append(spec)
            for union_type in spec.union_types:
                self._by_union_type.setdefault(union_type, []).append(spec)

    def _tables(self):
        return {"name": self._by_name, "schemaType": self._by_schema_type, "union $type": self._by_union_type}

    def for_schema_type(self, schema_type: str) -> Any:
        return self.instance(self._one("schemaType", schema_type, self._by_schema_type.get(schema_type, [])))

    def for_union_type(self, union_type: str) -> Any:
        return self.instance(self._one("union $type", union_type, self._by_union_type.get(union_type, [])))

    def for_record(self, record: dict[str, Any]) -> Any:
        """The format for a schema record: by its ``schema`` member's ``$type``, else its ``schemaType``."""
        schema = record.get("schema")
        union_type = schema.get("$type") if isinstance(schema, dict) else None
        if isinstance(union_type, str) and union_type in self._by_union_type:
            return self.for_union_type(union_type)
        schema_type = record.get("schemaType")
        if isinstance(schema_type, str):
            return self.for_schema_type(schema_type)
        if isinstance(union_type, str):
            return self.for_union_type(union_type)
        from atdata_core.errors import RecordError

        raise RecordError("schema record has neither a schemaType nor a schema with a $type")


class IndexProviderRegistry(_TypedRegistry[IndexProviderSpec]):
    """Index providers by name; the default comes from ``[index] default``."""

    kind = "index provider"
    section = "index"

    def default(self) -> Any:
        """The provider ``[index] default`` names, else the only one, else the first built-in one (sqlite)."""
        name = self._config.get_str("index.default")
        if name:
            return self.named(name)
        if len(self._by_name) == 1:
            return self.named(next(iter(self._by_name)))
        builtin = [spec for spec in self._specs if spec.plugin == "builtin"]
        if builtin:
            return self.instance(builtin[0])
        raise MissingImplementation(
            "no default index provider: set [index] default (or ATDATA_INDEX_DEFAULT) to one of "
            f"{', '.join(self.names()) or 'the installed providers (none is installed)'}"
        )


class LensExecutorRegistry(_TypedRegistry[LensExecutorSpec]):
    """Lens executors by name or code language."""

    kind = "lens executor"
    section = "lens"

    def __init__(self, specs, config, hint_status=None):
        super().__init__(specs, config, hint_status)
        self._by_language: dict[str, list[LensExecutorSpec]] = {}
        for spec in self._specs:
            for language in spec.languages:
                self._by_language.setdefault(language.lower(), []).append(spec)

    def _tables(self):
        return {"name": self._by_name, "language": self._by_language}

    def for_language(self, language: str) -> Any:
        key = language.lower()
        return self.instance(self._one("language", key, self._by_language.get(key, [])))


class Registry:
    """The four typed registries, built from one plugin manager and configuration."""

    def __init__(
        self,
        storage: StorageRegistry,
        schema_formats: SchemaFormatRegistry,
        index_providers: IndexProviderRegistry,
        lens_executors: LensExecutorRegistry,
        config: Config,
        hook_errors: list[str] | None = None,
    ):
        self.storage = storage
        self.schema_formats = schema_formats
        self.index_providers = index_providers
        self.lens_executors = lens_executors
        self.config = config
        #: Hook calls that raised or returned something other than descriptors.
        self.hook_errors = list(hook_errors or [])

    @classmethod
    def from_manager(
        cls,
        manager: pluggy.PluginManager,
        config: Config,
        hint_status: Callable[[str], str | None] | None = None,
    ) -> Registry:
        errors: list[str] = []
        collect = _Collector(manager, errors)
        return cls(
            StorageRegistry(collect("atdata_storage_backends", StorageBackendSpec), config, hint_status),
            SchemaFormatRegistry(collect("atdata_schema_formats", SchemaFormatSpec), config, hint_status),
            IndexProviderRegistry(collect("atdata_index_providers", IndexProviderSpec), config, hint_status),
            LensExecutorRegistry(collect("atdata_lens_executors", LensExecutorSpec), config, hint_status),
            config,
            errors,
        )

    def duplicates(self) -> list[str]:
        """Every duplicate key across the registries, as messages."""
        return [
            *self.storage.duplicates(),
            *self.schema_formats.duplicates(),
            *self.index_providers.duplicates(),
            *self.lens_executors.duplicates(),
        ]


class _Collector:
    """Calls one hook per plugin so each descriptor is attributed to the plugin that returned it."""

    def __init__(self, manager: pluggy.PluginManager, errors: list[str]):
        self._manager = manager
        self._errors = errors

    def __call__(self, hook_name: str, spec_type: type[S]) -> list[S]:
        import warnings

        import attrs

        from atdata_core.plugins._manager import _state

        entry_points = _state.entry_points if _state is not None else {}
        specs: list[S] = []
        caller = getattr(self._manager.hook, hook_name)
        # get_hookimpls() is in registration order (pluggy calls them in reverse).
        for impl in caller.get_hookimpls():
            plugin_name = impl.plugin_name
            try:
                result = impl.function()
            except Exception as err:  # a broken plugin must not break the others
                self._note(warnings, f"plugin {plugin_name!r}: {hook_name}() raised {type(err).__name__}: {err}")
                continue
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                self._note(warnings, f"plugin {plugin_name!r}: {hook_name}() must return a list, got {type(result).__name__}")
                continue
            ep = entry_points.get(plugin_name)
            for item in result:
                if not isinstance(item, spec_type):
                    self._note(
                        warnings,
                        f"plugin {plugin_name!r}: {hook_name}() returned {type(item).__name__}, "
                        f"expected {spec_type.__name__}; ignored",
                    )
                    continue
                specs.append(
                    attrs.evolve(
                        item,
                        plugin=plugin_name,
                        distribution=item.distribution or (ep.distribution if ep else None),
                    )
                )
        return specs

    def _note(self, warnings: Any, message: str) -> None:
        self._errors.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)
