"""The commands the plugin adds: ``atdata search`` and ``atdata appview serve|backfill``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from click.testing import CliRunner

from atdata_core.plugins import ENTRY_NSID, SCHEMA_NSID, reset_plugins

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.cli import safe_text, search

REPO = "did:plc:appviewtests0000000000000"


def _entry(name, tags=(), description=None):
    record = {"$type": ENTRY_NSID, "name": name, "schemaRef": f"at://{REPO}/{SCHEMA_NSID}/com.example.image:1.0.0",
              "storage": {"$type": "science.alt.dataset.storageHttp", "shards": []}, "tags": list(tags),
              "createdAt": "2025-02-01T00:00:00Z"}
    if description:
        record["description"] = description
    return record


@pytest.fixture
def appview_url(store, make_op, commit, monkeypatch):
    commit(store, [
        make_op(ENTRY_NSID, "3kaaaaaaaaa2a", _entry("mnist-train", ["vision", "digits"], "Handwritten\ndigits")),
        make_op(ENTRY_NSID, "3kbbbbbbbbb2a", _entry("evil\x1b]0;owned\x07 \u202egnp.exe", ["vision"])),
        make_op(ENTRY_NSID, "3kccccccccc2a", _entry("speech", ["audio"])),
    ])
    with serve_in_thread(create_app(store)) as server:
        monkeypatch.setenv("ATDATA_APPVIEW_URL", server.url)
        reset_plugins()
        yield server.url


def test_search_prints_matches_with_record_text_escaped(appview_url):
    result = CliRunner().invoke(search, ["--tag", "vision"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mnist-train  #vision #digits" in result.output
    assert "Handwritten digits" in result.output
    assert "evil\\x1b]0;owned\\x07 \\u202egnp.exe" in result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert "speech" not in result.output


def test_search_text_and_json(appview_url):
    result = CliRunner().invoke(search, ["digits", "--json"], catch_exceptions=False)
    found = json.loads(result.output)
    assert [item["value"]["name"] for item in found] == ["mnist-train"]
    assert found[0]["uri"] == f"at://{REPO}/{ENTRY_NSID}/3kaaaaaaaaa2a"
    assert CliRunner().invoke(search, ["nothing-like-it"]).output.strip() == "no datasets found"


def test_safe_text():
    assert safe_text("plain name") == "plain name"
    assert safe_text("Ünïcödé 数据") == "Ünïcödé 数据"
    assert safe_text("a\rb\x00c\u2028d") == "a\\rb\\x00c\\u2028d"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _atdata(*args: str, **kwargs):
    return subprocess.run([sys.executable, "-m", "atdata_core.cli", *args], capture_output=True, text=True, timeout=120, **kwargs)


def test_the_commands_are_on_the_atdata_cli():
    listed = _atdata("--help")
    assert listed.returncode == 0, listed.stderr
    assert "appview" in listed.stdout and "search" in listed.stdout
    assert "serve" in _atdata("appview", "--help").stdout


def test_search_without_an_appview_configured_says_what_to_set():
    result = _atdata("search", "mnist")
    assert result.returncode == 1
    assert "[appview] url" in result.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_answers_queries_and_stops_on_a_signal(tmp_path, stop):
    port = _free_port()
    store = tmp_path / "served.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "atdata_core.cli", "appview", "serve", "--store", f"sqlite:///{store}", "--port", str(port),
         "--no-ingest"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/xrpc/_health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.1)
        assert health.json()["store"] == "ok"
        described = httpx.get(f"http://127.0.0.1:{port}/xrpc/science.alt.dataset.describeService").json()
        assert described["did"] == f"did:web:127.0.0.1%3A{port}"
        assert described["recordCount"][ENTRY_NSID] == 0
    finally:
        os.kill(process.pid, stop)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert store.exists()
    assert f"XRPC on http://127.0.0.1:{port}/xrpc/" in output
    assert f"web pages on http://127.0.0.1:{port}/ " in output


def test_serve_refuses_a_malformed_store_url():
    result = _atdata("appview", "serve", "--store", "mysql://db/x", "--no-ingest")
    assert result.returncode == 1
    assert "store" in result.stderr and "sqlite" in result.stderr
