"""Fixtures of the protobuf format's tests: a configuration of their own, the format, protoc, a shard server.

The sandbox fixtures (``pds_sandbox``, ``make_account``) come from the core's
pytest plugin, loaded by the repository's conftest or by this distribution's
pytest settings when its tests run alone.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from atdata_core.plugins import reset_plugins, schema_format

# The sample classes the tests share live beside them (protobuf_samples.py); with
# --import-mode=importlib the tests folder is not on the path by itself.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def own_configuration(tmp_path, tmp_path_factory, monkeypatch):
    """A user folder per test; no sandbox, resolver or plugin lists from the user's shell."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    for name in ("ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_PASSWORD",
                 "ATDATA_PLUGINS_ALLOW", "ATDATA_PLUGINS_DENY", "ATDATA_INDEX_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def fmt():
    """The protobuf format, as the registry gives it."""
    return schema_format("protobuf")


def compile_proto(files: dict[str, str], folder: Path, target: str | None = None) -> tuple[int, str, bytes | None]:
    """Run protoc on ``files`` written below ``folder``: (exit code, messages, FileDescriptorSet bytes).

    ``python -m grpc_tools.protoc`` finds the well-known types (google/protobuf/*.proto) itself.
    """
    for path, text in files.items():
        where = folder / path
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(text, encoding="utf-8")
    out = folder / "descriptor_set.pb"
    target = target or next(p for p in files if not p.startswith("atdata/v1/"))
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{folder}", f"--descriptor_set_out={out}", target],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr, out.read_bytes() if done.returncode == 0 else None


@pytest.fixture
def protoc(tmp_path):
    """``protoc(files)`` compiles a dict of .proto files (path -> text): (exit code, messages, descriptor set)."""
    return functools.partial(compile_proto, folder=tmp_path / "protoc")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def shard_server(tmp_path, monkeypatch):
    """An HTTP server on loopback serving a folder, ``(folder, base_url)``, allowed for records in this test."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    hosts = [h for h in os.environ.get("ATDATA_NETWORK_ALLOW_HOSTS", "").split(",") if h]
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join([*hosts, f"127.0.0.1:{server.server_address[1]}"]))
    reset_plugins()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
