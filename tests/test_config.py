"""Layered configuration: defaults < user file < project file < environment < arguments."""

from __future__ import annotations

import pytest

from atdata_core.config import Config, config_dir, load_config, project_config_path, user_config_path
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
