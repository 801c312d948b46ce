"""Plugin discovery: entry points in the ``atdata`` group, loaded by stevedore into pluggy.

The process-wide manager is built on first use. Building it:

1. lists the group's entry points (nothing imported yet);
2. drops the ones the allow / deny lists exclude;
3. imports the rest through stevedore; one that fails is recorded and skipped
   with a warning, so the others keep working;
4. registers each module with pluggy under its entry-point name;
5. calls ``atdata_configure(config)``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from atdata_core.errors import PluginError
from atdata_core.plugins import hookspecs

if TYPE_CHECKING:
    from atdata_core.config import Config
    from atdata_core.plugins._registry import Registry

ENTRY_POINT_GROUP = "atdata"
#: The entry point of the core's own implementations.
BUILTIN = "builtin"

_lock = threading.RLock()
_state: _State | None = None


@attrs.frozen
class PluginInfo:
    """One line of :func:`plugin_report`.

    ``name`` is the plugin's entry-point name: the name allow and deny lists
    use (the distribution name works there too). ``provides`` lists what it
    registered, one line per implementation, with the keys the core selects
    it by: ``"storage backend 'mem': schemes mem://; record types ..."``
    (implementation names are what ``[storage.select]`` and ``[index]
    default`` use). ``status`` is ``"loaded"``, ``"failed"`` (``error`` says
    why: an import error, a crash, or a configuration it refused) or
    ``"blocked"`` (excluded by the allow / deny lists; never imported).
    """

    name: str
    distribution: str | None
    version: str | None
    status: str
    hooks: tuple[str, ...] = ()
    error: str | None = None
    entry_point: str | None = None
    provides: tuple[str, ...] = ()


@attrs.define
class _EntryPointInfo:
    name: str
    value: str
    distribution: str | None
    version: str | None


@attrs.define
class _State:
    manager: pluggy.PluginManager
    config: Config
    entry_points: dict[str, _EntryPointInfo]
    failures: dict[str, str]
    blocked: dict[str, str]
    registry: Registry | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager, discovering plugins on first call."""
    return _get_state().manager


def get_config() -> Config:
    """The configuration the process-wide plugin manager was built with."""
    return _get_state().config


def get_registry() -> Registry:
    """The process-wide registries of implementations (built on first call)."""
    state = _get_state()
    with _lock:
        if state.registry is None:
            state.registry = build_registry(state.manager, state.config)
            # Now the sections the installed plugins read are known: report the rest (once).
            claimed = {spec.section or spec.name for spec in state.registry.all_specs()}
            claimed.update(state.entry_points)
            state.config.report_unknown_sections(claimed)
            _warn_implementation_names(state, state.registry)
        return state.registry


def discovered() -> bool:
    """Whether this process has discovered plugins (nothing is discovered by asking).

    Plain local paths open with the core's file backend until then (see
    :func:`atdata_core.storage.open_shard`): discovery imports every
    installed plugin, tens of milliseconds in every fresh process.
    """
    return _state is not None


def reset_plugins() -> None:
    """Forget the process-wide manager; the next use discovers plugins again with fresh configuration."""
    global _state
    with _lock:
        _state = None
        stevedore = sys.modules.get("stevedore")
        if stevedore is not None:
            # stevedore keeps the entry points it listed for the life of the process
            stevedore.ExtensionManager.ENTRY_POINT_CACHE.pop(ENTRY_POINT_GROUP, None)


@contextlib.contextmanager
def plugin_registered(plugin: Any, name: str | None = None) -> Iterator[pluggy.PluginManager]:
    """Register a plugin object (module, class or instance with hook functions) for the ``with`` block.

    For tests::

        class FakeStorage:
            @hookimpl
            def atdata_storage_backends(self):
                return [StorageBackendSpec(name="fake", schemes=("fake",), factory=make_fake)]

        with plugin_registered(FakeStorage()):
            open_shard("fake://x")

    The registries are rebuilt on entry and exit, so lookups see the plugin
    only inside the block.
    """
    state = _get_state()
    with _lock:
        plugin_name = state.manager.register(plugin, name=name)
        if plugin_name is None:
            raise PluginError(f"plugin {name or plugin!r} is already registered or blocked")
        state.registry = None
    try:
        call_each(state.manager, "atdata_configure", only=plugin_name, config=state.config)
        yield state.manager
    finally:
        with _lock:
            state.manager.unregister(plugin)
            state.registry = None


