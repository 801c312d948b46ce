"""The few git facts lens code references need, asked of the ``git`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["GitUnavailable", "checkout_root", "git", "head_commit", "resolve_commit", "blob_at", "blob_of_file"]


class GitUnavailable(RuntimeError):
    """``git`` is not installed, or a git command failed."""


def checkout_root(path: str | os.PathLike[str]) -> Path | None:
    """The top folder of the git checkout holding ``path``, or None.

    Looks for ``.git`` (a folder, or a file in worktrees and submodules)
    instead of asking git, so it works without git installed.
    """
    here = Path(path).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git(root: Path, *args: str) -> str:
    """Run ``git -C root args...`` and return its stripped output; raise GitUnavailable on failure."""
    exe = shutil.which("git")
    if exe is None:
        raise GitUnavailable("the git command is not installed")
    result = subprocess.run(
        [exe, "-C", str(root), *args], capture_output=True, text=True, check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
    )
    if result.returncode != 0:
        raise GitUnavailable(result.stderr.strip() or f"git {' '.join(args)} failed ({result.returncode})")
    return result.stdout.strip()


def head_commit(root: Path) -> str:
    return git(root, "rev-parse", "HEAD")


def resolve_commit(root: Path, commit: str) -> str | None:
    """The full hash of ``commit`` in the checkout at ``root``, or None when it is not there."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except GitUnavailable as err:
        if "not installed" in str(err):
            raise
        return None


def blob_at(root: Path, commit: str, relpath: str) -> str | None:
    """The blob hash of ``relpath`` at ``commit``, or None when the file does not exist there."""
    try:
        return git(root, "rev-parse", "--verify", "--quiet", f"{commit}:{relpath}")
    except GitUnavailable as err:
        if "not installed" in str(err):
            raise
        return None


def blob_of_file(root: Path, file: Path) -> str:
    """The blob hash git would give the file as it is on disk now."""
    return git(root, "hash-object", "--", str(file))


def is_dirty(root: Path, relpath: str) -> bool:
    """True when ``relpath`` differs from HEAD (modified, staged or untracked)."""
    return bool(git(root, "status", "--porcelain", "--", relpath))
