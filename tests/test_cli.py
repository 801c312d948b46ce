"""The ``atdata`` command: plugins, inspect, preview and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import atdata_core
from atdata_core.cli import cli
from atdata_core.shards import ShardWriter


@atdata_core.packable
class Row:
    image: np.ndarray
    label: str


@pytest.fixture
def shards(tmp_path):
    with ShardWriter(tmp_path / "rows-%03d.tar", maxcount=4) as sink:
        for i in range(10):
            sink.write(Row(np.full((2, 2), i, np.uint8), f"row-{i}"))
    return tmp_path, sink.shards


def test_inspect_reports_counts_checksums_and_fields(shards):
    folder, infos = shards
    result = CliRunner().invoke(cli, ["inspect", str(folder / "rows-{000..002}.tar"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["samples"] == 10
    assert [s["samples"] for s in report["shards"]] == [4, 4, 2]
    assert [s["sha256"] for s in report["shards"]] == [i.sha256 for i in infos]
    assert report["fields"] == {"image": ["ndarray |u1 (2, 2)"], "label": ["str"]}


def test_inspect_fails_with_exit_1_on_a_truncated_shard(shards):
    folder, infos = shards
    data = open(infos[0].url, "rb").read()
    (folder / "cut.tar").write_bytes(data[:1500])
    result = CliRunner().invoke(cli, ["inspect", str(folder / "cut.tar")])
    assert result.exit_code == 1
    assert "cut.tar" in result.output and "truncated" in result.output


def test_inspect_of_a_missing_shard_exits_1(tmp_path):
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "nope.tar")])
    assert result.exit_code == 1
    assert "nope.tar" in result.output


def test_preview_shows_the_first_samples(shards):
    folder, _ = shards
    result = CliRunner().invoke(cli, ["preview", str(folder / "rows-000.tar"), "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "sample 2" in result.output and "sample 3" not in result.output
    assert "label: 'row-1'" in result.output
    assert "ndarray(dtype=uint8, shape=(2, 2), min=1, max=1)" in result.output


def test_plugins_lists_the_builtin_plugin_and_its_hooks():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    output = json.loads(result.output)
    report = {p["name"]: p for p in output["plugins"]}
    assert report["builtin"]["status"] == "loaded"
    assert report["builtin"]["distribution"] == "atdata-core"
    assert "atdata_storage_backends" in report["builtin"]["hooks"]
    # What it registered, by the keys the core selects on.
    provides = report["builtin"]["provides"]
    assert "storage backend 'file': schemes file://, plain paths" in provides
    assert any(line.startswith("storage backend 'http': schemes http://, https://; record types science.alt.dataset.storageHttp")
               for line in provides)
    assert "index provider 'pds'" in provides
    assert output["problems"] == []


def test_console_script_runs_and_usage_errors_exit_2():
    result = subprocess.run([sys.executable, "-m", "atdata_core.cli", "inspect"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Missing argument" in result.stderr