def plugin_report() -> list[PluginInfo]:
    """Every plugin discovered or registered: name, distribution, version, status, hooks, error.

    Sorted by name, the built-in plugin first. ``atdata plugins`` prints this.
    """
    state = _get_state()
    infos: list[PluginInfo] = []
    manager = state.manager
    seen: set[str] = set()
    provided: dict[str, list[str]] = {}
    for spec in get_registry().all_specs():
        provided.setdefault(spec.plugin or "", []).append(spec.summary())
    for plugin_name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        seen.add(plugin_name)
        ep = state.entry_points.get(plugin_name)
        hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()))
        infos.append(
            PluginInfo(
                name=plugin_name,
                distribution=ep.distribution if ep else None,
                version=ep.version if ep else None,
                status="loaded",
                hooks=hooks,
                entry_point=ep.value if ep else None,
                provides=tuple(provided.get(plugin_name, ())),
            )
        )
    for plugin_name, error in state.failures.items():
        ep = state.entry_points.get(plugin_name)
        infos.append(
            PluginInfo(
                plugin_name,
                ep.distribution if ep else None,
                ep.version if ep else None,
                "failed",
                error=error,
                entry_point=ep.value if ep else None,
            )
        )
    for plugin_name, reason in state.blocked.items():
        if plugin_name in seen:
            continue
        ep = state.entry_points[plugin_name]
        infos.append(PluginInfo(plugin_name, ep.distribution, ep.version, "blocked", error=reason, entry_point=ep.value))
    infos.sort(key=lambda info: (info.name != BUILTIN, info.name))
    return infos


def _get_state() -> _State:
    global _state
    with _lock:
        if _state is None:
            from atdata_core.config import load_config

            _state = _discover(load_config())
        return _state


def _discover(config: Config) -> _State:
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    entry_points = _list_entry_points()
    allow = {_normalize(n) for n in config.get_list("plugins.allow")}
    deny = {_normalize(n) for n in config.get_list("plugins.deny")}

    wanted: list[str] = []
    blocked: dict[str, str] = {}
    for name, ep in entry_points.items():
        keys = {_normalize(name)} | ({_normalize(ep.distribution)} if ep.distribution else set())
        if keys & deny:
            blocked[name] = f"deny-listed ({config.source('plugins.deny')})"
        elif allow and not keys & allow and name != BUILTIN:
            # An allow list names the third-party plugins you trust; the core's
            # own implementations stay on unless deny-listed by name.
            blocked[name] = f"not in the allow list ({config.source('plugins.allow')})"
        else:
            wanted.append(name)

    failures: dict[str, str] = {}

    def on_failure(_manager: Any, ep: Any, err: BaseException) -> None:
        info = entry_points.get(ep.name)
        failures[ep.name] = f"{type(err).__name__}: {err}"
        dist = f" from {info.distribution} {info.version or ''}".rstrip() if info and info.distribution else ""
        warnings.warn(
            f"atdata plugin {ep.name!r}{dist} failed to load and is skipped: {type(err).__name__}: {err}",
            RuntimeWarning,
            stacklevel=4,
        )

    if wanted:
        from stevedore import NamedExtensionManager

        for name in wanted:
            # One plugin at a time: a module that calls sys.exit() or raises another
            # BaseException while importing is reported and skipped like any failure.
            try:
                extensions = list(
                    NamedExtensionManager(
                        ENTRY_POINT_GROUP,
                        names=[name],
                        on_load_failure_callback=on_failure,
                        on_missing_entrypoints_callback=None,
                    )
                )
            except KeyboardInterrupt:
                raise
            except BaseException as err:  # noqa: BLE001 - SystemExit from a plugin's import
                on_failure(None, entry_points[name], err)
                continue
            for extension in extensions:
                try:
                    manager.register(extension.plugin, name=extension.name)
                except (pluggy.PluginValidationError, ValueError) as err:
                    failures[extension.name] = f"{type(err).__name__}: {err}"
                    warnings.warn(
                        f"atdata plugin {extension.name!r} is skipped: {err}", RuntimeWarning, stacklevel=3
                    )
    state = _State(manager=manager, config=config, entry_points=entry_points, failures=failures, blocked=blocked)
    _configure(manager, config, failures)
    return state


def _warn_implementation_names(state: _State, registry: Registry) -> None:
    """Allow and deny lists take plugin names; warn when one names an implementation instead.

    A name matching no installed plugin is fine (deny-listing a plugin before
    it is installed); a name that is an implementation's, not its plugin's,
    is the easy mistake, and it silently does nothing.
    """
    config = state.config
    known = {_normalize(name) for name in state.entry_points} | {
        _normalize(ep.distribution) for ep in state.entry_points.values() if ep.distribution
    }
    implementations = {_normalize(spec.name): spec for spec in registry.all_specs()}
    for key in ("plugins.allow", "plugins.deny"):
        for name in config.get_list(key):
            spec = implementations.get(_normalize(name))
            if _normalize(name) in known or spec is None:
                continue
            warnings.warn(
                f"{config.source(key)}: [{key.replace('.', '] ')} names {name!r}, the {spec.kind} that plugin "
                f"{spec.plugin!r} provides, not a plugin: allow and deny lists take plugin names (the first "
                f"name on each line of `atdata plugins`) or distribution names; write {spec.plugin!r}",
                RuntimeWarning,
                stacklevel=4,
            )


