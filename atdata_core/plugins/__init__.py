"""atdata's plugin framework and the toolkit plugins build on.

A plugin is a module named by an entry point in the ``atdata`` group. It
implements hooks from :mod:`atdata_core.plugins.hookspecs` with
:data:`hookimpl`; each extension-point hook returns descriptors
(:class:`StorageBackendSpec`, ...) whose factories build implementations of
the contracts (:class:`StorageBackend`, ...). The core picks among them by
URL scheme, record ``$type``, name or configuration. See ``docs/plugins.md``.

This module is the whole surface a plugin needs; a plugin imports nothing
else from the core but ``atdata_core`` itself, ``atdata_core.errors`` and the
conformance suites in ``atdata_core.plugins.conformance``. The toolkit:

============================  ===========================================================
framework                     :data:`hookimpl`, the descriptors, :func:`plugin_registered`,
                              :func:`get_config`, :func:`get_registry`, :func:`build_registry`
contracts                     :class:`StorageBackend`, :class:`StorageRecordMapper`,
                              :class:`SchemaFormat`, :class:`IndexProvider`, :class:`LensExecutor`
storage                       :class:`StorageBase` (write five primitives, inherit the rest),
                              :class:`ShardRef`, :func:`url_scheme`
records                       the NSID constants (:data:`ENTRY_NSID`...), :class:`AtUri`,
                              :func:`register_lexicon` (the documents of a plugin's own records),
                              :func:`validate_record` (strict, or tolerant with
                              :class:`LexiconWarning` s, DESIGN D6)
index rules                   :func:`select_schema`, :func:`select_label`, :func:`search_records`,
                              :func:`newest_first`, :func:`record_tags`, :func:`text_matches`
sample types                  :func:`make_sample_type` and the field types (:class:`Field`,
                              :class:`Scalar`, :class:`Array`...), :func:`sample_fields`
schema formats                :class:`SchemaChange` (what ``SchemaFormat.format_changes`` returns)
ATProto                       :class:`Client`, :class:`IdentityResolver`, :func:`resolve_identity`,
                              :func:`clear_identity_cache` (forget every cached DID document
                              and handle), :class:`RetryPolicy`
network policy                :class:`NetworkPolicy` (``[network]``: what a URL or host a record
                              named may reach), :class:`NetworkSettings`, :class:`RecordUrl`
============================  ===========================================================

Everything listed in ``__all__`` is stable: it changes only by addition.
Heavy parts (numpy, the ATProto client) load on first use.

>>> from atdata_core.plugins import storage_backend
>>> backend = storage_backend("file:///tmp/data-000000.tar")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pluggy

from atdata_core._aturi import AtUri
from atdata_core._nsids import (
    ENTRY_NSID,
    JSON_SCHEMA_FORMAT_NSID,
    LABEL_NSID,
    LENS_NSID,
    LENS_VERIFICATION_NSID,
    NAMESPACE,
    RECORD_NSIDS,
    SCHEMA_NSID,
    STORAGE_BLOBS_NSID,
    STORAGE_HTTP_NSID,
    STORAGE_S3_NSID,
)
from atdata_core._shardref import ShardRef
from atdata_core.plugins._contracts import (
    IndexedRecord,
    IndexProvider,
    LensExecutor,
    SchemaFormat,
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
    build_registry,
    get_config,
    get_plugin_manager,
    get_registry,
    plugin_registered,
    plugin_report,
    reset_plugins,
)
from atdata_core.plugins._registry import KNOWN_DISTRIBUTIONS, Registry, url_scheme
from atdata_core.plugins._settings import settings_from_config

if TYPE_CHECKING:  # pragma: no cover
    from atdata_core.atproto import (
        Client,
        Identity,
        IdentityResolver,
        RetryPolicy,
        clear_identity_cache,
        resolve_identity,
    )
    from atdata_core._netpolicy import NetworkPolicy, RecordUrl
    from atdata_core.config import AtprotoSettings, Config, HttpSettings, NetworkSettings
    from atdata_core.executors._trust import TrustDecision, TrustPolicy, lens_code_hash
    from atdata_core.lexicon import LexiconWarning, register_lexicon, validate_record
    from atdata_core.index._select import (
        newest_first,
        record_tags,
        search_records,
        select_label,
        select_schema,
        text_matches,
    )
    from atdata_core.plugins._contracts import StorageRecordMapper
    from atdata_core.sample import (
        AnyValue,
        Array,
        DefaultFactory,
        DictOf,
        Field,
        FieldType,
        ListOf,
        Nested,
        Optional,
        Scalar,
        annotation_of,
        make_sample_type,
        parse_annotation,
        sample_fields,
        set_rebuild_recipe,
    )
    from atdata_core.schema import SchemaChange
    from atdata_core.storage._base import StorageBase

#: Marks a function as a hook implementation: ``@hookimpl def atdata_storage_backends(): ...``
hookimpl = pluggy.HookimplMarker("atdata")

# Toolkit names whose modules cost an import (numpy, requests...): loaded on first access.
_LAZY = {
    # sample field types and the class factory
    "AnyValue": "atdata_core.sample",
    "Array": "atdata_core.sample",
    "DictOf": "atdata_core.sample",
    "Field": "atdata_core.sample",
    "FieldType": "atdata_core.sample",
    "ListOf": "atdata_core.sample",
    "Nested": "atdata_core.sample",
    "Optional": "atdata_core.sample",
    "Scalar": "atdata_core.sample",
    "DefaultFactory": "atdata_core.sample",
    "annotation_of": "atdata_core.sample",
    "set_rebuild_recipe": "atdata_core.sample",
    "make_sample_type": "atdata_core.sample",
    "parse_annotation": "atdata_core.sample",
    "sample_fields": "atdata_core.sample",
    # what a schema format reports from SchemaFormat.format_changes
    "SchemaChange": "atdata_core.schema",
    # lexicon documents of a plugin's own records and union members, so they validate too
    "register_lexicon": "atdata_core.lexicon",
    # the record validator: strict before writing, tolerant (with warnings) when reading (DESIGN D6)
    "validate_record": "atdata_core.lexicon",
    "LexiconWarning": "atdata_core.lexicon",
    # index selection rules
    "newest_first": "atdata_core.index._select",
    "record_tags": "atdata_core.index._select",
    "search_records": "atdata_core.index._select",
    "select_label": "atdata_core.index._select",
    "select_schema": "atdata_core.index._select",
    "text_matches": "atdata_core.index._select",
    # storage
    "StorageBase": "atdata_core.storage._base",
    "StorageRecordMapper": "atdata_core.plugins._contracts",
    # configuration and the core's typed settings
    "AtprotoSettings": "atdata_core.config",
    "Config": "atdata_core.config",
    "HttpSettings": "atdata_core.config",
    "NetworkSettings": "atdata_core.config",
    # the network policy for URLs and hosts named by other people's records (DESIGN D8)
    "NetworkPolicy": "atdata_core._netpolicy",
    "RecordUrl": "atdata_core._netpolicy",
    # the trust decision for lens code, which an executor of any language can decide with (DESIGN D3)
    "TrustDecision": "atdata_core.executors._trust",
    "TrustPolicy": "atdata_core.executors._trust",
    "lens_code_hash": "atdata_core.executors._trust",
    # text others wrote, escaped for a terminal
    "safe_text": "atdata_core.cli._terminal",
    # the ATProto client
    "Client": "atdata_core.atproto",
    "Identity": "atdata_core.atproto",
    "IdentityResolver": "atdata_core.atproto",
    "RetryPolicy": "atdata_core.atproto",
    "resolve_identity": "atdata_core.atproto",
    "clear_identity_cache": "atdata_core.atproto",
}

__all__ = sorted(
    [
        "AtUri",
        "ENTRY_NSID",
        "ENTRY_POINT_GROUP",
        "ImplementationSpec",
        "IndexProvider",
        "IndexProviderSpec",
        "IndexedRecord",
        "JSON_SCHEMA_FORMAT_NSID",
        "KNOWN_DISTRIBUTIONS",
        "LABEL_NSID",
        "LENS_NSID",
        "LENS_VERIFICATION_NSID",
        "LensExecutor",
        "LensExecutorSpec",
        "NAMESPACE",
        "PluginInfo",
        "RECORD_NSIDS",
        "Registry",
        "SCHEMA_NSID",
        "STORAGE_BLOBS_NSID",
        "STORAGE_HTTP_NSID",
        "STORAGE_S3_NSID",
        "SchemaFormat",
        "SchemaFormatSpec",
        "ShardRef",
        "StorageBackend",
        "StorageBackendSpec",
        "build_registry",
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
        "settings_from_config",
        "storage_backend",
        "storage_record_mapper",
        "url_scheme",
        *_LAZY,
    ]
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atdata_core.plugins' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def storage_backend(url: str | None = None, *, record_type: str | None = None, name: str | None = None) -> StorageBackend:
    """The storage backend for a URL's scheme, a storage-union ``$type``, or a name (give one)."""
    registry = get_registry().storage
    _exactly_one(url=url, record_type=record_type, name=name)
    if url is not None:
        return registry.for_url(str(url))
    if record_type is not None:
        return registry.for_record_type(record_type)
    return registry.named(name)  # type: ignore[arg-type]


