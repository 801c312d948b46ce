"""Hooks, registries, selection errors and in-process plugin registration."""

from __future__ import annotations

import inspect
import sys
import textwrap
import warnings

import pytest

from atdata_core import builtin_plugin
from atdata_core.config import Config
from atdata_core.errors import DuplicateImplementation, MissingImplementation, PluginLoadError, StorageError
from atdata_core.plugins import (
    IndexProviderSpec,
    LensExecutorSpec,
    build_registry,
    SchemaFormatSpec,
    StorageBackend,
    StorageBackendSpec,
    cli_commands,
    get_plugin_manager,
    get_registry,
    hookimpl,
    hookspecs,
    index_provider,
    lens_executor,
    plugin_problems,
    plugin_registered,
    plugin_report,
    schema_format,
    storage_backend,
)
from atdata_core.storage.file import FileStorage


class Thing:
    """A stand-in implementation that remembers the config it was built with."""

    def __init__(self, config=None, label="thing"):
        self.config = config
        self.label = label


def make(label):
    return lambda config: Thing(config, label)


class RecordThing(Thing):
    """A stand-in storage backend that also maps storage records (a StorageRecordMapper)."""

    def to_storage_record(self, shards):
        return {}

    def from_storage_record(self, record):
        return []


class StoragePlugin:
    def __init__(self, *specs):
        self.specs = list(specs)

    @hookimpl
    def atdata_storage_backends(self):
        return self.specs


def test_every_hookspec_is_documented_and_prefixed():
    specs = [
        (name, fn)
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, "atdata_spec")
    ]
    assert {name for name, _ in specs} >= {
        "atdata_schema_formats",
        "atdata_storage_backends",
        "atdata_index_providers",
        "atdata_lens_executors",
        "atdata_configure",
        "atdata_cli_commands",
    }
    for name, fn in specs:
        assert name.startswith("atdata_")
        doc = inspect.getdoc(fn) or ""
        assert len(doc.split()) >= 8, f"hookspec {name} needs a docstring saying when it is called and what it returns"


def test_the_builtin_plugin_is_discovered_through_its_entry_point():
    report = {info.name: info for info in plugin_report()}
    builtin = report["builtin"]
    assert builtin.status == "loaded"
    assert builtin.distribution == "atdata-core"
    assert builtin.version
    assert "atdata_storage_backends" in builtin.hooks
    assert builtin.entry_point == "atdata_core.builtin_plugin"
    assert get_plugin_manager().get_plugin("builtin") is builtin_plugin


def test_builtins_register_through_the_same_hooks():
    storage = get_registry().storage
    by_name = {spec.name: spec for spec in storage.specs()}
    assert by_name["file"].plugin == "builtin"
    assert by_name["file"].distribution == "atdata-core"
    assert set(by_name["http"].schemes) == {"http", "https"}
    assert isinstance(storage_backend("relative/path.tar"), FileStorage)
    assert isinstance(storage_backend("file:///data/a.tar"), FileStorage)
    assert type(storage_backend("HTTPS://host/a.tar")).__name__ == "HttpStorage"
    assert storage_backend(name="file") is storage_backend("/abs/path.tar")  # built once, then reused
    assert isinstance(storage_backend("/abs/path.tar"), StorageBackend)
    assert isinstance(storage_backend("https://host/a.tar"), StorageBackend)


def test_a_registered_plugin_is_visible_only_inside_the_block():
    plugin = StoragePlugin(StorageBackendSpec(name="fake", schemes=("fake",), factory=make("fake")))
    with plugin_registered(plugin, name="fake-plugin"):
        backend = storage_backend("fake://bucket/a.tar")
        assert backend.label == "fake"
        assert isinstance(backend.config, Config)
        info = {i.name: i for i in plugin_report()}["fake-plugin"]
        assert info.status == "loaded"
        assert info.hooks == ("atdata_storage_backends",)
    with pytest.raises(MissingImplementation, match="fake://"):
        storage_backend("fake://bucket/a.tar")
    assert "fake-plugin" not in {i.name for i in plugin_report()}


def test_the_same_plugin_cannot_be_registered_twice():
    plugin = StoragePlugin()
    with plugin_registered(plugin, name="once"):
        with pytest.raises(Exception, match="once|already registered"):
            with plugin_registered(plugin, name="once"):
                pass


