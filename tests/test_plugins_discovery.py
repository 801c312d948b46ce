"""Entry-point discovery, load failures and allow / deny lists, in a fresh interpreter.

Each test installs small plugin distributions (a module plus a ``.dist-info``
folder with ``entry_points.txt``) into a temporary folder on ``PYTHONPATH``
and asks a new Python process what it discovered, so nothing is cached
between tests. The ``spy`` plugin writes a marker file when it is imported,
which shows whether a blocked plugin was imported at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

GOOD = '''
from atdata_core.plugins import StorageBackendSpec, hookimpl

class GoodStorage:
    def __init__(self, config):
        self.config = config

@hookimpl
def atdata_storage_backends():
    return [StorageBackendSpec(name="good", schemes=("good",), factory=GoodStorage)]
'''

BROKEN = '''
raise ImportError("needs libfoo, which is not installed")
'''

SPY = '''
import os
from atdata_core.plugins import hookimpl

open(os.environ["SPY_MARKER"], "w").close()

@hookimpl
def atdata_configure(config):
    pass
'''

PROBE = '''
import json, sys, warnings
warnings.simplefilter("always")
from atdata_core.plugins import plugin_report, storage_backend
from atdata_core.errors import MissingImplementation
with warnings.catch_warnings(record=True) as caught:
    report = [
        {"name": i.name, "distribution": i.distribution, "version": i.version,
         "status": i.status, "hooks": list(i.hooks), "error": i.error}
        for i in plugin_report()
    ]
def kind(url):
    try:
        return type(storage_backend(url)).__name__
    except MissingImplementation as err:
        return "missing: " + str(err)
print(json.dumps({
    "report": report,
    "warnings": [str(w.message) for w in caught],
    "good": kind("good://x"),
    "path": kind("/tmp/x.tar"),
}))
'''


def _install(site, module, source, dist, version, entry_name):
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[atdata]\n{entry_name} = {module}\n")


@pytest.fixture
def site(tmp_path):
    folder = tmp_path / "site"
    folder.mkdir()
    _install(folder, "good_plugin_mod", GOOD, "atdata-good", "1.2.3", "good")
    _install(folder, "broken_plugin_mod", BROKEN, "atdata-broken", "0.0.1", "broken")
    _install(folder, "spy_plugin_mod", SPY, "atdata-spy", "2.0", "spy")
    return folder


def discover(tmp_path, site, env_extra=None, project_toml=None):
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    if project_toml is not None:
        (workdir / "atdata.toml").write_text(project_toml)
    marker = tmp_path / "spy-imported"
    if marker.exists():
        marker.unlink()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ATDATA_") and key not in {"PYTHONPATH", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"}
    }
    env.update(
        PYTHONPATH=str(site),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        SPY_MARKER=str(marker),
        **(env_extra or {}),
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    result["by_name"] = {entry["name"]: entry for entry in result["report"]}
    result["spy_imported"] = marker.exists()
    return result


def test_plugins_are_discovered_and_a_broken_one_is_reported_and_skipped(tmp_path, site):
    found = discover(tmp_path, site)
    good = found["by_name"]["good"]
    assert (good["status"], good["distribution"], good["version"]) == ("loaded", "atdata-good", "1.2.3")
    assert good["hooks"] == ["atdata_storage_backends"]
    broken = found["by_name"]["broken"]
    assert (broken["status"], broken["distribution"], broken["version"]) == ("failed", "atdata-broken", "0.0.1")
    assert "needs libfoo" in broken["error"]
    assert any("broken" in w and "needs libfoo" in w for w in found["warnings"])
    assert found["by_name"]["builtin"]["status"] == "loaded"
    assert found["report"][0]["name"] == "builtin"
    assert found["good"] == "GoodStorage"
    assert found["path"] == "FileStorage"
    assert found["spy_imported"]


def test_a_deny_listed_plugin_is_never_imported(tmp_path, site):
    found = discover(tmp_path, site, {"ATDATA_PLUGINS_DENY": "spy,broken"})
    assert not found["spy_imported"]
    assert found["by_name"]["spy"]["status"] == "blocked"
    assert "ATDATA_PLUGINS_DENY" in found["by_name"]["spy"]["error"]
    assert found["by_name"]["broken"]["status"] == "blocked"
    assert not found["warnings"]
    assert found["good"] == "GoodStorage"


def test_deny_by_distribution_name_from_the_project_file(tmp_path, site):
    found = discover(tmp_path, site, project_toml='[plugins]\ndeny = ["atdata-spy"]\n')
    assert not found["spy_imported"]
    assert found["by_name"]["spy"]["status"] == "blocked"
    assert "atdata.toml" in found["by_name"]["spy"]["error"]


def test_an_allow_list_keeps_only_the_named_plugins_and_the_builtins(tmp_path, site):
    found = discover(tmp_path, site, {"ATDATA_PLUGINS_ALLOW": "good"})
    assert not found["spy_imported"]
    assert found["by_name"]["good"]["status"] == "loaded"
    assert found["by_name"]["spy"]["status"] == "blocked"
    assert found["by_name"]["broken"]["status"] == "blocked"
    assert "allow list" in found["by_name"]["broken"]["error"]
    assert found["by_name"]["builtin"]["status"] == "loaded"
    assert found["path"] == "FileStorage"


def test_the_builtins_can_be_denied_deliberately(tmp_path, site):
    found = discover(tmp_path, site, {"ATDATA_PLUGINS_DENY": "builtin"})
    assert found["by_name"]["builtin"]["status"] == "blocked"
    assert found["path"].startswith("missing: no storage backend is registered for plain paths")
    assert "plugin 'builtin' is deny-listed" in found["path"]
    assert found["good"] == "GoodStorage"


def test_a_missing_hint_says_when_the_distribution_is_installed_but_blocked(tmp_path, site):
    # Pretend atdata-storage-s3 is installed (as the spy module) but deny-listed.
    _install(site, "s3_stand_in", SPY, "atdata-storage-s3", "0.1", "s3")
    probe = PROBE.replace('kind("good://x")', 'kind("s3://bucket/key.tar")')
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_")}
    env.update(
        PYTHONPATH=str(site),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        SPY_MARKER=str(tmp_path / "marker"),
        ATDATA_PLUGINS_DENY="s3",
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    message = json.loads(done.stdout)["good"]
    assert "atdata-storage-s3 is installed but its plugin 's3' is deny-listed" in message


CRASHY = '''
from atdata_core.plugins import hookimpl

@hookimpl
def atdata_configure(config):
    raise RuntimeError("bug in the plugin")
'''

STRICT = '''
from atdata_core.errors import ConfigError
from atdata_core.plugins import hookimpl

@hookimpl
def atdata_configure(config):
    if config.get("strict.level") not in (None, "low", "high"):
        raise ConfigError(f"{config.source('strict.level')}: strict.level must be low or high")
'''


def test_a_plugin_that_crashes_in_configure_is_unloaded_and_reported(tmp_path, site):
    _install(site, "crashy_plugin_mod", CRASHY, "atdata-crashy", "0.3", "crashy")
    found = discover(tmp_path, site)
    crashy = found["by_name"]["crashy"]
    assert crashy["status"] == "failed"
    assert crashy["distribution"] == "atdata-crashy"
    assert "atdata_configure raised RuntimeError: bug in the plugin" in crashy["error"]
    assert found["good"] == "GoodStorage"


def test_a_plugin_refusing_the_configuration_is_reported_and_the_rest_keep_working(tmp_path, site):
    _install(site, "strict_plugin_mod", STRICT, "atdata-strict", "1.0", "strict")
    assert discover(tmp_path, site, {"ATDATA_STRICT_LEVEL": "high"})["by_name"]["strict"]["status"] == "loaded"
    found = discover(tmp_path, site, {"ATDATA_STRICT_LEVEL": "extreme"})
    strict = found["by_name"]["strict"]
    assert strict["status"] == "failed"
    assert "environment variable ATDATA_STRICT_LEVEL: strict.level must be low or high" in strict["error"]
    # Everything that does not need that plugin still works.
    assert found["good"] == "GoodStorage"
    assert found["path"] == "FileStorage"


def test_atdata_plugins_still_runs_and_shows_a_refused_configuration(tmp_path, site):
    _install(site, "strict_plugin_mod", STRICT, "atdata-strict", "1.0", "strict")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_")}
    env.update(PYTHONPATH=str(site), XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               SPY_MARKER=str(tmp_path / "marker"), ATDATA_STRICT_LEVEL="extreme")
    (tmp_path / "work").mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "atdata_core.cli", "plugins"], cwd=tmp_path / "work", env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # a failed plugin is reported with exit status 1
    assert "strict" in done.stdout and "failed" in done.stdout
    assert "strict.level must be low or high" in done.stdout
    # What each loaded plugin registered, with the keys it is selected by.
    assert "storage backend 'good': schemes good://" in done.stdout

EXITING = '''
import sys
sys.exit(3)
'''


def test_a_plugin_that_exits_while_importing_is_reported_and_skipped(tmp_path, site):
    _install(site, "exiting_plugin_mod", EXITING, "atdata-exiting", "0.1", "exiting")
    found = discover(tmp_path, site)
    exiting = found["by_name"]["exiting"]
    assert exiting["status"] == "failed"
    assert "SystemExit" in exiting["error"]
    assert found["good"] == "GoodStorage"
    assert found["by_name"]["spy"]["status"] == "loaded"


def test_an_allow_or_deny_list_naming_an_implementation_is_warned_about(tmp_path, site):
    # "good-storage" is not installed: deny-listing it ahead of time is fine and quiet.
    quiet = discover(tmp_path, site, {"ATDATA_PLUGINS_DENY": "good-storage"})
    assert not any("good-storage" in w for w in quiet["warnings"])
    # "file" is the built-in plugin's storage backend, not a plugin: say which plugin name to use.
    found = discover(tmp_path, site, {"ATDATA_PLUGINS_DENY": "file"})
    assert found["path"] == "FileStorage"
    assert any("names 'file', the storage backend that plugin 'builtin' provides" in w for w in found["warnings"])
