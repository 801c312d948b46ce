"""Layered configuration: defaults < user file < project file < environment < arguments."""

from __future__ import annotations

import pytest

import logging

from atdata_core.config import (
    AtprotoSettings,
    Config,
    HttpSettings,
    config_dir,
    load_config,
    project_config_path,
    user_config_path,
    user_dir,
)
from atdata_core.errors import ConfigError


@pytest.fixture
def layout(tmp_path):
    """A user config dir and a project tree, with an environment pointing at them."""
    xdg = tmp_path / "xdg"
    (xdg / "atdata").mkdir(parents=True)
    project = tmp_path / "project"
    (project / "sub" / "deeper").mkdir(parents=True)
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path / "home")}
    return xdg / "atdata" / "config.toml", project, env


def test_defaults_apply_with_no_files(layout):
    _user, project, env = layout
    config = load_config(cwd=project, environ=env)
    assert config.get("plc.url") == "https://plc.directory"
    assert config.get_int("http.retries") == 5
    assert config.get("index.sqlite_path") is None
    assert config.get("index.sqlite_path", "here.sqlite") == "here.sqlite"


def test_each_layer_overrides_the_one_below(layout):
    user, project, env = layout
    user.write_text('[plc]\nurl = "http://user-plc"\n[index]\ndefault = "user-index"\n[http]\nretries = 2\n')
    (project / "atdata.toml").write_text('[index]\ndefault = "project-index"\n[http]\nretries = 3\n')
    env = dict(env, ATDATA_HTTP_RETRIES="4")

    config = load_config(cwd=project / "sub" / "deeper", environ=env)
    assert config.get("plc.url") == "http://user-plc"  # only the user file sets it
    assert config.get("index.default") == "project-index"  # project beats user
    assert config.get_int("http.retries") == 4  # environment beats files
    assert config.source("http.retries") == "environment variable ATDATA_HTTP_RETRIES"
    assert config.source("index.default") == str(project / "atdata.toml")

    config = load_config({"http.retries": 9, "index": {"default": "arg-index"}}, cwd=project, environ=env)
    assert config.get("http.retries") == 9  # arguments beat everything
    assert config.get("index.default") == "arg-index"
    assert config.get("plc.url") == "http://user-plc"  # untouched keys survive a nested override


def test_environment_names_split_at_the_first_underscore(layout):
    _user, project, env = layout
    env = dict(env, ATDATA_PLC_URL="http://localhost:2582", ATDATA_HTTP_MAX_RETRIES="7", ATDATA_INDEX_DEFAULT="appview")
    config = load_config(cwd=project, environ=env)
    assert config.get("plc.url") == "http://localhost:2582"
    assert config.get("http.max_retries") == "7"
    assert config.get_int("http.max_retries") == 7
    assert config.get("index.default") == "appview"


def test_atdata_config_points_at_another_user_file(layout, tmp_path):
    _user, project, env = layout
    other = tmp_path / "elsewhere.toml"
    other.write_text('[plc]\nurl = "http://elsewhere"\n')
    config = load_config(cwd=project, environ=dict(env, ATDATA_CONFIG=str(other)))
    assert config.get("plc.url") == "http://elsewhere"
    with pytest.raises(ConfigError, match="ATDATA_CONFIG points at"):
        load_config(cwd=project, environ=dict(env, ATDATA_CONFIG=str(tmp_path / "missing.toml")))


def test_malformed_toml_names_the_file_and_line(layout):
    _user, project, env = layout
    bad = project / "atdata.toml"
    bad.write_text('[index]\ndefault = "ok"\nretries = = 3\n')
    with pytest.raises(ConfigError) as caught:
        load_config(cwd=project, environ=env)
    assert str(bad) in str(caught.value)
    assert "line 3" in str(caught.value)


def test_typed_getters_convert_environment_strings_and_name_bad_values(layout):
    _user, project, env = layout
    env = dict(env, ATDATA_HTTP_RETRIES="many", ATDATA_PLUGINS_DENY="a, b ,,c", ATDATA_X_FLAG="yes")
    config = load_config(cwd=project, environ=env)
    assert config.get_list("plugins.deny") == ["a", "b", "c"]
    assert config.get_list("plugins.allow") == []
    assert config.get_bool("x.flag") is True
    with pytest.raises(ConfigError, match="ATDATA_HTTP_RETRIES.*integer"):
        config.get_int("http.retries")


