"""Hostile lens and schema records, and what records put on a terminal (DESIGN D3, D8; issue 7).

A record is data written by someone else. These tests play the stranger: lens
records naming code that must never run, schema records built to inject code
into generated modules, names that try to drive the terminal, listings with one
malformed record among good ones, and records written loosely by other clients.
Where the realistic path is a record read from another account, the record is
published by a second account on the local PDS and read back by the victim.

Modules that must not run write a marker file when they are imported; each
test checks the marker is absent (and that the module is not in sys.modules).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from atdata_core.errors import LensExecutionRefused
from atdata_core.executors import PythonExecutorSettings, PythonLensExecutor

REPOSITORY = "https://example.com/stranger/lenses.git"
COMMIT = "c0ffee" + "0" * 34


def marker_module(folder: Path, name: str, marker: Path, body: str = "def get(x):\n    return x\n") -> Path:
    """Write ``name.py`` into ``folder``: importing it creates ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.py"
    file.write_text(f"open({str(marker)!r}, 'a').write('imported\\n')\n{body}")
    return file


def marker_package(folder: Path, dotted: str, markers: Path, leaf_body: str = "def get(x):\n    return x\n") -> list[Path]:
    """A package tree for ``dotted`` whose every ``__init__.py`` and leaf module write a marker of their own."""
    parts = dotted.split(".")
    written = []
    here = folder
    for depth, part in enumerate(parts):
        marker = markers / f"MARKER-{'.'.join(parts[: depth + 1])}"
        written.append(marker)
        if depth < len(parts) - 1:
            here = here / part
            marker_module(here, "__init__", marker, body="")
        else:
            marker_module(here, part, marker, body=leaf_body)
    return written


def reference(path: str, commit: str = COMMIT) -> dict[str, str]:
    return {"repository": REPOSITORY, "commit": commit, "path": path, "language": "python"}


def forget(*names: str) -> None:
    for loaded in [n for n in sys.modules if any(n == name or n.startswith(name + ".") for name in names)]:
        del sys.modules[loaded]


@pytest.fixture
def unique():
    """A fresh module name per test, so no import cache from another test can answer for it."""
    names = []

    def make(stem: str) -> str:
        names.append(f"{stem}_{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    forget(*names)


EXECUTORS = {
    "default": PythonExecutorSettings(),
    "require_verified_commit": PythonExecutorSettings(require_verified_commit=True),
}


# ====================================================================== hostile lens records


@pytest.mark.parametrize("entry", ["", "absolute"])
@pytest.mark.parametrize("settings", list(EXECUTORS), ids=list(EXECUTORS))
def test_lens_code_in_the_working_directory_is_refused_before_it_is_imported(
    tmp_path, monkeypatch, unique, entry, settings
):
    work = tmp_path / "downloads"
    name = unique("evil_local")
    marker = tmp_path / "MARKER"
    marker_module(work, name, marker)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work) if entry == "absolute" else "")
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor(EXECUTORS[settings]).load(reference(f"{name}.py:get"))
    message = str(caught.value)
    assert "current working directory" in message and "Nothing was imported" in message
    assert "allow_working_directory" in message
    assert not marker.exists() and name not in sys.modules


@pytest.mark.parametrize("form", ["file", "dotted"])
def test_nested_packages_in_the_working_directory_run_nothing(tmp_path, monkeypatch, unique, form):
    work = tmp_path / "work"
    top = unique("evilpkg")
    markers = marker_package(work, f"{top}.sub.mod", tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")
    path = f"{top}/sub/mod.py:get" if form == "file" else f"{top}.sub.mod:get"
    with pytest.raises(LensExecutionRefused, match="current working directory"):
        PythonLensExecutor(PythonExecutorSettings(require_verified_commit=True)).load(reference(path))
    assert [m for m in markers if m.exists()] == []
    assert top not in sys.modules


def test_an_installed_package_is_not_imported_for_a_reference_it_cannot_satisfy(tmp_path, monkeypatch, unique):
    """Looking a submodule up used to import its parent packages; nothing runs before the decision now."""
    site = tmp_path / "site"
    top = unique("installed_pkg")
    markers = marker_package(site, f"{top}.inner.lenses", tmp_path)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    refusals = {
        f"{top}/inner/missing.py:get": "not installed",
        f"{top}/nowhere/lenses.py:get": "not installed",
        f"{top}/inner/lenses.py:absent": "has no absent; it defines get",
        f"{top}.inner.lenses.deeper:get": "not a package",
    }
    for path, expected in refusals.items():
        with pytest.raises(LensExecutionRefused, match=expected):
            PythonLensExecutor().load(reference(path))
    # installed and defining the function, but its commit cannot be checked: refused when verification is required
    with pytest.raises(LensExecutionRefused, match="require_verified_commit is true"):
        PythonLensExecutor(PythonExecutorSettings(require_verified_commit=True)).load(
            reference(f"{top}/inner/lenses.py:get")
        )
    assert [m for m in markers if m.exists()] == [] and top not in sys.modules
    # the same reference, allowed: now (and only now) the package runs
    assert PythonLensExecutor().load(reference(f"{top}/inner/lenses.py:get"))(7) == 7
    assert all(m.exists() for m in markers)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("this.py:get", "standard library"),
        ("antigravity.py:geohash", "standard library"),
        ("json/__init__.py:loads", "standard library"),
        ("os.py:getcwd", "standard library"),
        ("sys.py:exit", "no file|built into Python"),
        ("__hello__.py:main", "dunder module"),
        ("__main__.py:main", "dunder module"),
        ("pkg/__main__.py:main", "dunder module"),
    ],
)
def test_the_standard_library_and_dunder_modules_are_never_lens_code(path, expected, capsys):
    before = set(sys.modules)
    with pytest.raises(LensExecutionRefused, match=expected):
        PythonLensExecutor().load(reference(path))
    assert {"this", "antigravity", "__hello__"} & (set(sys.modules) - before) == set()
    assert "Zen of Python" not in capsys.readouterr().out


def test_a_working_directory_copy_shadowing_an_installed_module_is_refused(tmp_path, monkeypatch, unique):
    name = unique("shadowed")
    site, work = tmp_path / "site", tmp_path / "work"
    installed_marker, shadow_marker = tmp_path / "MARKER-installed", tmp_path / "MARKER-shadow"
    marker_module(site, name, installed_marker)
    marker_module(work, name, shadow_marker)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend("")  # the working directory first: an import would take its copy
    with pytest.raises(LensExecutionRefused, match="current working directory"):
        PythonLensExecutor().load(reference(f"{name}.py:get"))
    assert not shadow_marker.exists() and not installed_marker.exists()


def test_the_working_directory_is_a_code_source_only_when_the_user_opts_in(tmp_path, monkeypatch, unique):
    from atdata_core.plugins import lens_executor, reset_plugins

    work = tmp_path / "project"
    name = unique("my_lenses")
    marker = tmp_path / "MARKER"
    marker_module(work, name, marker)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")
    monkeypatch.setenv("ATDATA_LENS_ALLOW_WORKING_DIRECTORY", "true")
    reset_plugins()
    try:
        executor = lens_executor(language="python")
    finally:
        reset_plugins()
    assert executor.settings.allow_working_directory
    assert executor.load(reference(f"{name}.py:get"))("x") == "x"
    assert marker.exists()