def _configure(manager: pluggy.PluginManager, config: Config, failures: dict[str, str]) -> None:
    """Call every ``atdata_configure``; a plugin that refuses or crashes is unloaded and reported.

    A plugin refusing the user's configuration (:class:`ConfigError`) is
    reported like a plugin that failed to import: ``atdata plugins`` shows the
    message, anything asking for one of its implementations gets it in the
    error, and commands that never touch that plugin keep working.
    """
    from atdata_core.errors import ConfigError

    for plugin_name, result in call_each(manager, "atdata_configure", config=config):
        if not isinstance(result, BaseException):
            continue
        if isinstance(result, ConfigError):
            failures[plugin_name] = f"configuration refused: {result}"
        else:
            failures[plugin_name] = f"atdata_configure raised {type(result).__name__}: {result}"
        manager.unregister(name=plugin_name)
        warnings.warn(f"atdata plugin {plugin_name!r} is skipped: {failures[plugin_name]}", RuntimeWarning, stacklevel=4)


def call_each(
    manager: pluggy.PluginManager, hook_name: str, *, only: str | None = None, **kwargs: Any
) -> list[tuple[str, Any]]:
    """Call a hook once per plugin, through pluggy, as ``[(plugin name, result or exception)]``.

    Calling each plugin on its own attributes every result to the plugin that
    returned it, and one plugin raising does not hide the others' results.
    pluggy passes each implementation only the arguments it names, so an
    argument added to a hook later reaches only the plugins that ask for it.
    Results come in registration order.
    """
    caller = getattr(manager.hook, hook_name)
    results: list[tuple[str, Any]] = []
    for impl in caller.get_hookimpls():
        if only is not None and impl.plugin_name != only:
            continue
        others = [plugin for plugin in manager.get_plugins() if plugin is not impl.plugin]
        one = manager.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            returned = one(**kwargs)
        except Exception as err:  # a broken plugin must not break the others
            results.append((impl.plugin_name, err))
            continue
        # pluggy returns the non-None results as a list (one per implementation).
        results.append((impl.plugin_name, returned[0] if returned else None))
    return results


def build_registry(manager: pluggy.PluginManager, config: Config) -> Registry:
    """The four registries, from what each plugin registered with ``manager``, selecting by ``config``."""
    from atdata_core.plugins._descriptors import (
        IndexProviderSpec,
        LensExecutorSpec,
        SchemaFormatSpec,
        StorageBackendSpec,
    )
    from atdata_core.plugins._registry import Registry

    errors: list[str] = []
    entry_points = _state.entry_points if _state is not None else {}

    def collect(hook_name: str, spec_type: type) -> list[Any]:
        specs: list[Any] = []
        for plugin_name, result in call_each(manager, hook_name):
            if isinstance(result, BaseException):
                _note(errors, f"plugin {plugin_name!r}: {hook_name}() raised {type(result).__name__}: {result}")
                continue
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                _note(errors, f"plugin {plugin_name!r}: {hook_name}() must return a list, got {type(result).__name__}")
                continue
            ep = entry_points.get(plugin_name)
            for item in result:
                if not isinstance(item, spec_type):
                    _note(
                        errors,
                        f"plugin {plugin_name!r}: {hook_name}() returned {type(item).__name__}, "
                        f"expected {spec_type.__name__}; ignored",
                    )
                    continue
                specs.append(
                    attrs.evolve(item, plugin=plugin_name, distribution=item.distribution or (ep.distribution if ep else None))
                )
        return specs

    return Registry(
        storage=collect("atdata_storage_backends", StorageBackendSpec),
        schema_formats=collect("atdata_schema_formats", SchemaFormatSpec),
        index_providers=collect("atdata_index_providers", IndexProviderSpec),
        lens_executors=collect("atdata_lens_executors", LensExecutorSpec),
        config=config,
        hint_status=_hint_status,
        hook_errors=errors,
    )


def _note(errors: list[str], message: str) -> None:
    errors.append(message)
    warnings.warn(message, RuntimeWarning, stacklevel=5)


def _list_entry_points() -> dict[str, _EntryPointInfo]:
    import importlib.metadata

    found: dict[str, _EntryPointInfo] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        name = dist.metadata["Name"] if dist is not None else None
        version = dist.version if dist is not None else None
        # The first one on sys.path wins, as it does for imports.
        found.setdefault(ep.name, _EntryPointInfo(ep.name, ep.value, name, version))
    return found


def _hint_status(distribution: str) -> str | None:
    """Why an installed distribution contributes nothing (failed or blocked), if it is installed."""
    state = _state
    if state is None:
        return None
    wanted = _normalize(distribution)
    for name, ep in state.entry_points.items():
        if ep.distribution and _normalize(ep.distribution) == wanted:
            if name in state.failures:
                return f"{distribution} is installed but its plugin {name!r} failed to load: {state.failures[name]}"
            if name in state.blocked:
                return f"{distribution} is installed but its plugin {name!r} is {state.blocked[name]}"
    return None


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")
