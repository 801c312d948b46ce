"""Layered configuration: TOML files plus ``ATDATA_*`` environment variables.

Later layers win, key by key::

    built-in defaults
    < user file      $ATDATA_CONFIG, else $XDG_CONFIG_HOME/atdata/config.toml
                     (~/.config/atdata/config.toml when XDG_CONFIG_HOME is unset)
    < project file   atdata.toml in the current directory or its nearest parent
    < running sandbox  while ``atdata sandbox up`` runs here: its [plc] url and
                     [sandbox] pds_url, read from its state file, and its two
                     hosts added to [network] allow_hosts
    < environment    ATDATA_<SECTION>_<KEY>, e.g. ATDATA_PLC_URL -> [plc] url
    < arguments      load_config(overrides={"plc.url": ...})

An environment name is split at the first underscore after ``ATDATA_``, so
``ATDATA_HTTP_RETRIES`` sets ``[http] retries``. Environment values are
strings; the typed getters (:meth:`Config.get_int`, :meth:`Config.get_list`...)
convert them and name the variable when a value does not convert.
:meth:`Config.source` says which layer a value came from.

The sandbox layer lets the CLI and the Python API of a shell use a local
sandbox with no flags: it is read from the sandbox's state file (in the user's
state folder, or ``ATDATA_SANDBOX_STATE``) and ignored once the sandbox's
processes are gone.

Implementations do not search a :class:`Config`: they receive typed settings
built from it, such as :class:`HttpSettings` (``[http]``),
:class:`AtprotoSettings` (``[plc]``, ``[atproto]``, ``[sandbox]``) and
:class:`NetworkSettings` (``[network]``: what a stranger's record may make
the core connect to), whose defaults are :data:`DEFAULTS`. Unknown keys of
the core's own sections are reported once through the ``atdata_core`` logger when the configuration is
loaded; unknown sections once the plugin registry knows which sections the
installed plugins read (:meth:`Config.report_unknown_sections`).

Per-user folders (configuration, cache, state) come from :func:`user_dir`.

Example ``atdata.toml``::

    [index]
    default = "sqlite"

    [plugins]
    deny = ["some-plugin"]

    [http]
    retries = 8

    [network]
    allow_hosts = ["nas.lan:8080"]     # a private host that records may name
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from atdata_core.errors import ConfigError

__all__ = [
    "AtprotoSettings",
    "Config",
    "DEFAULTS",
    "HttpSettings",
    "NetworkSettings",
    "config_dir",
    "load_config",
    "project_config_path",
    "sandbox_state_dir",
    "user_config_path",
    "user_dir",
]

#: Built-in defaults, the lowest layer.
DEFAULTS: dict[str, dict[str, Any]] = {
    "plc": {"url": "https://plc.directory"},
    "plugins": {"allow": [], "deny": []},
    # Which index provider load(), discovery and the CLI ask; cache_loaded keeps
    # loaded records in the embedded SQLite index ([index] sqlite_path).
    "index": {"default": "pds", "cache_loaded": False},
    # How every HTTP request of the core is retried (atdata_core._retry): retries
    # after the first attempt; backoff seconds, doubling; timeout seconds per
    # request; at most max_rate_wait seconds for a 429 to reset; no retry or
    # wait starts that would end later than deadline seconds after the first attempt.
    # HTTP storage: reading one shard (every request, redirect, resume and byte of
    # it) stops shard_deadline seconds after it started; at most max_redirects hops.
    "http": {
        "retries": 5, "backoff": 0.5, "timeout": 30.0, "max_rate_wait": 60.0, "deadline": 120.0,
        "shard_deadline": 1800.0, "max_redirects": 10,
    },
    # resolver: servers asked com.atproto.identity.resolveHandle after DNS and
    # the handle's well-known file; nameservers: DNS servers for handles
    # ("host" or "host:port"; none: the system's); identity_ttl: seconds DID
    # documents and handles stay cached; blob_limit: bytes, when a PDS
    # advertises no blobUploadLimit; max_pages: listRecords pages read per listing
    # (a PDS repeating its cursor, or never ending, is stopped there with a warning).
    "atproto": {
        "resolver": [], "nameservers": [], "identity_ttl": 60.0, "blob_limit": 5 * 1024 * 1024, "max_pages": 10_000,
    },
    # pds_url: the local sandbox PDS (set by the running-sandbox layer), asked
    # to resolve handles under handle_domain.
    "sandbox": {"handle_domain": ".test"},
    # What URLs and hosts named by other people's records (shard URLs, PDS endpoints
    # of DID documents, did:web hosts) may reach (atdata_core._netpolicy): plain http
    # when allow_http; loopback, private, link-local... addresses when allow_private;
    # allow_hosts: "host" or "host:port" entries allowed even if private (and over http).
    "network": {"allow_http": False, "allow_private": False, "allow_hosts": []},
    # How much the shard reader may hold (atdata_core.shards.ShardLimits): the largest
    # tar member it accepts, and the largest shard read whole and verified against its
    # checksum before its first sample is yielded (bigger ones are verified as they stream);
    # remember_verified: a local file whose checksum matched is not hashed again while it is
    # unchanged (atdata_core._verified; `atdata cache clear` forgets them).
    "shards": {"max_member_bytes": 4 << 30, "verify_buffer_bytes": 64 << 20, "remember_verified": True},
}

#: Keys of the core's own sections; anything else in them is reported as unknown.
CORE_KEYS: dict[str, frozenset[str]] = {
    "plc": frozenset({"url"}),
    "plugins": frozenset({"allow", "deny"}),
    "index": frozenset({"default", "cache_loaded", "sqlite_path", "select"}),
    "storage": frozenset({"select"}),
    # storage: where `atdata publish dataset` places local shards, a storage backend's name or a URL prefix.
    "publish": frozenset({"storage"}),
    "schema": frozenset({"select"}),
    "lens": frozenset(
        {"select", "trusted_dids", "pinned_commits", "require_verified_commit", "allow_working_directory"}
    ),
    "http": frozenset({"retries", "backoff", "timeout", "max_rate_wait", "deadline", "shard_deadline", "max_redirects"}),
    "atproto": frozenset({"resolver", "nameservers", "identity_ttl", "blob_limit", "max_pages"}),
    # state, cache and node are the sandbox's ATDATA_SANDBOX_* folder and Node overrides.
    "sandbox": frozenset({"pds_url", "handle_domain", "state", "cache", "node"}),
    "network": frozenset({"allow_http", "allow_private", "allow_hosts"}),
    "shards": frozenset({"max_member_bytes", "verify_buffer_bytes", "remember_verified"}),
}

PROJECT_FILE_NAME = "atdata.toml"
#: What :meth:`Config.source` says of a value given to ``Config({...})`` in code.
SET_IN_CODE = "set in code"
BUILT_IN = "built-in defaults"
_ENV_PREFIX = "ATDATA_"
# Variables in the ATDATA_ namespace that are not configuration keys.
_ENV_RESERVED = {"ATDATA_CONFIG", "ATDATA_PASSWORD", "ATDATA_SKIP_PDS", "ATDATA_INTEROP_WHEEL"}
_MISSING = object()


class Config:
    """Merged configuration, read with dotted keys.

    :func:`load_config` builds one from every layer; a plugin's tests can build
    one in code, and its values then report their source as ``"set in code"``::

    >>> config = Config({"plc": {"url": "http://localhost:2582"}})
    >>> config.get("plc.url")
    'http://localhost:2582'
    >>> config.get("index.default", "sqlite")
    'sqlite'
    >>> config.source("plc.url"), config.source("http.retries")
    ('set in code', 'built-in defaults')

    ``sources`` maps dotted keys to where their values came from; without it,
    every key of ``data`` was set in code.
    """

    def __init__(self, data: Mapping[str, Any] | None = None, sources: Mapping[str, str] | None = None):
        self._data: dict[str, Any] = _deep_copy(data or {})
        # dotted key -> where its value came from, for error messages
        if sources is None:
            recorded: dict[str, str] = {}
            _merge({}, _nest(self._data), recorded, SET_IN_CODE, prefix="")
            sources = recorded
        self._sources: dict[str, str] = dict(sources)

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
        """Where the value of ``key`` (or of its nearest parent table) was set, for messages.

        One of: a file path, ``"environment variable ATDATA_..."``,
        ``"running sandbox (<state file>)"``, ``"arguments"`` (the overrides
        of :func:`load_config`), ``"set in code"`` (a :class:`Config` built
        from a dict) or ``"built-in defaults"`` (also for a key no layer
        sets). Errors about a value start with it, so the user knows what to
        fix::

            raise ConfigError(f"{config.source('zip.level')}: zip.level must be 0-9")
        """
        parts = key.split(".")
        while parts:
            found = self._sources.get(".".join(parts))
            if found:
                return found
            parts.pop()
        return BUILT_IN

    def get_str(self, key: str, default: str | None = None) -> str | None:
        """The string at ``key``, or ``default`` when it is absent.

        A value of another type (``retries = 3`` where a string is expected)
        raises :class:`~atdata_core.errors.ConfigError` naming its source.
        Environment values are always strings, so they pass unchanged.
        """
        value = self.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(f"{self.source(key)}: {key} should be a string, not {value!r}")
        return value

    def get_int(self, key: str, default: int | None = None) -> int | None:
        """The integer at ``key`` (an environment string is converted), or ``default``."""
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
        """The number at ``key`` as a float (an environment string is converted), or ``default``.

        ``nan`` and ``inf`` convert; settings that cannot use them refuse them
        (see :class:`HttpSettings`).
        """
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
        """True / false at ``key``; strings ``1 true yes on`` and ``0 false no off`` convert."""
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

    def report_unknown_sections(self, plugin_sections: Iterable[str]) -> list[str]:
        """Warn once, through the ``atdata_core`` logger, about sections nobody reads; return their names.

        The core's own sections are known; ``plugin_sections`` are the
        sections installed plugins read (the plugin registry passes each
        implementation's settings section, and the plugins' entry-point and
        implementation names). A typo like ``[htpp]`` is reported with the
        file or variable that set it.
        """
        return _report_unknown_sections(self, plugin_sections)

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


# ---------------------------------------------------------------------------- typed settings


def _number(
    value: Any, key: str, source: str, *, integer: bool = False, minimum: float = 0.0, above: bool = False
) -> Any:
    """``value`` checked to be a finite number (an int when ``integer``) >= ``minimum`` (> when ``above``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{source}: {key} should be {kind}, not {value!r}")
    if not math.isfinite(value) or value < minimum or (above and value == minimum):
        bound = f"> {minimum:g}" if above else f">= {minimum:g}"
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"{source}: {key} should be {kind} {bound}, not {value!r}")
    return value


