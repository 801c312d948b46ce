"""The settings of the built-in Python lens executor, built from the ``[lens]`` configuration section.

::

    [lens]
    trusted_dids = ["did:plc:abc..."]            # authors and verifiers whose lenses may run
    pinned_commits = ["https://github.com/me/lenses@3f2a9c1d..."]   # commits you reviewed
    require_verified_commit = true               # refuse installed code whose commit cannot be checked
    allow_working_directory = false              # never run lens code found in the folder you are in

The built-in plugin's factory reads these keys and passes the settings to
:class:`~atdata_core.executors.PythonLensExecutor`; the executor never looks
at the configuration itself.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from atdata_core.errors import ConfigError

__all__ = ["PythonExecutorSettings"]

_HEX = re.compile(r"^[0-9a-fA-F]{7,64}$")


def _check_dids(instance: Any, attribute: attrs.Attribute, value: frozenset[str]) -> None:
    for did in value:
        if not isinstance(did, str) or not did.startswith("did:"):
            raise ConfigError(f"[lens] trusted_dids lists {did!r}, which is not a DID; write it as did:plc:... or did:web:...")


def _check_pins(instance: Any, attribute: attrs.Attribute, value: frozenset[str]) -> None:
    for entry in value:
        commit = entry.rpartition("@")[2] if isinstance(entry, str) else None
        if commit is None or not _HEX.match(commit):
            raise ConfigError(
                f"[lens] pinned_commits lists {entry!r}; write '<repository>@<commit>' (or a bare commit), "
                "the commit as 7 to 64 hexadecimal digits"
            )


@attrs.frozen
class PythonExecutorSettings:
    """What the built-in Python lens executor may run.

    ``trusted_dids``: DIDs whose lenses may run: lens records they wrote, and
    lenses their ``lensVerification`` records vouch for (code hash and lens
    version). ``pinned_commits``: ``"<repository>@<commit>"`` strings (or bare
    commits, in full) you reviewed; installed code at such a commit may run.
    Installed code needs one of these (or the lens passed explicitly); remote
    code, when fetching it exists, will need both a trusted author and a
    pinned commit. ``require_verified_commit``: refuse installed code whose
    commit cannot be checked (not a git checkout, not a VCS install) instead
    of running it with an "unverified" provenance note.
    ``allow_working_directory``: let lens code be found in the current working
    directory when it is on ``sys.path`` (``python -m``, ``python -c``, a
    script run from there, pytest's ``pythonpath = ["."]``). Off by default: the
    files of the folder you are in were not installed as lens code, and a
    record naming ``train.py:main`` must not run your training script.
    """

    trusted_dids: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset, validator=_check_dids)
    pinned_commits: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset, validator=_check_pins)
    require_verified_commit: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    allow_working_directory: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