def test_wrong_types_in_files_are_refused_with_their_source(layout):
    _user, project, env = layout
    (project / "atdata.toml").write_text("[plugins]\nallow = 3\n[http]\ntimeout = true\n")
    config = load_config(cwd=project, environ=env)
    with pytest.raises(ConfigError, match="atdata.toml: plugins.allow should be a list"):
        config.get_list("plugins.allow")
    with pytest.raises(ConfigError, match="http.timeout should be a number"):
        config.get_float("http.timeout")


def test_paths(layout, monkeypatch, tmp_path):
    user, project, env = layout
    monkeypatch.setenv("XDG_CONFIG_HOME", env["XDG_CONFIG_HOME"])
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    assert config_dir() == user.parent
    assert user_config_path() == user
    assert project_config_path(project) is None
    (project / "atdata.toml").write_text("")
    assert project_config_path(project / "sub" / "deeper") == project / "atdata.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "atdata"


def test_config_object_reads_nested_tables():
    config = Config({"storage": {"select": {"https": "fast"}}})
    assert config.get("storage.select.https") == "fast"
    assert config.section("storage.select") == {"https": "fast"}
    assert config.section("nothing") == {}
    assert "storage.select" in config
    assert "storage.nothing" not in config
    assert config.merged({"storage.select.http": "slow"}).get("storage.select") == {"https": "fast", "http": "slow"}


def test_values_given_in_code_say_so():
    config = Config({"zip": {"level": 5}})
    assert config.source("zip.level") == "set in code"
    assert config.source("zip.other") == "set in code"  # the table was set in code
    assert config.source("http.retries") == "built-in defaults"
    assert config.merged({"zip.level": 9}).source("zip.level") == "arguments"


def test_user_folders_follow_the_xdg_variables(tmp_path):
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "c"),
        "XDG_CACHE_HOME": str(tmp_path / "k"),
        "XDG_STATE_HOME": str(tmp_path / "s"),
    }
    assert user_dir("config", environ=env) == tmp_path / "c" / "atdata"
    assert user_dir("cache", environ=env) == tmp_path / "k" / "atdata"
    assert user_dir("state", environ=env) == tmp_path / "s" / "atdata"
    home_only = {"HOME": str(tmp_path / "home")}
    assert user_dir("config", environ=home_only) == tmp_path / "home" / ".config" / "atdata"
    with pytest.raises(ValueError, match="config, cache, state"):
        user_dir("data", environ=env)