def _settings_values(
    config: Config | None, section: str, readers: Mapping[str, str], overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Read ``section``'s keys with their typed getters; keyword overrides that are not None win."""
    if config is None:
        config = load_config()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, getter in readers.items():
        key = f"{section}.{name}"
        given = overrides.get(name)
        if given is not None:
            values[name], sources[name] = given, "arguments"
            continue
        default = DEFAULTS[section][name]
        values[name] = getattr(config, getter)(key, default)
        sources[name] = config.source(key)
    return values, sources


@attrs.frozen
class HttpSettings:
    """The ``[http]`` section: how every HTTP request the core makes is tried.

    ``retries`` after the first attempt (>= 0); ``backoff`` seconds before the
    first retry, doubling (>= 0); ``timeout`` seconds per request (> 0);
    ``max_rate_wait``, the longest wait for an HTTP 429 to reset (>= 0);
    ``deadline``, seconds after the first attempt by which no new attempt or
    wait may end (> 0). HTTP storage also reads ``shard_deadline``, the
    seconds after which reading one shard stops, whatever it is doing
    (requests, redirects, resumes, a body that drips a byte at a time; > 0),
    and ``max_redirects``, the redirects one request may follow (>= 0).
    Defaults are :data:`DEFAULTS` ``["http"]``.

    >>> HttpSettings.from_config(Config({"http": {"retries": 2}})).retries
    2

    An invalid value raises :class:`~atdata_core.errors.ConfigError` naming
    where it was set (``environment variable ATDATA_HTTP_TIMEOUT: ...``).
    """

    retries: int = DEFAULTS["http"]["retries"]
    backoff: float = DEFAULTS["http"]["backoff"]
    timeout: float = DEFAULTS["http"]["timeout"]
    max_rate_wait: float = DEFAULTS["http"]["max_rate_wait"]
    deadline: float = DEFAULTS["http"]["deadline"]
    shard_deadline: float = DEFAULTS["http"]["shard_deadline"]
    max_redirects: int = DEFAULTS["http"]["max_redirects"]

    def __attrs_post_init__(self) -> None:
        _check_http(attrs.asdict(self), dict.fromkeys(_HTTP_READERS, SET_IN_CODE))

    @classmethod
    def from_config(cls, config: Config | None = None, **overrides: Any) -> Any:
        """Read ``[http]`` from ``config`` (default: :func:`load_config`); keyword arguments that are not None win."""
        values, sources = _settings_values(config, "http", _HTTP_READERS, overrides)
        # Checked here with each value's real source; construction alone would say "set in code".
        _check_http(values, sources)
        for name in ("backoff", "timeout", "max_rate_wait", "deadline", "shard_deadline"):
            values[name] = float(values[name])
        return cls(**values)


def _check_http(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    _number(values["retries"], "http.retries", sources["retries"], integer=True)
    _number(values["backoff"], "http.backoff", sources["backoff"])
    _number(values["timeout"], "http.timeout", sources["timeout"], above=True)
    _number(values["max_rate_wait"], "http.max_rate_wait", sources["max_rate_wait"])
    _number(values["deadline"], "http.deadline", sources["deadline"], above=True)
    _number(values["shard_deadline"], "http.shard_deadline", sources["shard_deadline"], above=True)
    _number(values["max_redirects"], "http.max_redirects", sources["max_redirects"], integer=True)


_HTTP_READERS = {
    "retries": "get_int",
    "backoff": "get_float",
    "timeout": "get_float",
    "max_rate_wait": "get_float",
    "deadline": "get_float",
    "shard_deadline": "get_float",
    "max_redirects": "get_int",
}


@attrs.frozen
class AtprotoSettings:
    """``[plc]``, ``[atproto]`` and ``[sandbox]``: where identities resolve and what a PDS is assumed to take.

    ``plc_url``: the PLC directory for ``did:plc`` DIDs. ``resolvers``:
    servers asked ``com.atproto.identity.resolveHandle`` after DNS and the
    handle's well-known file. ``nameservers``: DNS servers for handle TXT
    records (``"host"`` or ``"host:port"``; empty: the system's).
    ``identity_ttl``: seconds resolved DID documents and handles are cached.
    ``blob_limit``: the blob size assumed when a PDS advertises none.
    ``max_pages``: ``listRecords`` pages one listing reads at most (a PDS
    that never stops, or repeats its cursor, is cut off with a warning).
    ``sandbox_pds_url``: a local sandbox PDS (set while one runs), which
    resolves the handles under ``sandbox_handle_domain`` (``.test``).
    """

    plc_url: str = DEFAULTS["plc"]["url"]
    resolvers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    nameservers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    identity_ttl: float = DEFAULTS["atproto"]["identity_ttl"]
    blob_limit: int = DEFAULTS["atproto"]["blob_limit"]
    max_pages: int = DEFAULTS["atproto"]["max_pages"]
    sandbox_pds_url: str | None = None
    sandbox_handle_domain: str = DEFAULTS["sandbox"]["handle_domain"]

    @classmethod
    def from_config(cls, config: Config | None = None, **overrides: Any) -> AtprotoSettings:
        """Read the sections from ``config`` (default: :func:`load_config`); keyword arguments that are not None win."""
        if config is None:
            config = load_config()

        def pick(name: str, key: str, read: Any) -> tuple[Any, str]:
            if overrides.get(name) is not None:
                return overrides[name], "arguments"
            section, _, item = key.partition(".")
            return read(key, DEFAULTS.get(section, {}).get(item)), config.source(key)

        plc_url, plc_source = pick("plc_url", "plc.url", config.get_str)
        if not isinstance(plc_url, str) or not plc_url.startswith(("https://", "http://")):
            raise ConfigError(f"{plc_source}: plc.url should be an http(s) URL, not {plc_url!r}")
        resolvers, _ = pick("resolvers", "atproto.resolver", config.get_list)
        nameservers, _ = pick("nameservers", "atproto.nameservers", config.get_list)
        ttl, ttl_source = pick("identity_ttl", "atproto.identity_ttl", config.get_float)
        limit, limit_source = pick("blob_limit", "atproto.blob_limit", config.get_int)
        pages, pages_source = pick("max_pages", "atproto.max_pages", config.get_int)
        sandbox_pds, _ = pick("sandbox_pds_url", "sandbox.pds_url", config.get_str)
        domain, domain_source = pick("sandbox_handle_domain", "sandbox.handle_domain", config.get_str)
        _number(ttl, "atproto.identity_ttl", ttl_source)
        _number(limit, "atproto.blob_limit", limit_source, integer=True, above=True)
        _number(pages, "atproto.max_pages", pages_source, integer=True, above=True)
        if not domain.startswith("."):
            raise ConfigError(f"{domain_source}: sandbox.handle_domain should start with a dot, like .test")
        return cls(
            plc_url=plc_url.rstrip("/"),
            resolvers=tuple(url.rstrip("/") for url in resolvers),
            nameservers=tuple(nameservers),
            identity_ttl=float(ttl),
            blob_limit=limit,
            max_pages=pages,
            sandbox_pds_url=sandbox_pds.rstrip("/") if sandbox_pds else None,
            sandbox_handle_domain=domain.lower(),
        )


@attrs.frozen
class NetworkSettings:
    """The ``[network]`` section: what URLs named by other people's records may reach.

    Shard URLs of published entries, the PDS endpoints of DID documents and
    ``did:web`` hosts are written by strangers; :mod:`atdata_core._netpolicy`
    checks them. ``allow_http``: plain ``http`` URLs are accepted (default:
    ``https`` only). ``allow_private``: loopback, private, link-local and other
    non-public addresses may be reached (default: refused). ``allow_hosts``:
    ``"host"`` or ``"host:port"`` entries (``"[::1]:8080"`` for IPv6) that may
    be reached even when private, over ``http`` too: a server of your own
    that records may name. Your own URLs and paths are never checked.

    >>> NetworkSettings.from_config(Config({"network": {"allow_hosts": ["NAS.lan:8080"]}})).allow_hosts
    ('nas.lan:8080',)
    """

    allow_http: bool = DEFAULTS["network"]["allow_http"]
    allow_private: bool = DEFAULTS["network"]["allow_private"]
    allow_hosts: tuple[str, ...] = attrs.field(
        default=(), converter=lambda entries: tuple(_host_entry(entry, SET_IN_CODE) for entry in entries)
    )

    @classmethod
    def from_config(cls, config: Config | None = None, **overrides: Any) -> Any:
        """Read ``[network]`` from ``config`` (default: :func:`load_config`); keyword arguments that are not None win."""
        values, sources = _settings_values(config, "network", _NETWORK_READERS, overrides)
        for name in ("allow_http", "allow_private"):
            if not isinstance(values[name], bool):
                raise ConfigError(f"{sources[name]}: network.{name} should be true or false, not {values[name]!r}")
        entries = values["allow_hosts"]
        if isinstance(entries, str) or not all(isinstance(entry, str) for entry in entries):
            raise ConfigError(f"{sources['allow_hosts']}: network.allow_hosts should be a list of strings")
        values["allow_hosts"] = tuple(_host_entry(entry, sources["allow_hosts"]) for entry in entries)
        return cls(**values)

    def host_entries(self) -> list[tuple[str, int | None]]:
        """``allow_hosts`` as ``(host, port or None)`` pairs; IPv6 hosts without brackets."""
        return [_split_host_port(entry) for entry in self.allow_hosts]


_NETWORK_READERS = {"allow_http": "get_bool", "allow_private": "get_bool", "allow_hosts": "get_list"}


def _split_host_port(entry: str) -> tuple[str, int | None]:
    text = entry.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:  # a name, or a bare IPv6 address
        host, port = text, ""
    return host.lower().rstrip("."), int(port) if port.isdigit() else (None if not port else -1)


def _host_entry(entry: str, source: str) -> str:
    """An ``allow_hosts`` entry, normalised (``NAS.lan.:80`` -> ``nas.lan:80``); ConfigError when malformed."""
    host, port = _split_host_port(entry)
    if not host or any(char in host for char in "/@?#* \t") or port is not None and not 0 < port < 65536:
        raise ConfigError(
            f"{source}: network.allow_hosts entry {entry!r} should be a host or host:port, like "
            f"nas.lan, 10.0.0.5:8080 or [::1]:8080"
        )
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


# ---------------------------------------------------------------------------- per-user folders


# kind -> (XDG variable, folder under the home directory, macOS folder under ~/Library)
_USER_DIRS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "config": ("XDG_CONFIG_HOME", (".config",), None),
    "cache": ("XDG_CACHE_HOME", (".cache",), "Caches"),
    "state": ("XDG_STATE_HOME", (".local", "state"), "Application Support"),
}


def user_dir(kind: str, *, environ: Mapping[str, str] | None = None) -> Path:
    """The user's atdata folder of one ``kind``: ``"config"``, ``"cache"`` or ``"state"``.

    ``$XDG_CONFIG_HOME/atdata``, ``$XDG_CACHE_HOME/atdata`` or
    ``$XDG_STATE_HOME/atdata`` when the variable is set; otherwise
    ``~/.config/atdata``, ``~/.cache/atdata`` or ``~/.local/state/atdata``
    (on macOS the cache and state go under ``~/Library/Caches`` and
    ``~/Library/Application Support``; on Windows under ``%LOCALAPPDATA%``).
    The folder may not exist yet. ``environ`` replaces ``os.environ`` (tests).

    >>> user_dir("state", environ={"XDG_STATE_HOME": "/tmp/s"})
    PosixPath('/tmp/s/atdata')
    """
    try:
        variable, under_home, mac_folder = _USER_DIRS[kind]
    except KeyError:
        raise ValueError(f"user_dir kind must be one of {', '.join(_USER_DIRS)}, not {kind!r}") from None
    env = os.environ if environ is None else environ
    explicit = env.get(variable)
    if explicit:
        return Path(explicit).expanduser() / "atdata"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if kind != "config" and sys.platform == "darwin" and mac_folder:
        return home / "Library" / mac_folder / "atdata"
    if kind != "config" and os.name == "nt":
        local = env.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / "atdata" / kind
    return home.joinpath(*under_home) / "atdata"


def sandbox_state_dir(*, environ: Mapping[str, str] | None = None) -> Path:
    """Where ``atdata sandbox up`` keeps its state file: ``ATDATA_SANDBOX_STATE``, else ``user_dir("state")/sandbox``."""
    env = os.environ if environ is None else environ
    override = env.get("ATDATA_SANDBOX_STATE")
    if override:
        return Path(override).expanduser()
    return user_dir("state", environ=env) / "sandbox"


def config_dir() -> Path:
    """The user's atdata configuration folder, ``user_dir("config")``; saved sessions live here too."""
    return user_dir("config")


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
    user_file = Path(explicit).expanduser() if explicit else user_dir("config", environ=env) / "config.toml"
    if explicit and not user_file.is_file():
        raise ConfigError(f"ATDATA_CONFIG points at {user_file}, which is not a file")
    if user_file.is_file():
        _merge(data, _read_toml(user_file), sources, str(user_file), prefix="")

    project_file = project_config_path(cwd)
    if project_file is not None and project_file.resolve() != user_file.resolve():
        _merge(data, _read_toml(project_file), sources, str(project_file), prefix="")

    sandbox = _running_sandbox_layer(env)
    if sandbox is not None:
        state_file, layer = sandbox
        # The sandbox adds its own two hosts to the ones the user allowed; it does not replace them.
        hosts = layer.get("network", {}).get("allow_hosts")
        if hosts:
            allowed = data.get("network", {}).get("allow_hosts")
            if isinstance(allowed, str):
                allowed = allowed.split(",")
            earlier = [item.strip() for item in allowed or () if isinstance(item, str) and item.strip()]
            layer["network"]["allow_hosts"] = list(dict.fromkeys([*earlier, *hosts]))
        _merge(data, layer, sources, f"running sandbox ({state_file})", prefix="")

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
    _report_unknown_keys(data, sources)
    return Config(data, sources)


def _running_sandbox_layer(env: Mapping[str, str]) -> tuple[Path, dict[str, Any]] | None:
    """The settings of a sandbox running for this user, or None (no state file, or its processes are gone)."""
    from atdata_core.sandbox._state import running_sandbox_settings

    return running_sandbox_settings(sandbox_state_dir(environ=env))


# (section, key or None, source) already reported, so each is reported once per process.
_reported: set[tuple[str, str | None, str]] = set()
_log = logging.getLogger("atdata_core")


def _report_unknown_keys(data: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Warn once about keys the core's own sections do not have (a typo like ``retrys``)."""
    for name, allowed in CORE_KEYS.items():
        table = data.get(name)
        if not isinstance(table, Mapping):
            continue
        for key in table:
            if key in allowed:
                continue
            source = sources.get(f"{name}.{key}", BUILT_IN)
            if (name, key, source) in _reported:
                continue
            _reported.add((name, key, source))
            _log.warning(
                "%s: unknown configuration key %s.%s, ignored; [%s] takes %s",
                source, name, key, name, ", ".join(sorted(allowed)),
            )


def _report_unknown_sections(config: Config, plugin_sections: Iterable[str]) -> list[str]:
    names = {_normalize_section(name) for name in plugin_sections if name}
    unknown = []
    for name in config:
        if name in CORE_KEYS or _normalize_section(name) in names:
            continue
        unknown.append(name)
        source = config.source(name)
        if (name, None, source) in _reported:
            continue
        _reported.add((name, None, source))
        _log.warning(
            "%s: unknown configuration section [%s]: neither the core nor an installed plugin reads it "
            "(`atdata plugins` lists each implementation's section)",
            source, name,
        )
    return unknown


def _normalize_section(name: str) -> str:
    return name.strip().lower().replace("-", "_")


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
