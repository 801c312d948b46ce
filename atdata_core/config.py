"""Layered configuration: TOML files plus ``ATDATA_*`` environment variables.

Later layers win, key by key::

    built-in defaults
    < user file      $ATDATA_CONFIG, else $XDG_CONFIG_HOME/atdata/config.toml
                     (~/.config/atdata/config.toml when XDG_CONFIG_HOME is unset)
    < project file   atdata.toml in the current directory or its nearest parent
    < environment    ATDATA_<SECTION>_<KEY>, e.g. ATDATA_PLC_URL -> [plc] url
    < arguments      load_config(overrides={"plc.url": ...})

An environment name is split at the first underscore after ``ATDATA_``, so
``ATDATA_HTTP_MAX_RETRIES`` sets ``[http] max_retries``. Environment values are
strings; the typed getters (:meth:`Config.get_int`, :meth:`Config.get_list`...)
convert them and name the variable when a value does not convert.

Example ``atdata.toml``::

    [index]
    default = "sqlite"

    [plugins]
    deny = ["some-plugin"]

    [http]
    retries = 8
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atdata_core.errors import ConfigError

__all__ = ["Config", "DEFAULTS", "config_dir", "load_config", "project_config_path", "user_config_path"]

#: Built-in defaults, the lowest layer.
DEFAULTS: dict[str, dict[str, Any]] = {
    "plc": {"url": "https://plc.directory"},
    "plugins": {"allow": [], "deny": []},
    "http": {"retries": 5, "backoff": 0.5, "timeout": 30.0},
}

PROJECT_FILE_NAME = "atdata.toml"
_ENV_PREFIX = "ATDATA_"
# Variables in the ATDATA_ namespace that are not configuration keys.
_ENV_RESERVED = {"ATDATA_CONFIG"}
_MISSING = object()


class Config:
    """Merged configuration, read with dotted keys.

    >>> config = Config({"plc": {"url": "http://localhost:2582"}})
    >>> config.get("plc.url")
    'http://localhost:2582'
    >>> config.get("index.default", "sqlite")
    'sqlite'
    """

    def __init__(self, data: Mapping[str, Any] | None = None, sources: Mapping[str, str] | None = None):
        self._data: dict[str, Any] = _deep_copy(data or {})
        # dotted key -> where its value came from, for error messages
        self._sources: dict[str, str] = dict(sources or {})

    def get(self, key: str, default: Any = None) -> Any:
        """The value at dotted ``key`` (``"section.key"``), or ``default``."""
        node: Any = self._data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def section(self, name: str) -> dict[str, Any]:
        """A copy of one section (``{}`` when absent)."""
        value = self.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{self.source(name)}: {name} should be a table, not {value!r}")
        return _deep_copy(value)

    def source(self, key: str) -> str:
        """Where the value of ``key`` (or of its nearest parent) was set."""
        parts = key.split(".")
        while parts:
            found = self._sources.get(".".join(parts))
            if found:
                return found
            parts.pop()
        return "built-in defaults"

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(f"{self.source(key)}: {key} should be a string, not {value!r}")
        return value

    def get_int(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            raise ConfigError(f"{self.source(key)}: {key} should be an integer, not {value!r}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{self.source(key)}: {key} should be an integer, not {value!r}") from None

    def get_float(self, key: str, default: float | None = None) -> float | None:
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise ConfigError(f"{self.source(key)}: {key} should be a number, not {value!r}") from None

    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{self.source(key)}: {key} should be true or false, not {value!r}")

    def get_list(self, key: str, default: list[str] | None = None) -> list[str]:
        """A list of strings; an environment string is split at commas."""
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return list(default or [])
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ConfigError(f"{self.source(key)}: {key} should be a list of strings, not {value!r}")

    def as_dict(self) -> dict[str, Any]:
        """A deep copy of the merged data."""
        return _deep_copy(self._data)

    def merged(self, overrides: Mapping[str, Any], source: str = "arguments") -> Config:
        """A new Config with ``overrides`` (dotted keys or nested tables) on top."""
        data = _deep_copy(self._data)
        sources = dict(self._sources)
        _merge(data, _nest(overrides), sources, source, prefix="")
        return Config(data, sources)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


def config_dir() -> Path:
    """The user's atdata configuration folder (it may not exist yet).

    ``$XDG_CONFIG_HOME/atdata``, or ``~/.config/atdata``. The ATProto session file
    lives here too.
    """
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "atdata"


def user_config_path() -> Path:
    """The user config file: ``$ATDATA_CONFIG`` when set, else ``config_dir()/config.toml``."""
    explicit = os.environ.get("ATDATA_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return config_dir() / "config.toml"


def project_config_path(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The nearest ``atdata.toml`` in ``start`` (default: the current directory) or a parent."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / PROJECT_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(
    overrides: Mapping[str, Any] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read every layer and merge them (see the module docstring for the order).

    ``overrides`` are explicit arguments, the top layer: either dotted keys
    (``{"index.default": "sqlite"}``) or nested tables. ``cwd`` is where the
    project file search starts; ``environ`` replaces ``os.environ`` (tests).
    A missing file is fine; a malformed one raises :class:`ConfigError` naming
    the file and line.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    _merge(data, DEFAULTS, sources, "built-in defaults", prefix="")

    explicit = env.get("ATDATA_CONFIG")
    user_file = Path(explicit).expanduser() if explicit else _config_dir_from(env) / "config.toml"
    if explicit and not user_file.is_file():
        raise ConfigError(f"ATDATA_CONFIG points at {user_file}, which is not a file")
    if user_file.is_file():
        _merge(data, _read_toml(user_file), sources, str(user_file), prefix="")

    project_file = project_config_path(cwd)
    if project_file is not None and project_file.resolve() != user_file.resolve():
        _merge(data, _read_toml(project_file), sources, str(project_file), prefix="")

    for name in sorted(env):
        if not name.startswith(_ENV_PREFIX) or name in _ENV_RESERVED:
            continue
        rest = name[len(_ENV_PREFIX):]
        section, sep, key = rest.partition("_")
        if not sep or not section or not key:
            continue
        _merge(data, {section.lower(): {key.lower(): env[name]}}, sources, f"environment variable {name}", prefix="")

    if overrides:
        _merge(data, _nest(overrides), sources, "arguments", prefix="")
    return Config(data, sources)


def _config_dir_from(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "atdata"


_LINE_RE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        where = _LINE_RE.search(message)
        reason = _LINE_RE.sub("", message).strip()
        if where:
            raise ConfigError(
                f"{path}, line {where.group(1)}, column {where.group(2)}: malformed TOML: {reason}"
            ) from err
        raise ConfigError(f"{path}: malformed TOML: {reason}") from err


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``; nested tables pass through."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]].update(value)
        else:
            node[parts[-1]] = value
    return out


def _merge(target: dict[str, Any], layer: Mapping[str, Any], sources: dict[str, str], source: str, prefix: str) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            existing = target.get(key)
            if not isinstance(existing, dict):
                existing = target[key] = {}
            sources.setdefault(dotted, source)
            _merge(existing, value, sources, source, prefix=f"{dotted}.")
        else:
            target[key] = _deep_copy(value)
            sources[dotted] = source


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
