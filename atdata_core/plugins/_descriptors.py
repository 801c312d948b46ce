"""Descriptor classes: what a plugin's hook returns to name one implementation.

A descriptor is cheap to build: it holds keys (schemes, ``$type`` values,
names) and a *factory*, a ``"module:attr"`` string or a callable, that is only
imported and called when the implementation is first used. That keeps
``atdata plugins`` and registry look-ups free of the implementations' heavy
imports (boto3, protobuf, ...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from atdata_core.errors import PluginLoadError

__all__ = [
    "ImplementationSpec",
    "IndexProviderSpec",
    "LensExecutorSpec",
    "SchemaFormatSpec",
    "StorageBackendSpec",
]


def _as_tuple(value: str | Iterable[str]) -> tuple[str, ...]:
    # A lone string is one key, not a sequence of characters.
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _check_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a non-empty string, got {value!r}")


def _check_factory(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, str):
        module, sep, attr = value.partition(":")
        if not sep or not module or not attr:
            raise ValueError(
                f"{type(instance).__name__}.factory must look like 'package.module:attribute', got {value!r}"
            )
    elif not callable(value):
        raise TypeError(f"{type(instance).__name__}.factory must be a 'module:attr' string or a callable")


def _check_keys(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    for key in value:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{type(instance).__name__}.{attribute.name} holds an empty or non-string key: {key!r}")


def _lower_schemes(value: str | Iterable[str]) -> tuple[str, ...]:
    schemes = []
    for scheme in _as_tuple(value):
        scheme = scheme.lower()
        if scheme.endswith("://"):
            scheme = scheme[:-3]
        schemes.append(scheme)
    return tuple(schemes)


@attrs.frozen(kw_only=True)
class ImplementationSpec:
    """Fields every descriptor has.

    ``name`` is unique within its kind (two storage backends may not share a
    name). ``factory`` is called as ``factory(config)`` with the merged
    :class:`atdata_core.config.Config` and returns the implementation.
    ``plugin`` and ``distribution`` are filled in by the core from the entry
    point that contributed the descriptor; a plugin may leave them unset.
    ``install_hint`` is shown when the factory cannot be imported (for
    example ``"pip install 'atdata-storage-s3[fast]'"``).

    ``settings`` is an attrs class the implementation is configured with:
    the core builds it from the configuration section ``section`` (default:
    ``name``), converting and validating every value, and calls
    ``factory(settings)``. Without ``settings`` the factory is called with the
    merged :class:`~atdata_core.config.Config`.
    """

    name: str = attrs.field(validator=_check_name)
    factory: str | Callable[..., Any] = attrs.field(validator=_check_factory, repr=False)
    description: str = ""
    plugin: str | None = None
    distribution: str | None = None
    install_hint: str | None = None
    settings: type | None = attrs.field(default=None, repr=False)
    section: str | None = None

    def load_factory(self) -> Callable[..., Any]:
        """Import the factory (the first heavy import of the implementation)."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr_path = self.factory.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for part in attr_path.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as err:
            hint = f" {self.install_hint}" if self.install_hint else ""
            raise PluginLoadError(
                f"{self.kind} {self.name!r} from {self.provider()} cannot load its factory "
                f"{self.factory!r}: {type(err).__name__}: {err}.{hint}"
            ) from err
        if not callable(target):
            raise PluginLoadError(f"{self.kind} {self.name!r}: factory {self.factory!r} is not callable")
        return target

    def create(self, config: Any) -> Any:
        """Load the factory and call it with this implementation's settings (or ``config``)."""
        if self.settings is not None:
            settings = self.build_settings(config)
            return self.load_factory()(settings)
        return self.load_factory()(config)

    def build_settings(self, config: Any) -> Any:
        """The ``settings`` instance for ``config`` (None without a settings class); ConfigError when invalid."""
        if self.settings is None:
            return None
        from atdata_core.plugins._settings import settings_from_config

        return settings_from_config(self.settings, config, self.section or self.name)

    def summary(self) -> str:
        """One line naming this implementation and the keys it is selected by (``atdata plugins``)."""
        keys = "; ".join(f"{label} {', '.join(values)}" for label, values in self._keys() if values)
        return f"{self.kind} {self.name!r}" + (f": {keys}" if keys else "")

    def _keys(self) -> list[tuple[str, tuple[str, ...]]]:
        return []

    def provider(self) -> str:
        """Who contributed this, for messages: ``plugin 'x' (distribution y)``."""
        who = f"plugin {self.plugin!r}" if self.plugin else "an unnamed plugin"
        if self.distribution:
            who += f" (distribution {self.distribution})"
        return who

    kind = "implementation"


@attrs.frozen(kw_only=True)
class StorageBackendSpec(ImplementationSpec):
    """A storage backend, selected by URL scheme or storage-union ``$type``.

    >>> StorageBackendSpec(name="mem", schemes=("mem",), factory="my_plugin.memory:MemoryStorage")
    StorageBackendSpec(name='mem', description='', plugin=None, distribution=None, install_hint=None, schemes=('mem',), record_types=())

    ``schemes`` are URL schemes without ``://`` (``""`` means plain paths).
    ``record_types`` are the ``$type`` values of the entry's storage union this
    backend reads and writes (``"science.alt.dataset.storageS3"``).
    """

    schemes: tuple[str, ...] = attrs.field(default=(), converter=_lower_schemes, validator=attrs.validators.instance_of(tuple))
    record_types: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_check_keys)

    kind = "storage backend"

    def _keys(self) -> list[tuple[str, tuple[str, ...]]]:
        schemes = tuple(f"{scheme}://" if scheme else "plain paths" for scheme in self.schemes)
        return [("schemes", schemes), ("record types", self.record_types)]


@attrs.frozen(kw_only=True)
class SchemaFormatSpec(ImplementationSpec):
    """A schema format, selected by a schema record's ``schemaType`` or its ``schema`` union ``$type``."""

    schema_types: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_check_keys)
    union_types: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_check_keys)

    kind = "schema format"

    def _keys(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("schemaType", self.schema_types), ("union $type", self.union_types)]


@attrs.frozen(kw_only=True)
class IndexProviderSpec(ImplementationSpec):
    """An index / discovery provider, selected by name (config ``[index] default``)."""

    kind = "index provider"


@attrs.frozen(kw_only=True)
class LensExecutorSpec(ImplementationSpec):
    """A lens executor, selected by name or by a code reference's ``language``."""

    languages: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, validator=_check_keys)

    kind = "lens executor"

    def _keys(self) -> list[tuple[str, tuple[str, ...]]]:
        return [("languages", self.languages)]
