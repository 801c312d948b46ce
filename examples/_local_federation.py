"""A local federation for the examples: a PDS sandbox, fresh accounts, and one user at a time.

When ``ATDATA_SANDBOX_PDS_URL`` and ``ATDATA_PLC_URL`` are set (the variables
``atdata sandbox up`` prints for another shell, and what the tests pass), the
examples use that sandbox; otherwise they start one of their own in a
temporary folder and stop it at the end. Each user gets a configuration
folder of their own, so nothing of yours is read or written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import attrs


@attrs.frozen
class Federation:
    pds_url: str
    plc_url: str
    folder: Path

    def account(self, name: str) -> tuple[str, str]:
        """A new account on the sandbox PDS: ``(handle, password)``, the handle unique per run."""
        from atdata_core.sandbox import create_account

        handle = f"{name[:8]}{secrets.token_hex(3)}.test"
        password = secrets.token_urlsafe(12)
        create_account(handle, password, pds_url=self.pds_url)
        return handle, password

    def become(self, user: str) -> None:
        """Act as ``user`` from now on: their own configuration folder, and nothing cached from before."""
        from atdata_core.atproto import clear_identity_cache
        from atdata_core.plugins import reset_plugins

        os.environ["XDG_CONFIG_HOME"] = str(self.folder / f"{user}-config")
        clear_identity_cache()
        reset_plugins()


@contextlib.contextmanager
def local_federation(*, allow: tuple[str, ...] = ()) -> Iterator[Federation]:
    """The sandbox to use, started here unless the environment names one.

    ``allow`` adds ``host:port`` entries to ``[network] allow_hosts``: servers of
    your own on loopback that records may name.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pds_url = os.environ.get("ATDATA_SANDBOX_PDS_URL")
        plc_url = os.environ.get("ATDATA_PLC_URL")
        sandbox = None
        if not (pds_url and plc_url):
            from atdata_core.sandbox import Sandbox

            print("starting a local PDS and PLC directory (the first run installs them, ~30 s)...")
            sandbox = Sandbox(folder / "sandbox")
            info = sandbox.up()
            pds_url, plc_url = info.pds_url, info.plc_url
        try:
            os.environ["ATDATA_PLC_URL"] = plc_url
            os.environ["ATDATA_SANDBOX_PDS_URL"] = pds_url  # .test handles resolve through it
            # The sandbox's DID documents name its loopback PDS; records may reach it only if allowed.
            hosts = [urlsplit(url).netloc for url in (plc_url, pds_url)] + list(allow)
            before = [h for h in os.environ.get("ATDATA_NETWORK_ALLOW_HOSTS", "").split(",") if h]
            os.environ["ATDATA_NETWORK_ALLOW_HOSTS"] = ",".join(dict.fromkeys([*before, *hosts]))
            yield Federation(pds_url=pds_url, plc_url=plc_url, folder=folder)
        finally:
            if sandbox is not None:
                sandbox.down()
                print("sandbox stopped")
