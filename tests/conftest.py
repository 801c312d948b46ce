"""Fixtures shared by the core's tests."""

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture(autouse=True)
def _no_user_sandbox(tmp_path_factory, monkeypatch):
    """A sandbox the user started (``atdata sandbox up``) configures their shells, not the tests."""
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    monkeypatch.delenv("ATDATA_SANDBOX_PDS_URL", raising=False)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _ShardServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # readers that stop early close connections mid-shard


@pytest.fixture
def shard_server(tmp_path):
    """An HTTP server on loopback serving a temporary folder: ``(folder, base_url)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = _ShardServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    # serve_forever() checks for shutdown() once per poll interval (0.5 s by default):
    # every test using the server would wait that long in teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
