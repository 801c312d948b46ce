"""Fixtures shared by the core's tests."""

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

ALLOW_HOSTS = "ATDATA_NETWORK_ALLOW_HOSTS"


def _allow_hosts(monkeypatch, *entries: str) -> None:
    current = [item for item in os.environ.get(ALLOW_HOSTS, "").split(",") if item]
    monkeypatch.setenv(ALLOW_HOSTS, ",".join(dict.fromkeys([*current, *entries])))


@pytest.fixture
def allow_hosts(monkeypatch):
    """``allow_hosts("127.0.0.1:8080", ...)`` lets records name these loopback servers for this test
    (``[network] allow_hosts``), keeping the entries already there (the sandbox's). Records naming any
    other private address stay refused: the network policy is on in every test."""
    return functools.partial(_allow_hosts, monkeypatch)


@pytest.fixture(autouse=True)
def _no_user_sandbox(tmp_path_factory, monkeypatch):
    """A sandbox the user started (``atdata sandbox up``) configures their shells, not the tests."""
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    monkeypatch.delenv("ATDATA_SANDBOX_PDS_URL", raising=False)
    # the files verified in tests are remembered here, not in the user's cache
    verified = tmp_path_factory.getbasetemp() / "verified"
    monkeypatch.setattr("atdata_core._verified.verified_dir", lambda: verified)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _ShardServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # readers that stop early close connections mid-shard


@pytest.fixture
def shard_server(tmp_path, monkeypatch):
    """An HTTP server on loopback serving a temporary folder: ``(folder, base_url)``.

    Records published by the test may name its shards: its address is allowed
    by ``[network] allow_hosts`` for the test (a loopback server is refused to
    records otherwise).
    """
    folder = tmp_path / "served"
    folder.mkdir()
    server = _ShardServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    # serve_forever() checks for shutdown() once per poll interval (0.5 s by default):
    # every test using the server would wait that long in teardown.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    _allow_hosts(monkeypatch, f"127.0.0.1:{server.server_address[1]}")
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
