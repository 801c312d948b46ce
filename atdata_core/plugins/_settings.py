"""Typed settings: a configuration section turned into an attrs instance, checked once.

An implementation receives its settings, not a configuration to search. A
descriptor names an attrs class (``settings=``) and the section it is read
from (``section=``, default: the implementation's name); the core reads the
section from every layer (files, ``ATDATA_<SECTION>_<KEY>`` variables,
arguments), converts each value to the field's annotated type, runs the
class's validators, and calls ``factory(settings)``::

    @attrs.frozen
    class ZipSettings:
        compression: str = attrs.field(default="stored", validator=attrs.validators.in_(["stored", "deflated"]))
        level: int = 6

    StorageBackendSpec(name="zip", schemes=("zip",), factory="atdata_zip.store:ZipStorage",
                       settings=ZipSettings, section="zipstore")

``ATDATA_ZIPSTORE_LEVEL=9`` then arrives as ``ZipSettings(level=9)``. A value
that does not convert or validate raises
:class:`~atdata_core.errors.ConfigError` naming the key and where it was set,
when the implementation is first used (and in ``atdata plugins``): a plugin's
bad setting never stops commands that do not use that plugin.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from atdata_core.errors import ConfigError

if TYPE_CHECKING:
    from atdata_core.config import Config

__all__ = ["settings_from_config"]

T = TypeVar("T")


def settings_from_config(settings_class: type[T], config: Config, section: str) -> T:
    """Build ``settings_class`` from the ``[section]`` of ``config``, converting and validating each value.

    Keys the class does not define are refused, naming the keys it does.
    """
    if not attrs.has(settings_class):
        raise TypeError(f"settings class {settings_class.__name__} must be an attrs class")
    values = config.section(section)
    fields = {field.name: field for field in attrs.fields(settings_class)}
    hints = typing.get_type_hints(settings_class)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields)) or "none"
        raise ConfigError(
            f"{config.source(f'{section}.{unknown[0]}')}: unknown setting {section}.{unknown[0]} "
            f"(settings of [{section}]: {known})"
        )
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        key = f"{section}.{name}"
        kwargs[name] = _convert(raw, hints.get(name, Any), key, config)
    try:
        return settings_class(**kwargs)
    except (TypeError, ValueError) as err:
        where = next((f"{section}.{name}" for name in kwargs if name in str(err)), section)
        raise ConfigError(f"{config.source(where)}: invalid [{section}] setting: {err}") from None


def _convert(raw: Any, hint: Any, key: str, config: Config) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "null")):
            if type(None) in args:
                return None
        if len(options) == 1:
            return _convert(raw, options[0], key, config)
        return raw
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise _bad(key, raw, "true or false", config)
    if hint is int:
        if isinstance(raw, bool):
            raise _bad(key, raw, "an integer", config)
        try:
            return raw if isinstance(raw, int) else int(str(raw).strip())
        except ValueError:
            raise _bad(key, raw, "an integer", config) from None
    if hint is float:
        if isinstance(raw, bool):
            raise _bad(key, raw, "a number", config)
        try:
            number = float(raw) if isinstance(raw, (int, float)) else float(str(raw).strip())
        except ValueError:
            raise _bad(key, raw, "a number", config) from None
        if not math.isfinite(number):
            raise _bad(key, raw, "a finite number", config)
        return number
    if hint is str:
        if isinstance(raw, str):
            return raw
        raise _bad(key, raw, "a string", config)
    if origin in (list, tuple) or hint in (list, tuple):
        items = [item.strip() for item in raw.split(",") if item.strip()] if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)):
            raise _bad(key, raw, "a list", config)
        item_hint = args[0] if args else Any
        converted = [_convert(item, item_hint, key, config) for item in items]
        return tuple(converted) if (origin is tuple or hint is tuple) else converted
    if origin is dict or hint is dict or origin is Mapping:
        if not isinstance(raw, Mapping):
            raise _bad(key, raw, "a table", config)
        return dict(raw)
    return raw


def _bad(key: str, raw: Any, expected: str, config: Config) -> ConfigError:
    return ConfigError(f"{config.source(key)}: {key} should be {expected}, not {raw!r}")
