"""Fixtures of the Ray plugin's tests: one Ray instance for the session, a configuration per test.

``ray.init`` takes seconds and ``ray.shutdown`` more than one, so every test
shares one instance: two CPUs, a 256 MiB object store, its files in a
temporary folder (not ``/tmp/ray``), no dashboard, its node addressed as
127.0.0.1, and token authentication with a token given in the environment
(nothing written to ``~/.ray``). Ray's gRPC servers still listen on every
interface (Ray 2.60 has no setting for that); the token is what keeps others out. Its worker processes inherit the environment of that moment:
a configuration folder of their own and none of the user's ``ATDATA_*``
settings. A test that needs workers to see a setting passes it through
``ray_remote_args={"runtime_env": {"env_vars": ...}}``, as a user would.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from atdata_core.plugins import Client, reset_plugins

# Ray reads its authentication mode when it is imported, so it is set before any test module
# imports ray: a token of this process's own, given in the environment (nothing written to ~/.ray).
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray", reason="ray is not installed for this Python (see atdata-ray's pyproject.toml)")
    # short: Ray's unix socket paths below it must stay within 107 characters
    temp = tempfile.mkdtemp(prefix="atray-")
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if name.startswith("ATDATA_")]:
            env.delenv(name)
        env.setenv("XDG_CONFIG_HOME", os.path.join(temp, "config"))
        env.setenv("ATDATA_SANDBOX_STATE", os.path.join(temp, "no-sandbox"))
        ray.init(
            num_cpus=2,
            object_store_memory=256 * 1024 * 1024,
            _temp_dir=temp,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
    # the environment is this process's own again: only Ray's processes keep the one above
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


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
    allowed by the network policy (records name them, and they are on loopback).

    ``federation.sandbox`` is the sandbox; ``federation.worker_env`` the same settings for
    Ray workers (a ``runtime_env``'s ``env_vars``)."""
    hosts = ",".join(sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)}))
    settings = {"ATDATA_PLC_URL": pds_sandbox.plc_url, "ATDATA_NETWORK_ALLOW_HOSTS": hosts}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    reset_plugins()
    return SimpleNamespace(sandbox=pds_sandbox, worker_env=dict(settings))


@pytest.fixture
def login(federation, make_account):
    """``login(name)``: a fresh sandbox account, logged in with its session saved."""

    def make(name: str):
        account = make_account(name)
        client = Client.login(account.handle, account.password, pds_url=account.pds_url)
        return account, client

    return make