def test_the_sandbox_keeps_its_cache_and_state_in_the_user_folders(tmp_path, monkeypatch):
    from atdata_core.sandbox import cache_root, default_state_dir

    for name in ("ATDATA_SANDBOX_CACHE", "ATDATA_SANDBOX_STATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "k"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "s"))
    assert cache_root() == tmp_path / "k" / "atdata" / "sandbox"
    assert default_state_dir() == tmp_path / "s" / "atdata" / "sandbox"


def test_http_settings_come_from_the_configuration(layout):
    _user, project, env = layout
    config = load_config(cwd=project, environ=dict(env, ATDATA_HTTP_RETRIES="2", ATDATA_HTTP_DEADLINE="30"))
    settings = HttpSettings.from_config(config)
    assert (settings.retries, settings.backoff, settings.deadline) == (2, 0.5, 30.0)
    assert HttpSettings.from_config(config, retries=7).retries == 7


@pytest.mark.parametrize(
    "variable, value",
    [
        ("ATDATA_HTTP_TIMEOUT", "0"),
        ("ATDATA_HTTP_TIMEOUT", "-5"),
        ("ATDATA_HTTP_TIMEOUT", "nan"),
        ("ATDATA_HTTP_BACKOFF", "-1"),
        ("ATDATA_HTTP_RETRIES", "-1"),
        ("ATDATA_HTTP_DEADLINE", "inf"),
        ("ATDATA_HTTP_MAX_RATE_WAIT", "soon"),
    ],
)
def test_invalid_http_numbers_are_refused_naming_the_variable(layout, variable, value):
    _user, project, env = layout
    config = load_config(cwd=project, environ=dict(env, **{variable: value}))
    with pytest.raises(ConfigError, match=f"environment variable {variable}: http\\.") as caught:
        HttpSettings.from_config(config)
    assert "should be" in str(caught.value)


def test_an_invalid_http_setting_stops_the_client_and_storage_before_any_request(monkeypatch, tmp_path):
    from atdata_core.atproto import Client
    from atdata_core.storage.http import HttpStorage

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_HTTP_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="ATDATA_HTTP_TIMEOUT: http.timeout should be a finite number > 0"):
        Client.anonymous("http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="ATDATA_HTTP_TIMEOUT"):
        HttpStorage.from_config(load_config())
    with pytest.raises(ConfigError, match="set in code: http.backoff"):
        HttpSettings(backoff=-1.0)


def test_atproto_settings_read_plc_resolvers_and_the_sandbox(layout):
    _user, project, env = layout
    env = dict(
        env,
        ATDATA_PLC_URL="http://localhost:2582/",
        ATDATA_ATPROTO_RESOLVER="https://a.example, https://b.example/",
        ATDATA_SANDBOX_PDS_URL="http://localhost:2583",
    )
    settings = AtprotoSettings.from_config(load_config(cwd=project, environ=env))
    assert settings.plc_url == "http://localhost:2582"
    assert settings.resolvers == ("https://a.example", "https://b.example")
    assert (settings.sandbox_pds_url, settings.sandbox_handle_domain) == ("http://localhost:2583", ".test")
    assert settings.blob_limit == 5 * 1024 * 1024
    with pytest.raises(ConfigError, match="ATDATA_PLC_URL: plc.url should be an http"):
        AtprotoSettings.from_config(load_config(cwd=project, environ=dict(env, ATDATA_PLC_URL="plc.directory")))


def test_unknown_keys_of_core_sections_are_reported_once_when_loaded(layout, caplog):
    user, project, env = layout
    user.write_text('[http]\nretrys = 3\n[plugins]\ndeny = []\n')
    with caplog.at_level(logging.WARNING, logger="atdata_core"):
        load_config(cwd=project, environ=env)
        load_config(cwd=project, environ=env)
    messages = [record.getMessage() for record in caplog.records if record.name == "atdata_core"]
    assert len(messages) == 1, messages
    assert str(user) in messages[0] and "unknown configuration key http.retrys" in messages[0]
    assert "retries" in messages[0]  # what the section does take


def test_sections_nobody_reads_are_reported_once_with_their_source(layout, caplog):
    user, project, env = layout
    user.write_text('[htpp]\nretries = 3\n[zipstore]\nlevel = 3\n')
    config = load_config(cwd=project, environ=dict(env, ATDATA_ZIPSTOR_LEVEL="1"))
    with caplog.at_level(logging.WARNING, logger="atdata_core"):
        assert sorted(config.report_unknown_sections(["zipstore"])) == ["htpp", "zipstor"]
        config.report_unknown_sections(["zipstore"])
    messages = [r.getMessage() for r in caplog.records if r.name == "atdata_core"]
    assert len(messages) == 2, messages
    env_message, file_message = sorted(messages, key=lambda m: not m.startswith("environment"))
    assert env_message == (
        "environment variable ATDATA_ZIPSTOR_LEVEL: unknown configuration section [zipstor]: neither the core "
        "nor an installed plugin reads it (`atdata plugins` lists each implementation's section)"
    )
    assert file_message.startswith(f"{user}: unknown configuration section [htpp]")


def test_the_plugin_registry_reports_sections_no_plugin_reads(tmp_path, monkeypatch, caplog):
    from atdata_core.plugins import StorageBackendSpec, get_registry, hookimpl, plugin_registered, reset_plugins

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATDATA_ZIPSTORE_COMPRESSION", "zstd")  # read by the plugin below
    monkeypatch.setenv("ATDATA_ZIPSTOER_LEVEL", "1")  # a typo nobody reads

    class ZipStore:
        @hookimpl
        def atdata_storage_backends(self):
            return [StorageBackendSpec(name="zip", schemes=("zip",), factory=lambda config: None, section="zipstore")]

    reset_plugins()
    try:
        with caplog.at_level(logging.WARNING, logger="atdata_core"), plugin_registered(ZipStore()):
            get_registry()
    finally:
        reset_plugins()
    unknown = [r.getMessage() for r in caplog.records if "unknown configuration" in r.getMessage()]
    assert len(unknown) == 1 and "ATDATA_ZIPSTOER_LEVEL: unknown configuration section [zipstoer]" in unknown[0]