def test_a_duplicate_scheme_names_both_plugins_and_config_can_choose():
    plugin = StoragePlugin(StorageBackendSpec(name="fancy-http", schemes=("https",), factory=make("fancy")))
    with plugin_registered(plugin, name="fancy"):
        with pytest.raises(DuplicateImplementation) as caught:
            storage_backend("https://host/a.tar")
        message = str(caught.value)
        assert "'https'" in message
        assert "plugin 'builtin'" in message and "plugin 'fancy'" in message
        assert "[storage.select]" in message
        # http:// is still unambiguous
        assert type(storage_backend("http://host/a.tar")).__name__ == "HttpStorage"
        assert get_registry().duplicates() == [message]

        chosen = Config({"storage": {"select": {"https": "fancy-http"}}})
        registry = build_registry(get_plugin_manager(), chosen)
        assert registry.storage.for_url("https://host/a.tar").label == "fancy"


def test_a_duplicate_record_type_can_be_chosen_by_config():
    storage_http = "science.alt.dataset.storageHttp"
    plugin = StoragePlugin(StorageBackendSpec(name="mirror", schemes=("mirror",), record_types=(storage_http,), factory=lambda config: RecordThing(config, "mirror")))
    with plugin_registered(plugin, name="mirror-plugin"):
        with pytest.raises(DuplicateImplementation, match=f"record type '{storage_http}'"):
            storage_backend(record_type=storage_http)
        chosen = Config({"storage": {"select": {storage_http: "mirror"}}})
        registry = build_registry(get_plugin_manager(), chosen)
        assert registry.storage.for_record({"$type": storage_http, "shards": []}).label == "mirror"


def test_a_duplicate_name_cannot_be_chosen_by_config():
    plugin = StoragePlugin(StorageBackendSpec(name="file", schemes=("other",), factory=make("x")))
    with plugin_registered(plugin, name="impostor"):
        with pytest.raises(DuplicateImplementation, match="name 'file' is registered twice.*'builtin'.*'impostor'"):
            storage_backend(name="file")
        # The impostor's scheme is unique, yet it still reaches the duplicate name only by name
        assert storage_backend("other://x").label == "x"


def test_missing_implementations_name_the_distribution_to_install():
    # atdata-core installed alone: the storage plugins of this repository may be installed here.
    import pluggy

    core_alone = pluggy.PluginManager("atdata")
    core_alone.add_hookspecs(hookspecs)
    core_alone.register(builtin_plugin, name="builtin")
    registry = build_registry(core_alone, Config({}))
    with pytest.raises(MissingImplementation, match="pip install atdata-storage-s3"):
        registry.storage.for_url("s3://bucket/key.tar")
    with pytest.raises(MissingImplementation, match="pip install atdata-storage-s3"):
        registry.storage.for_record_type("science.alt.dataset.storageS3")
    with pytest.raises(MissingImplementation, match="pip install atdata-storage-blob"):
        registry.storage.for_record({"$type": "science.alt.dataset.storageBlobs", "blobs": []})
    with pytest.raises(MissingImplementation, match="pip install atdata-schema-protobuf"):
        registry.schema_formats.for_schema_type("protobuf")
    with pytest.raises(MissingImplementation, match="pip install atdata-schema-protobuf"):
        registry.schema_formats.for_union_type("science.alt.dataset.protobufFormat")
    with pytest.raises(MissingImplementation, match="pip install atdata-index-appview"):
        registry.index_providers.named("appview")
    with pytest.raises(MissingImplementation, match=r"no storage backend .*nope:// URLs.*registered: .*https://"):
        storage_backend("nope://x")
    # It is a StorageError too, so storage callers catch it without knowing about plugins.
    with pytest.raises(StorageError):
        storage_backend("nope://x")


