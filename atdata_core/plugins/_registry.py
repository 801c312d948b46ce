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
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from atdata_core._nsids import STORAGE_BLOBS_NSID, STORAGE_HTTP_NSID, STORAGE_S3_NSID
from atdata_core.errors import ConfigError, DuplicateImplementation, MissingImplementation, PluginLoadError, RecordError
from atdata_core.plugins._contracts import IndexProvider, LensExecutor, SchemaFormat, StorageBackend
from atdata_core.plugins._descriptors import (
    ImplementationSpec,
    IndexProviderSpec,
    LensExecutorSpec,
    SchemaFormatSpec,
    StorageBackendSpec,
)

if TYPE_CHECKING:
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
I = TypeVar("I")  # noqa: E741 - the implementation type a registry returns

#: What to install for keys nobody registered: (kind, key type, key) -> distribution.
KNOWN_DISTRIBUTIONS: dict[tuple[str, str, str], str] = {
    # The core's own, in case its built-in plugin is deny-listed.
    ("storage", "scheme", ""): "atdata-core",
    ("storage", "scheme", "file"): "atdata-core",
    ("storage", "scheme", "http"): "atdata-core",
    ("storage", "scheme", "https"): "atdata-core",
    ("storage", "record type", STORAGE_HTTP_NSID): "atdata-core",
    ("storage", "scheme", "s3"): "atdata-storage-s3",
    ("storage", "scheme", "atblob"): "atdata-storage-blob",
    ("storage", "record type", STORAGE_S3_NSID): "atdata-storage-s3",
    ("storage", "record type", STORAGE_BLOBS_NSID): "atdata-storage-blob",
    ("schema", "schemaType", "protobuf"): "atdata-schema-protobuf",
    ("schema", "union $type", "science.alt.dataset.protobufFormat"): "atdata-schema-protobuf",
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


class _TypedRegistry(Generic[S, I]):
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
        self._instances: dict[int, I] = {}
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

    def named(self, name: str) -> I:
        """The implementation registered under ``name``."""
        return self.instance(self.spec_named(name))

    def instance(self, spec: S) -> I:
        """Build (once) and return the implementation a descriptor names."""
        with self._lock:
            key = id(spec)
            if key not in self._instances:
                try:
                    self._instances[key] = spec.create(self._config)
                except (PluginLoadError, ConfigError):
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


class StorageRegistry(_TypedRegistry[StorageBackendSpec, StorageBackend]):
    """Storage backends by URL scheme, storage-union ``$type`` or name."""

    kind = "storage backend"
    section = "storage"

    def __init__(
        self,
        specs: Iterable[StorageBackendSpec],
        config: Config,
        hint_status: Callable[[str], str | None] | None = None,
    ):
        super().__init__(specs, config, hint_status)
        self._by_scheme: dict[str, list[StorageBackendSpec]] = {}
        self._by_record_type: dict[str, list[StorageBackendSpec]] = {}
        for spec in self._specs:
            for scheme in spec.schemes:
                self._by_scheme.setdefault(scheme, []).append(spec)
            for record_type in spec.record_types:
                self._by_record_type.setdefault(record_type, []).append(spec)

    def _tables(self) -> dict[str, dict[str, list[StorageBackendSpec]]]:
        return {"name": self._by_name, "scheme": self._by_scheme, "record type": self._by_record_type}

    def spec_for_url(self, url: str) -> StorageBackendSpec:
        scheme = url_scheme(str(url))
        return self._one("scheme", scheme, self._by_scheme.get(scheme, []))

    def for_url(self, url: str) -> StorageBackend:
        """The backend for ``url``'s scheme (plain paths: the file backend)."""
        return self.instance(self.spec_for_url(url))

    def spec_for_record_type(self, record_type: str) -> StorageBackendSpec:
        return self._one("record type", record_type, self._by_record_type.get(record_type, []))

    def for_record_type(self, record_type: str) -> StorageBackend:
        """The backend that maps storage-union members of ``record_type``; it is a
        :class:`~atdata_core.plugins.StorageRecordMapper` too.

        Raises :class:`~atdata_core.errors.PluginError` when the backend
        registered for ``record_type`` does not implement the mapping.
        """
        from atdata_core.errors import PluginError
        from atdata_core.plugins._contracts import StorageRecordMapper

        spec = self.spec_for_record_type(record_type)
        backend = self.instance(spec)
        if not isinstance(backend, StorageRecordMapper):
            raise PluginError(
                f"storage backend {spec.name!r} from {spec.provider()} is registered for {record_type} records "
                "but cannot map them: it implements no to_storage_record / from_storage_record (the "
                "StorageRecordMapper contract). Report it to the plugin's authors, or choose another backend "
                f'for it in configuration ([storage.select] "{record_type}" = "<name>")'
            )
        return backend

    def for_record(self, record: Mapping[str, Any]) -> StorageBackend:
        """The backend for a storage-union member, by its ``$type``."""
        record_type = record.get("$type") if isinstance(record, Mapping) else None
        if not isinstance(record_type, str):
            raise RecordError(f"storage record has no $type: {record!r:.200}")
        return self.for_record_type(record_type)

    def schemes(self) -> list[str]:
        return sorted(self._by_scheme)


class SchemaFormatRegistry(_TypedRegistry[SchemaFormatSpec, SchemaFormat]):
    """Schema formats by ``schemaType``, ``schema`` union ``$type`` or name."""

    kind = "schema format"
    section = "schema"

    def __init__(
        self,
        specs: Iterable[SchemaFormatSpec],
        config: Config,
        hint_status: Callable[[str], str | None] | None = None,
    ):
        super().__init__(specs, config, hint_status)
        self._by_schema_type: dict[str, list[SchemaFormatSpec]] = {}
        self._by_union_type: dict[str, list[SchemaFormatSpec]] = {}
        for spec in self._specs:
            for schema_type in spec.schema_types:
                self._by_schema_type.setdefault(schema_type, []).append(spec)
            for union_type in spec.union_types:
                self._by_union_type.setdefault(union_type, []).append(spec)

    def _tables(self) -> dict[str, dict[str, list[SchemaFormatSpec]]]:
        return {"name": self._by_name, "schemaType": self._by_schema_type, "union $type": self._by_union_type}

    def for_schema_type(self, schema_type: str) -> SchemaFormat:
        return self.instance(self._one("schemaType", schema_type, self._by_schema_type.get(schema_type, [])))

    def for_union_type(self, union_type: str) -> SchemaFormat:
        return self.instance(self._one("union $type", union_type, self._by_union_type.get(union_type, [])))

    def for_record(self, record: Mapping[str, Any]) -> SchemaFormat:
        """The format for a schema record: by its ``schema`` member's ``$type``, else its ``schemaType``."""
        schema = record.get("schema")
        union_type = schema.get("$type") if isinstance(schema, Mapping) else None
        if isinstance(union_type, str) and union_type in self._by_union_type:
            return self.for_union_type(union_type)
        schema_type = record.get("schemaType")
        if isinstance(schema_type, str):
            return self.for_schema_type(schema_type)
        if isinstance(union_type, str):
            return self.for_union_type(union_type)
        raise RecordError("schema record has neither a schemaType nor a schema with a $type")


class IndexProviderRegistry(_TypedRegistry[IndexProviderSpec, IndexProvider]):
    """Index providers by name; the default comes from ``[index] default``."""

    kind = "index provider"
    section = "index"

    def default(self) -> IndexProvider:
        """The provider ``[index] default`` names; unset, ``pds`` when registered, else the only one."""
        from atdata_core.config import DEFAULTS

        name = self._config.get_str("index.default")
        if name:
            return self.named(name)
        fallback = DEFAULTS["index"]["default"]
        if fallback in self._by_name:
            return self.named(fallback)
        if len(self._by_name) == 1:
            return self.named(next(iter(self._by_name)))
        raise MissingImplementation(
            "no default index provider: set [index] default (or ATDATA_INDEX_DEFAULT) to one of "
            f"{', '.join(self.names()) or 'the installed providers (none is installed)'}"
        )


class LensExecutorRegistry(_TypedRegistry[LensExecutorSpec, LensExecutor]):
    """Lens executors by name or code language."""

    kind = "lens executor"
    section = "lens"

    def __init__(
        self,
        specs: Iterable[LensExecutorSpec],
        config: Config,
        hint_status: Callable[[str], str | None] | None = None,
    ):
        super().__init__(specs, config, hint_status)
        self._by_language: dict[str, list[LensExecutorSpec]] = {}
        for spec in self._specs:
            for language in spec.languages:
                self._by_language.setdefault(language.lower(), []).append(spec)

    def _tables(self) -> dict[str, dict[str, list[LensExecutorSpec]]]:
        return {"name": self._by_name, "language": self._by_language}

    def for_language(self, language: str) -> LensExecutor:
        key = language.lower()
        return self.instance(self._one("language", key, self._by_language.get(key, [])))


class Registry:
    """The four typed registries, built from the descriptors plugins contributed and configuration.

    :func:`atdata_core.plugins.get_registry` returns the process-wide one;
    :func:`atdata_core.plugins.build_registry` builds one from a plugin manager.
    """

    def __init__(
        self,
        *,
        storage: Iterable[StorageBackendSpec] = (),
        schema_formats: Iterable[SchemaFormatSpec] = (),
        index_providers: Iterable[IndexProviderSpec] = (),
        lens_executors: Iterable[LensExecutorSpec] = (),
        config: Config,
        hint_status: Callable[[str], str | None] | None = None,
        hook_errors: Iterable[str] = (),
    ):
        self.storage = StorageRegistry(storage, config, hint_status)
        self.schema_formats = SchemaFormatRegistry(schema_formats, config, hint_status)
        self.index_providers = IndexProviderRegistry(index_providers, config, hint_status)
        self.lens_executors = LensExecutorRegistry(lens_executors, config, hint_status)
        self.config = config
        #: Hook calls that raised or returned something other than descriptors.
        self.hook_errors = list(hook_errors)

    def all_specs(self) -> list[ImplementationSpec]:
        """Every descriptor of every extension point, in registration order within each."""
        return [
            *self.storage.specs(),
            *self.schema_formats.specs(),
            *self.index_providers.specs(),
            *self.lens_executors.specs(),
        ]

    def settings_problems(self) -> list[str]:
        """A message for every implementation whose configured settings do not validate."""
        problems = []
        for spec in self.all_specs():
            try:
                spec.build_settings(self.config)
            except ConfigError as err:
                problems.append(f"{spec.kind} {spec.name!r} from {spec.provider()}: {err}")
        return problems

    def duplicates(self) -> list[str]:
        """Every duplicate key across the registries, as messages."""
        return [
            *self.storage.duplicates(),
            *self.schema_formats.duplicates(),
            *self.index_providers.duplicates(),
            *self.lens_executors.duplicates(),
        ]
