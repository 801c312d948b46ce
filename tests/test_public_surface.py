"""Plugins build on the public surface only, and that surface is what the docs promise.

A plugin distribution under ``plugins/`` may import ``atdata_core``,
``atdata_core.errors``, ``atdata_core.plugins`` and the conformance suites,
and only names those modules list in ``__all__``. Anything else is private:
it may change in any release, and a plugin that reaches for it breaks.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"

PUBLIC_MODULES = {
    "atdata_core",
    "atdata_core.errors",
    "atdata_core.plugins",
    "atdata_core.plugins.conformance",
    "atdata_core.plugins.hookspecs",
}


def _is_public_module(module: str) -> bool:
    return module in PUBLIC_MODULES


def private_imports(source: str, filename: str = "<plugin>") -> list[str]:
    """Every import of a private atdata_core module or name in ``source``, as ``line: what``."""
    problems: list[str] = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "atdata_core" and not _is_public_module(alias.name):
                    problems.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "atdata_core":
                continue
            if not _is_public_module(node.module):
                problems.append(f"{node.lineno}: from {node.module} import ...")
                continue
            exported = set(getattr(importlib.import_module(node.module), "__all__", ()))
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if alias.name.startswith("_") or (alias.name not in exported and not _is_public_module(submodule)):
                    problems.append(f"{node.lineno}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute):
            # atdata_core.something._private or atdata_core._private reached by attribute
            chain = []
            target: ast.AST = node
            while isinstance(target, ast.Attribute):
                chain.append(target.attr)
                target = target.value
            if isinstance(target, ast.Name) and target.id == "atdata_core":
                if any(part.startswith("_") and not part.startswith("__") for part in chain):
                    problems.append(f"{node.lineno}: atdata_core.{'.'.join(reversed(chain))}")
    return problems


def _plugin_files() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if ".venv" not in p.parts and "build" not in p.parts)


def test_there_are_plugin_files_to_check():
    assert _plugin_files(), "no plugin sources found under plugins/"


@pytest.mark.parametrize("path", _plugin_files(), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_plugin_files_import_only_the_public_surface(path):
    problems = private_imports(path.read_text(encoding="utf-8"), str(path))
    assert not problems, f"{path.relative_to(ROOT)} imports private atdata_core names:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "from atdata_core.sample import make_sample_type",
        "from atdata_core.index._select import select_schema",
        "import atdata_core.storage.http",
        "from atdata_core.plugins import _exactly_one",
        "from atdata_core.plugins._registry import Registry",
        "import atdata_core\natdata_core._loading.resolve('x')",
        "from atdata_core.plugins import not_exported_anywhere",
    ],
)
def test_the_check_catches_private_imports(source):
    assert private_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "from atdata_core.plugins import StorageBase, StorageBackendSpec, hookimpl, select_schema, AtUri",
        "from atdata_core.plugins import make_sample_type, Field, Scalar, Array, ENTRY_NSID, Client",
        "from atdata_core.errors import StorageError, StorageNotFound",
        "from atdata_core.plugins.conformance import StorageBackendConformance",
        "from atdata_core import Dataset, ShardWriter, packable",
        "import atdata_core\natdata_core.load('x')",
    ],
)
def test_the_check_allows_the_public_surface(source):
    assert private_imports(source) == []


def test_every_public_toolkit_name_resolves():
    import atdata_core
    import atdata_core.plugins as toolkit

    for module in (toolkit, atdata_core):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_importing_the_toolkit_stays_cheap():
    import subprocess
    import sys

    probe = (
        "import sys, atdata_core.plugins\n"
        "heavy = [m for m in ('numpy', 'requests', 'sqlite3', 'atdata_core.atproto', 'cattrs') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"importing atdata_core.plugins imported {done.stdout.strip()}"


def test_every_toolkit_name_is_in_the_plugin_guide():
    import atdata_core.plugins as toolkit

    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    import re

    missing = [name for name in toolkit.__all__ if not re.search(rf"\b{re.escape(name)}\b", guide)]
    assert not missing, f"docs/plugins.md does not mention {missing}"