def storage_record_mapper(record_type: str) -> StorageRecordMapper:
    """What reads and writes the entry's ``storage`` union member ``record_type`` (a
    :class:`StorageRecordMapper`): the backend registered for that ``$type``.

    Raises :class:`~atdata_core.errors.MissingImplementation` naming the
    distribution to install when nobody registered it, and
    :class:`~atdata_core.errors.PluginError` when the backend registered for
    it cannot map records.
    """
    return get_registry().storage.for_record_type(record_type)  # type: ignore[return-value]


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
    """The index provider named ``name``, or the configured default (``[index] default``, ``pds`` unless set)."""
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

    from atdata_core.plugins._manager import call_each

    commands: list[Any] = []
    for plugin_name, result in call_each(get_plugin_manager(), "atdata_cli_commands"):
        if isinstance(result, BaseException):  # one broken plugin must not take the CLI down
            warnings.warn(f"plugin {plugin_name!r}: atdata_cli_commands() raised {result!r}", RuntimeWarning, stacklevel=2)
            continue
        commands.extend(result or ())
    return commands


def plugin_problems() -> list[str]:
    """Problems that leave atdata working but deserve a look, as messages.

    Hook implementations that raised or returned the wrong thing (their
    contributions are ignored), keys two plugins claim (an error when that
    key is used) and settings that do not validate (an error when that
    implementation is used). ``atdata plugins`` prints these after the
    plugin list.
    """
    registry = get_registry()
    return [*registry.hook_errors, *registry.duplicates(), *registry.settings_problems()]


def _exactly_one(**keys: Any) -> None:
    given = [key for key, value in keys.items() if value is not None]
    if len(given) != 1:
        raise TypeError(f"give exactly one of {', '.join(keys)}; got {', '.join(given) or 'none'}")
