"""Checking that installed lens code is the code a reference pins, the strongest way available.

- The module's file lives in a git checkout: the file on disk must be
  byte-identical to that file at the pinned commit (the commit must be in the
  local clone; HEAD may have moved on if the file did not change).
- The module was installed by pip from a VCS URL (PEP 610 ``direct_url.json``):
  the recorded commit must be the pinned one.
- Otherwise (a wheel from an index, a copied folder) the commit cannot be
  checked: the code is used as installed and the note says so, unless
  verification is required.

In a git checkout, the parent packages' ``__init__.py`` files that importing
the module runs are checked the same way; installed from a VCS URL, they must
belong to the same distribution. The modules the code imports are not checked.

Every check reads files, git objects and installed metadata; nothing is
imported, so a refusal comes before any of the code runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from atdata_core.errors import LensExecutionRefused
from atdata_core.lenses import _git

__all__ = ["verify_commit"]


def verify_commit(
    asked: str,
    file: Path,
    module_name: str,
    repository: str,
    commit: str,
    *,
    require_verified: bool,
    parents: tuple[Path, ...] = (),
) -> str:
    """A provenance note saying how ``file`` was checked against ``commit``, or LensExecutionRefused.

    ``asked`` opens every refusal (what the reference asked for). ``parents``:
    the other files importing the module would run (its packages'
    ``__init__.py``), checked alongside it.
    """
    if not commit:
        if require_verified:
            raise LensExecutionRefused(
                f"{asked}. The reference pins no commit and [lens] require_verified_commit is true"
            )
        return f"{file.name}: no commit pinned in the reference; the installed code was used"
    root = _git.checkout_root(file)
    if root is not None:
        note = _verify_in_checkout(asked, file, root, commit)
        for parent in parents:
            if parent != file and _git.checkout_root(parent) == root:
                _verify_in_checkout(asked, parent, root, commit)
        return note

    dist_name, version, vcs_commit, vcs_url, owned = _installed_distribution(file)
    if vcs_commit:
        if not _same_commit(vcs_commit, commit):
            raise LensExecutionRefused(
                f"{asked}. Installed is {dist_name} {version} from {vcs_url} at commit {vcs_commit[:12]}, "
                f"not {commit[:12]}. Install the referenced commit: pip install 'git+{repository}@{commit}'"
            )
        strangers = [parent for parent in parents if parent != file and parent not in owned]
        if strangers and require_verified:
            raise LensExecutionRefused(
                f"{asked}. Importing it also runs {', '.join(map(str, strangers))}, which {dist_name} did not "
                "install, and [lens] require_verified_commit is true"
            )
        return f"{dist_name} {version} was installed from {vcs_url} at commit {vcs_commit[:12]}"
    installed = f"{dist_name} {version}" if dist_name else f"module {module_name} ({file})"
    if require_verified:
        raise LensExecutionRefused(
            f"{asked}. Installed is {installed}, whose commit cannot be checked (not a git checkout, not "
            f"installed from a VCS URL), and [lens] require_verified_commit is true. Install it with "
            f"pip install 'git+{repository}@{commit}' so the commit is recorded"
        )
    return f"{installed}: commit {commit[:12]} not verifiable (no git checkout, no VCS install record); used as installed"


def _verify_in_checkout(asked: str, file: Path, root: Path, commit: str) -> str:
    relpath = file.relative_to(root.resolve()).as_posix()
    try:
        full = _git.resolve_commit(root, commit)
        if full is None:
            raise LensExecutionRefused(
                f"{asked}. The installed module is {relpath} in the git checkout {root} (HEAD {_safe_head(root)}), "
                f"which does not have commit {commit}. Fetch it (git -C {root} fetch) and retry, or "
                f"install the package at that commit"
            )
        wanted = _git.blob_at(root, full, relpath)
        if wanted is None:
            raise LensExecutionRefused(
                f"{asked}. The installed module is {relpath} in the git checkout {root}, but commit "
                f"{full[:12]} has no file {relpath}: the reference and the installed code disagree"
            )
        have = _git.blob_of_file(root, file)
    except _git.GitUnavailable as err:
        raise LensExecutionRefused(
            f"{asked}. The installed module is in the git checkout {root}, but git could not check its "
            f"commit: {err}"
        ) from None
    if have != wanted:
        raise LensExecutionRefused(
            f"{asked}. The installed {relpath} (git checkout {root}, HEAD {_safe_head(root)}) differs from that "
            f"file at commit {full[:12]}, so it is not the referenced code. Check out {full[:12]} there, or install "
            "the package at that commit. To run the installed version anyway, import the function "
            "yourself and build the lens with @lens"
        )
    return f"{relpath} in the git checkout {root} is identical to commit {full[:12]}"


def _installed_distribution(
    file: Path,
) -> tuple[str | None, str | None, str | None, str | None, frozenset[Path]]:
    """(distribution, version, VCS commit, VCS URL, the files it installed) of the distribution that installed ``file``.

    Found by the file itself in each distribution's record of installed files,
    not by the module's name: a copy of a package earlier on ``sys.path`` is
    not the distribution's code, whatever its name.
    """
    import importlib.metadata as metadata

    file = file.resolve()
    for dist in metadata.distributions():
        try:
            base = Path(str(dist.locate_file(""))).resolve()
            relative = file.relative_to(base).as_posix()
        except (ValueError, OSError, TypeError):
            continue
        try:
            files = dist.files or []
        except Exception:  # noqa: BLE001 - a broken RECORD file names no files
            files = []
        listed = {str(path).replace("\\", "/") for path in files}
        if relative not in listed:
            continue
        try:
            raw = dist.read_text("direct_url.json")
            info = json.loads(raw) if raw else {}
        except (OSError, ValueError):
            info = {}
        if not isinstance(info, dict):
            info = {}
        vcs = info.get("vcs_info") if isinstance(info.get("vcs_info"), dict) else {}
        owned = frozenset((base / path).resolve() for path in listed if path.endswith(".py"))
        return dist.metadata["Name"], dist.version, vcs.get("commit_id"), info.get("url"), owned
    return None, None, None, None, frozenset()


def _same_commit(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    shortest = min(len(a), len(b))
    return shortest >= 7 and a[:shortest] == b[:shortest]


def _safe_head(root: Path) -> str:
    try:
        return _git.head_commit(root)[:12]
    except _git.GitUnavailable:
        return "unknown"