def test_a_factory_is_imported_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_backend_for_test.py").write_text(
        textwrap.dedent(
            """
            class LazyStorage:
                def __init__(self, config):
                    self.config = config
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = StoragePlugin(
        StorageBackendSpec(name="lazy", schemes=("lazy",), factory="lazy_backend_for_test:LazyStorage"),
        StorageBackendSpec(
            name="broken",
            schemes=("broken",),
            factory="no_such_module_anywhere:Storage",
            install_hint="Install it with: pip install 'broken-extra[all]'",
        ),
    )
    with plugin_registered(plugin, name="lazy-plugin"):
        get_registry().storage.specs()
        assert "lazy_backend_for_test" not in sys.modules
        assert type(storage_backend("lazy://x")).__name__ == "LazyStorage"
        assert "lazy_backend_for_test" in sys.modules
        with pytest.raises(PluginLoadError) as caught:
            storage_backend("broken://x")
        message = str(caught.value)
        assert "'broken'" in message and "plugin 'lazy-plugin'" in message
        assert "no_such_module_anywhere" in message
        assert "pip install 'broken-extra[all]'" in message


def test_a_factory_that_raises_is_reported_with_its_plugin():
    def explode(config):
        raise RuntimeError("no credentials")

    plugin = StoragePlugin(StorageBackendSpec(name="boom", schemes=("boom",), factory=explode))
    with plugin_registered(plugin, name="boom-plugin"):
        with pytest.raises(PluginLoadError, match="'boom' from plugin 'boom-plugin' failed to start: RuntimeError: no credentials"):
            storage_backend("boom://x")


def test_a_hook_that_raises_or_returns_junk_is_skipped_with_a_warning():
    class Raises:
        @hookimpl
        def atdata_storage_backends(self):
            raise ValueError("bad plugin")

    class Junk:
        @hookimpl
        def atdata_storage_backends(self):
            return [SchemaFormatSpec(name="wrong-kind", factory=make("x")), "nonsense"]

    with plugin_registered(Raises(), name="raises"), plugin_registered(Junk(), name="junk"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            registry = get_registry()
        texts = [str(w.message) for w in caught]
        assert any("plugin 'raises': atdata_storage_backends() raised ValueError: bad plugin" in t for t in texts)
        assert any("plugin 'junk'" in t and "SchemaFormatSpec" in t for t in texts)
        assert len(registry.hook_errors) == 3
        assert plugin_problems() == registry.hook_errors
        # the built-ins still work
        assert isinstance(storage_backend("/x.tar"), FileStorage)


def test_descriptors_validate_their_fields():
    with pytest.raises(ValueError, match="module:attribute"):
        StorageBackendSpec(name="x", factory="no_colon_here")
    with pytest.raises(ValueError, match="non-empty"):
        StorageBackendSpec(name="", factory=make("x"))
    spec = StorageBackendSpec(name="x", schemes="S3://", record_types="a.b.c", factory=make("x"))
    assert spec.schemes == ("s3",)
    assert spec.record_types == ("a.b.c",)
    with pytest.raises(Exception):
        spec.name = "y"  # frozen


def test_schema_formats_by_schema_type_union_type_and_record():
    class Formats:
        @hookimpl
        def atdata_schema_formats(self):
            return [
                SchemaFormatSpec(
                    name="toy",
                    schema_types=("toySchema",),
                    union_types=("com.example.schema#toyFormat",),
                    factory=make("toy"),
                )
            ]

    with plugin_registered(Formats(), name="formats"):
        assert schema_format("toySchema").label == "toy"
        assert schema_format(union_type="com.example.schema#toyFormat").label == "toy"
        registry = get_registry().schema_formats
        record = {"schemaType": "somethingElse", "schema": {"$type": "com.example.schema#toyFormat"}}
        assert registry.for_record(record).label == "toy"
        assert registry.for_record({"schemaType": "toySchema", "schema": {}}).label == "toy"
        with pytest.raises(MissingImplementation, match="unknownFormat"):
            registry.for_record({"schemaType": "unknownFormat", "schema": {"$type": "x.y#z"}})
    with pytest.raises(TypeError, match="exactly one"):
        schema_format("a", name="b")


def test_index_providers_by_name_and_configured_default():
    class Indexes:
        @hookimpl
        def atdata_index_providers(self):
            return [IndexProviderSpec(name="alpha", factory=make("alpha")), IndexProviderSpec(name="beta", factory=make("beta"))]

    with plugin_registered(Indexes(), name="indexes"):
        assert index_provider("beta").label == "beta"
        manager = get_plugin_manager()
        configured = build_registry(manager, Config({"index": {"default": "beta"}}))
        assert configured.index_providers.default().label == "beta"
        unconfigured = build_registry(manager, Config({}))
        if not any(spec.plugin == "builtin" for spec in unconfigured.index_providers.specs()):
            with pytest.raises(MissingImplementation, match="set \\[index\\] default .*alpha, beta"):
                unconfigured.index_providers.default()
        with pytest.raises(MissingImplementation, match="gamma"):
            build_registry(manager, Config({"index": {"default": "gamma"}})).index_providers.default()


def test_lens_executors_by_name_and_language():
    class Executors:
        @hookimpl
        def atdata_lens_executors(self):
            return [LensExecutorSpec(name="toy-exec", languages=("ToyLang",), factory=make("toy-exec"))]

    with plugin_registered(Executors(), name="executors"):
        assert lens_executor(language="toylang").label == "toy-exec"
        assert lens_executor("toy-exec").label == "toy-exec"
        with pytest.raises(MissingImplementation, match="language 'cobol'"):
            lens_executor(language="COBOL")


def test_configure_hook_receives_the_configuration():
    seen = []

    class Configured:
        @hookimpl
        def atdata_configure(self, config):
            seen.append(config)

    with plugin_registered(Configured(), name="configured"):
        assert len(seen) == 1
        assert isinstance(seen[0], Config)
        assert seen[0].get("plc.url")


def test_cli_commands_are_collected_from_plugins():
    import click

    @click.command("hello-plugin")
    def hello():
        """Say hello."""

    class Commands:
        @hookimpl
        def atdata_cli_commands(self):
            return [hello]

    with plugin_registered(Commands(), name="commands"):
        assert hello in cli_commands()
    assert hello not in cli_commands()


def test_builtin_index_and_lens_executor_are_registered(tmp_path):
    manager = get_plugin_manager()
    config = Config({"index": {"default": "sqlite", "sqlite_path": str(tmp_path / "catalog.sqlite")}})
    registry = build_registry(manager, config)
    index = registry.index_providers.default()
    assert type(index).__name__ == "SqliteIndex"
    assert index.path == str(tmp_path / "catalog.sqlite")
    assert type(registry.lens_executors.for_language("Python")).__name__ == "PythonLensExecutor"
    assert {spec.plugin for spec in registry.lens_executors.specs() if spec.name == "python"} == {"builtin"}


def test_an_implementation_receives_typed_settings_from_its_section(monkeypatch):
    import attrs

    from atdata_core.errors import ConfigError
    from atdata_core.plugins import reset_plugins

    @attrs.frozen
    class ZipSettings:
        compression: str = attrs.field(default="stored", validator=attrs.validators.in_(["stored", "deflated"]))
        level: int = 6
        fast: bool = False
        folders: tuple[str, ...] = ()

    received = []

    def factory(settings):
        received.append(settings)
        return Thing(settings, "zip")

    class Zip:
        @hookimpl
        def atdata_storage_backends(self):
            return [StorageBackendSpec(name="zip", schemes=("zip",), factory=factory, settings=ZipSettings,
                                       section="zipstore")]

    monkeypatch.setenv("ATDATA_ZIPSTORE_LEVEL", "9")
    monkeypatch.setenv("ATDATA_ZIPSTORE_FAST", "yes")
    monkeypatch.setenv("ATDATA_ZIPSTORE_FOLDERS", "a, b")
    reset_plugins()
    with plugin_registered(Zip(), name="zipstore"):
        storage_backend("zip://archive/x.tar")
    assert received == [ZipSettings(level=9, fast=True, folders=("a", "b"))]

    # A value the settings refuse: an error naming the variable when the backend is used,
    # a problem listed by `atdata plugins`, and every other backend keeps working.
    monkeypatch.setenv("ATDATA_ZIPSTORE_COMPRESSION", "zstd")
    monkeypatch.setenv("ATDATA_ZIPSTORE_LEVEL", "high")
    reset_plugins()
    with plugin_registered(Zip(), name="zipstore"):
        assert type(storage_backend("/tmp/x.tar")).__name__ == "FileStorage"
        with pytest.raises(ConfigError, match="ATDATA_ZIPSTORE_LEVEL: zipstore.level should be an integer"):
            storage_backend("zip://archive/x.tar")
        assert any("zipstore.level" in problem for problem in plugin_problems())
    monkeypatch.delenv("ATDATA_ZIPSTORE_LEVEL")
    reset_plugins()
    with plugin_registered(Zip(), name="zipstore"):
        with pytest.raises(ConfigError, match="ATDATA_ZIPSTORE_COMPRESSION"):
            storage_backend("zip://archive/x.tar")
    monkeypatch.setenv("ATDATA_ZIPSTORE_COMPRESSION", "stored")
    monkeypatch.setenv("ATDATA_ZIPSTORE_RETREIS", "3")
    reset_plugins()
    with plugin_registered(Zip(), name="zipstore"):
        with pytest.raises(ConfigError, match="unknown setting zipstore.retreis"):
            storage_backend("zip://archive/x.tar")
    reset_plugins()
