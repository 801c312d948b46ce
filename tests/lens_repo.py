"""Builds a small lens package in a real git repository, importable for one test.

Used by the code-reference and executor tests: the package stands for a lens
library someone published and you installed (here: put on ``sys.path``).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

LENSES = '''\
import dataclasses

from atdata_core import lens

from .helpers import borrowed


@dataclasses.dataclass
class Meters:
    value: float


@dataclasses.dataclass
class Feet:
    value: float


@lens(register=False)
def to_feet(m: Meters) -> Feet:
    return Feet(m.value * 3.28084)


@to_feet.putter
def to_feet_put(f: Feet, m: Meters) -> Meters:
    return Meters(f.value / 3.28084)


def double(x: int) -> int:
    return 2 * x
'''

HELPERS = '''\
def borrowed(x):
    return x
'''

ORIGIN = "https://example.com/someone/lens-library.git"


def git(root: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=Lens Author", "-c", "user.email=author@example.com",
         "-c", "commit.gpgsign=false", *args],
        capture_output=True, text=True, check=True,
    )
    return result.stdout.strip()


@dataclass
class LensRepo:
    root: Path  # the repository (or plain folder) on sys.path
    package: str  # the importable package name
    commit: str | None  # HEAD after the first commit (None without git)

    @property
    def lenses_file(self) -> Path:
        return self.root / self.package / "lenses.py"

    def path(self, function: str, file: str = "lenses.py") -> str:
        return f"{self.package}/{file}:{function}"

    def ref(self, function: str, commit: str | None = None, file: str = "lenses.py", **extra: str) -> dict[str, str]:
        return {"repository": ORIGIN, "commit": commit or self.commit or "", "path": self.path(function, file), **extra}

    def record(self, getter: str = "to_feet", putter: str = "to_feet_put", commit: str | None = None) -> dict:
        return {
            "$type": "science.alt.dataset.lens",
            "name": "meters_to_feet",
            "sourceSchema": "at://did:plc:author/science.alt.dataset.schema/com.example.meters:1.0.0",
            "targetSchema": "at://did:plc:author/science.alt.dataset.schema/com.example.feet:1.0.0",
            "getterCode": self.ref(getter, commit, language="python"),
            "putterCode": self.ref(putter, commit, language="python"),
            "createdAt": "2026-01-01T00:00:00.000Z",
        }

    def module(self):
        return importlib.import_module(f"{self.package}.lenses")


def make_lens_repo(base: Path, *, use_git: bool = True) -> LensRepo:
    """Write the package under ``base``, commit it (when ``use_git``) and return where it is."""
    package = f"lenslib_{uuid.uuid4().hex[:10]}"
    base.mkdir(parents=True, exist_ok=True)
    folder = base / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "lenses.py").write_text(LENSES)
    (folder / "helpers.py").write_text(HELPERS)
    commit = None
    if use_git:
        git(base, "init", "-q", "-b", "main")
        git(base, "remote", "add", "origin", ORIGIN)
        git(base, "add", ".")
        git(base, "commit", "-q", "-m", "lenses")
        commit = git(base, "rev-parse", "HEAD")
    return LensRepo(base, package, commit)


def forget_modules(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
