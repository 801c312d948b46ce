"""Fixtures of the blob plugin's tests: a configuration of their own, and the local PDS sandbox.

The sandbox fixtures (``pds_sandbox``, ``make_account``) come from the core's
pytest plugin, loaded by the repository's conftest or by this distribution's
pytest settings when its tests run alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from atdata_core.plugins import Client, reset_plugins


@pytest.fixture(autouse=True)
def own_configuration(tmp_path, tmp_path_factory, monkeypatch):
    """A user folder per test; no sandbox, resolver or publish default from the user's shell."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    for name in ("ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_PASSWORD",
                 "ATDATA_PUBLISH_STORAGE", "ATDATA_PLUGINS_ALLOW", "ATDATA_PLUGINS_DENY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    monkeypatch.chdir(tmp_path)
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def federation(pds_sandbox, monkeypatch):
    """This machine on the local federation: the sandbox's PLC directory, and its two hosts
    allowed by the network policy (records name them, and they are on loopback)."""
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    hosts = sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts))
    reset_plugins()
    return pds_sandbox


@pytest.fixture
def login(federation, make_account):
    """``login(name)``: a fresh sandbox account, logged in with its session saved (as `atdata login` does)."""

    def make(name: str):
        account = make_account(name)
        client = Client.login(account.handle, account.password, pds_url=account.pds_url)
        return account, client

    return make
