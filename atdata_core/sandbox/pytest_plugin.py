"""pytest fixtures for the local PDS sandbox.

Enable with ``pytest_plugins = ["atdata_core.sandbox.pytest_plugin"]`` in a
conftest.py (or a test module). Fixtures:

- ``pds_sandbox`` (session): a running sandbox in a temporary state folder of
  its own, so it never touches a sandbox the user started. Its value is a
  :class:`~atdata_core.sandbox.SandboxInfo` (``pds_url``, ``plc_url``, ...).
- ``make_account``: a factory; ``make_account("alice")`` creates a fresh account
  with a unique ``.test`` handle and returns a
  :class:`~atdata_core.sandbox.SandboxAccount` (``handle``, ``did``, ``password``,
  ``pds_url``).

While ``pds_sandbox`` runs, ``ATDATA_NETWORK_ALLOW_HOSTS`` also lists its PLC
and PDS (``localhost:<port>``), as ``atdata sandbox up`` does for a shell: the
sandbox's DID documents name its loopback PDS, which the network policy
refuses to records otherwise. Every other loopback address stays refused.

If the sandbox cannot start, the tests that use it fail with the reason; they
are never skipped silently. ``ATDATA_SKIP_PDS=1`` skips them on purpose (never
set it in CI). Tests that use these fixtures get the ``pds`` marker.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets

import pytest

SKIP_VARIABLE = "ATDATA_SKIP_PDS"
_FIXTURES = ("pds_sandbox", "make_account")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pds: needs the local PDS sandbox (Node >= 22, started by the fixture)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in getattr(item, "fixturenames", ()) for name in _FIXTURES):
            item.add_marker(pytest.mark.pds)


@pytest.fixture(scope="session")
def pds_sandbox(tmp_path_factory: pytest.TempPathFactory):
    """A PLC directory and a PDS on loopback for the whole test session."""
    if os.environ.get(SKIP_VARIABLE, "").strip() not in ("", "0"):
        pytest.skip(f"{SKIP_VARIABLE} is set: tests that need the local PDS sandbox are skipped on purpose")
    from atdata_core.errors import SandboxError
    from atdata_core.sandbox import Sandbox

    sandbox = Sandbox(tmp_path_factory.mktemp("pds-sandbox"))
    try:
        # parent_pid: if this pytest process dies without tearing down, the servers exit too.
        info = sandbox.up(parent_pid=os.getpid())
    except SandboxError as e:
        pytest.fail(
            f"the local PDS sandbox could not start (set {SKIP_VARIABLE}=1 to skip these tests on purpose):\n{e}",
            pytrace=False,
        )
    from atdata_core.sandbox._state import sandbox_hosts

    variable = "ATDATA_NETWORK_ALLOW_HOSTS"
    before = os.environ.get(variable)
    os.environ[variable] = ",".join([*filter(None, (before or "").split(",")), *sandbox_hosts(info.plc_url, info.pds_url)])
    try:
        yield info
    finally:
        if before is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = before
        sandbox.down()


_counter = itertools.count(1)


@pytest.fixture
def make_account(pds_sandbox):
    """Factory for fresh accounts: ``make_account(name="user", password=None) -> SandboxAccount``."""
    from atdata_core.sandbox import SandboxAccount, create_account

    def make(name: str = "user", password: str | None = None) -> SandboxAccount:
        # The PDS allows 3-18 characters before the ".test" suffix.
        stem = re.sub(r"[^a-z0-9]", "", name.lower())[:8] or "user"
        handle = f"{stem}{next(_counter)}{secrets.token_hex(2)}.test"
        password = password or secrets.token_urlsafe(12)
        did, handle = create_account(handle, password, pds_url=pds_sandbox.pds_url)
        return SandboxAccount(handle=handle, did=did, password=password, pds_url=pds_sandbox.pds_url)

    return make
