"""Finding the file a code path names by reading the filesystem, never by importing (DESIGN D3, D8).

A lens record is written by someone else, so the module it names must not run
before the executor has decided to run it. ``importlib.util.find_spec`` on a
dotted name imports the parent packages, and importing runs them: the lookup
here asks the import system's finders for one name at a time, giving each
submodule lookup the parent's search locations explicitly, which is how the
interpreter itself finds a module without executing anything.

Only the import system's own path finder (simulated one location at a time)
and the finders of setuptools editable installs are consulted; other import
hooks are code whose lookups may import, so a module only they can find is
reported as not installed.

The lookup also says *where* the module comes from, because some places are
never a source of lens code:

- the current working directory (``''`` or the folder you are in, on
  ``sys.path``): whatever files lie there (a download, your own training
  script) were not installed as lens code. ``allow_working_directory``
  opts in;
- Python's standard library, built-in and frozen modules: they hold no lens
  code, and some run code when imported (``this``, ``antigravity``);
- dunder modules (``__main__``), which run programs when imported.

:func:`read_bindings` then reads the module's source (``ast``, no import) so
that a reference to a function the file does not define is refused before the
file runs.
"""

from __future__ import annotations

import ast
import importlib.machinery
import inspect
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from atdata_core.lenses import Lens
from atdata_core.lenses._code import CodePath

__all__ = [
    "Bindings",
    "function_source",
    "Located",
    "locate_module",
    "pick_function",
    "public_callables",
    "read_bindings",
    "source_file",
]

WORKING_DIRECTORY = "the current working directory"
STANDARD_LIBRARY = "Python's standard library"


@attrs.frozen
class Located:
    """Where an importable module is, found without importing it.

    ``file``: its resolved source file. ``runs``: every file importing it
    would execute, parent packages' ``__init__.py`` first, the module last
    (modules already imported run nothing again, so they are left out).
    """

    module: str
    file: Path
    runs: tuple[Path, ...]


@attrs.frozen
class _Place:
    """One search location and what kind of place it is (None: an ordinary installed location)."""

    location: str
    source: str | None


@attrs.frozen
class _Found:
    """A module or package one lookup step found: its file (None for a namespace package) and search locations."""

    origin: Path | None
    places: tuple[_Place, ...] | None  # a package's search locations; None for a plain module
    source: str | None  # WORKING_DIRECTORY, STANDARD_LIBRARY or None
    imported: bool  # already in sys.modules: importing it again runs nothing


class _Refused(Exception):
    """A lookup step found nothing (``found=False``), or something that may not be run."""

    def __init__(self, reason: str, *, found: bool):
        super().__init__(reason)
        self.found = found


def locate_module(code_path: CodePath, *, allow_working_directory: bool = False) -> tuple[Located | None, list[str], bool]:
    """(the module a code path names, what was tried, whether something was found but refused by where it is).

    Nothing is imported. Candidates are tried longest first; the first whose
    file is the one the path names wins.
    """
    tried: list[str] = []
    refused = False
    for candidate in code_path.module_candidates:
        try:
            located = _locate(candidate, allow_working_directory=allow_working_directory)
        except _Refused as err:
            refused = refused or err.found
            tried.append(f"module {candidate} ({err})")
            continue
        if code_path.file is not None and not _path_ends_with(located.file, code_path.file):
            tried.append(f"module {candidate} (installed, but its file is {located.file}, not .../{code_path.file})")
            continue
        return located, tried, refused
    return None, tried, refused


def _locate(name: str, *, allow_working_directory: bool) -> Located:
    parts = name.split(".")
    for part in parts:
        if part.startswith("__") and part.endswith("__"):
            raise _Refused(f"{part} is a dunder module (a program, or import machinery), never lens code", found=True)
    runs: list[Path] = []
    places: tuple[_Place, ...] | None = None
    found: _Found | None = None
    for depth, part in enumerate(parts, start=1):
        fullname = ".".join(parts[:depth])
        found = _step(fullname, depth, places, parent_source=found.source if found else None)
        if found.source == STANDARD_LIBRARY:
            raise _Refused(f"{fullname} is part of {STANDARD_LIBRARY}, which holds no lens code", found=True)
        if found.source == WORKING_DIRECTORY and not allow_working_directory:
            where = found.origin or (found.places[0].location if found.places else fullname)
            raise _Refused(
                f"{fullname} would be imported from {where} in {WORKING_DIRECTORY}, which is not a source of lens "
                "code: install the code, or set [lens] allow_working_directory = true if you mean to run code from "
                "the folder you are in",
                found=True,
            )
        if depth < len(parts):
            if found.places is None:
                raise _Refused(f"{fullname} is a module, not a package, so it has no {parts[depth]}", found=False)
            if found.origin is not None and not found.imported:
                runs.append(found.origin)
            places = found.places
    assert found is not None
    if found.origin is None:
        raise _Refused(f"{name} is a namespace package (a folder), not a file of code", found=True)
    if found.origin.suffix != ".py" or not found.origin.is_file():
        raise _Refused(f"{name} is {found.origin}, not a Python source file", found=True)
    if not found.imported:
        runs.append(found.origin)
    return Located(name, found.origin, tuple(runs))


def _step(fullname: str, depth: int, places: tuple[_Place, ...] | None, parent_source: str | None) -> _Found:
    """One module of a dotted name, found the way the import system would find it, without importing."""
    module = sys.modules.get(fullname)
    if module is not None:
        return _from_module(module, fullname, depth)
    if places is None:
        return _find_top_level(fullname)
    return _find_submodule(fullname, places, parent_source)


def _from_module(module: Any, fullname: str, depth: int) -> _Found:
    """An already imported module: its file and ``__path__`` as they are now; importing it again runs nothing."""
    file = getattr(module, "__file__", None)
    path = getattr(module, "__path__", None)
    origin = Path(file).resolve() if isinstance(file, str) else None
    locations = [str(location) for location in list(path) if isinstance(location, str)] if path is not None else None
    if origin is None and not locations:
        raise _Refused(f"{fullname} is already imported and has no file (built in or frozen)", found=True)
    # The folder its top-level package was found in: one level up per name in the dotted
    # name, and one more for a package's __init__.py.
    try:
        if origin is not None:
            root = origin.parents[depth - 1 + (origin.name == "__init__.py")]
        else:
            root = Path(locations[0]).resolve().parents[depth - 1]
        source = _kind_of_folder(str(root))
    except IndexError:
        source = None
    places = None if locations is None else tuple(_Place(location, source) for location in locations)
    return _Found(origin, places, source, imported=True)


def _find_top_level(fullname: str) -> _Found:
    for finder in sys.meta_path:
        if finder is importlib.machinery.BuiltinImporter or isinstance(finder, importlib.machinery.BuiltinImporter):
            if finder.find_spec(fullname) is not None:
                raise _Refused(f"{fullname} is built into Python, never lens code", found=True)
            continue
        if finder is importlib.machinery.FrozenImporter or isinstance(finder, importlib.machinery.FrozenImporter):
            if finder.find_spec(fullname) is not None:
                raise _Refused(f"{fullname} is a frozen module of Python, never lens code", found=True)
            continue
        if finder is importlib.machinery.PathFinder:
            found = _scan(fullname, [_Place(entry, _kind_of_folder(entry)) for entry in _path_entries(sys.path)])
        elif _editable_finder(finder):
            found = _ask_finder(finder, fullname, None)
        else:
            continue  # an import hook whose lookups may run code (setuptools' distutils hack imports)
        if found is not None:
            return found
    raise _Refused("not installed", found=False)


def _find_submodule(fullname: str, places: tuple[_Place, ...], parent_source: str | None) -> _Found:
    for finder in sys.meta_path:
        if finder is importlib.machinery.PathFinder:
            found = _scan(fullname, list(places))
        elif _editable_finder(finder):
            found = _ask_finder(finder, fullname, [p.location for p in places], parent_source)
        else:
            continue
        if found is not None:
            return found
    raise _Refused("not installed", found=False)


def _scan(fullname: str, places: Iterable[_Place]) -> _Found | None:
    """What ``PathFinder`` would find, one location at a time so that each hit knows its place."""
    portions: list[_Place] = []
    for place in places:
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, [place.location])
        except (ImportError, OSError, ValueError) as err:
            raise _Refused(f"looking it up in {place.location} failed: {type(err).__name__}: {err}", found=True) from None
        if spec is None:
            continue
        if spec.loader is None:  # a folder without __init__.py: one portion of a namespace package
            portions += [_Place(str(location), place.source) for location in spec.submodule_search_locations or ()]
            continue
        return _found_from_spec(spec, place.source)
    if portions:
        sources = {p.source for p in portions} - {None}
        return _Found(None, tuple(portions), next(iter(sources)) if len(sources) == 1 else None, imported=False)
    return None


def _editable_finder(finder: Any) -> bool:
    """Whether ``finder`` is the finder of a setuptools editable install, which only reads its own mapping.

    Other finders on ``sys.meta_path`` are not asked: their lookups are code
    that may import (setuptools' distutils hack imports ``setuptools._distutils``
    when asked for ``distutils``). A module only they can find is reported as
    not installed.
    """
    kind = finder if isinstance(finder, type) else type(finder)
    return kind.__name__ == "_EditableFinder" and str(getattr(kind, "__module__", "")).startswith("__editable__")


def _ask_finder(finder: Any, fullname: str, path: list[str] | None, parent_source: str | None = None) -> _Found | None:
    """An editable install's finder on ``sys.meta_path``, asked for one name."""
    find = getattr(finder, "find_spec", None)
    if find is None:
        return None
    try:
        spec = find(fullname, path)
    except Exception as err:  # noqa: BLE001 - an installed finder failing is a reason to refuse, not to crash
        raise _Refused(f"the import finder {finder!r} failed on it: {type(err).__name__}: {err}", found=True) from None
    if spec is None:
        return None
    return _found_from_spec(spec, parent_source)


def _found_from_spec(spec: Any, source: str | None) -> _Found:
    origin = Path(spec.origin).resolve() if spec.origin and spec.has_location else None
    if spec.origin and not spec.has_location:
        raise _Refused(f"{spec.name} is {spec.origin}, not a file of code", found=True)
    locations = spec.submodule_search_locations
    places = None if locations is None else tuple(_Place(str(location), source) for location in list(locations))
    return _Found(origin, places, source, imported=False)


def _path_entries(entries: Iterable[Any]) -> list[str]:
    return [os.fspath(entry) for entry in entries if isinstance(entry, (str, os.PathLike))]


def _kind_of_folder(entry: str) -> str | None:
    """WORKING_DIRECTORY or STANDARD_LIBRARY when an import path entry is one of those, else None."""
    if entry in ("", "."):
        return WORKING_DIRECTORY
    try:
        folder = Path(entry).resolve()
    except (OSError, RuntimeError):
        return None
    try:
        if folder == Path.cwd().resolve():
            return WORKING_DIRECTORY
    except OSError:  # the working directory was deleted: nothing can come from it
        pass
    if folder in _standard_library_folders():
        return STANDARD_LIBRARY
    return None


def _standard_library_folders() -> set[Path]:
    folders = set()
    for key in ("stdlib", "platstdlib"):
        try:
            value = sysconfig.get_path(key)
        except KeyError:
            continue
        if value:
            folders.add(Path(value).resolve())
            folders.add((Path(value) / "lib-dynload").resolve())
    return folders


def _path_ends_with(path: Path, suffix: str) -> bool:
    want = [part for part in suffix.split("/") if part not in ("", ".")]
    have = path.as_posix().split("/")
    return have[-len(want):] == want


# ---------------------------------------------------------------------- reading the source, not running it


@attrs.frozen
class Bindings:
    """The names a module's source binds at module level, read with ``ast``."""

    names: frozenset[str]
    functions: tuple[str, ...]  # public functions it defines with def, for messages

    def describe(self) -> str:
        if not self.functions:
            return "no public functions"
        shown = ", ".join(self.functions[:12])
        more = len(self.functions) - 12
        return shown + (f" and {more} more" if more > 0 else "")


def read_bindings(file: Path) -> Bindings:
    """The module-level names ``file`` binds (def, class, assignment, import), without running it.

    Raises ``OSError`` when the file cannot be read and ``SyntaxError`` /
    ``ValueError`` when it is not Python.
    """
    tree = ast.parse(file.read_bytes(), filename=str(file))
    names: set[str] = set()
    functions: list[str] = []

    def visit(statements: Iterable[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
                if not node.name.startswith("_"):
                    functions.append(node.name)
            elif isinstance(node, ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(_target_names(target))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, ()) or ())
                for handler in getattr(node, "handlers", ()) or ():
                    visit(handler.body)
            elif sys.version_info >= (3, 11) and isinstance(node, getattr(ast, "TryStar", ())):
                visit(node.body)

    visit(tree.body)
    return Bindings(frozenset(names), tuple(sorted(set(functions))))


def function_source(file: Path, function: str, role: str) -> str | None:
    """The source of the function a code path names, as written in ``file``, read without importing it.

    ``function`` is the path's function part (``to_gray``, or ``Class.method``).
    The definition runs from its first decorator to its last line, dedented,
    with ``\n`` line ends. When one name has two definitions (a ``@lens``
    getter and a ``.putter`` of the same name), ``role`` picks the first
    (``"get"``) or the last (``"put"``). None when no ``def`` of that name is
    at module level (or in the named class): a name bound otherwise has no
    source of its own to hash.
    """
    import textwrap

    try:
        data = file.read_bytes()
        tree = ast.parse(data, filename=str(file))
        text = data.decode("utf-8")
    except (OSError, SyntaxError, ValueError):
        return None
    scope: list[ast.stmt] = tree.body
    *owners, name = function.split(".")
    for owner in owners:
        classes = [node for node in scope if isinstance(node, ast.ClassDef) and node.name == owner]
        if not classes:
            return None
        scope = classes[-1].body
    defs = [node for node in scope if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name]
    if not defs:
        return None
    node = defs[-1] if role == "put" else defs[0]
    first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
    # Python's own line ends only (str.splitlines also splits at form feeds and U+2028, which ast does not count).
    lines = re.split(r"\r\n|\r|\n", text)[first - 1 : node.end_lineno]
    return textwrap.dedent("\n".join(lines)) + "\n"


def _target_names(target: ast.expr) -> set[str]:
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(element) for element in target.elts)) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return set()


# ---------------------------------------------------------------------- after the import


def pick_function(target: Any, role: str, function_name: str) -> tuple[Callable[..., Any] | None, Lens | None]:
    """(function, the @lens object it belongs to) for the object a name is bound to; (None, None) if not a function.

    A name bound to a ``@lens`` object stands for its getter, or its putter
    when the name is the putter's own; when both halves share the name,
    ``role`` (``"get"`` or ``"put"``) decides.
    """
    if isinstance(target, Lens):
        short = function_name.rsplit(".", 1)[-1]
        getter_name = getattr(target.getter, "__name__", None)
        putter_name = getattr(target.putter_function, "__name__", None)
        if putter_name == short and getter_name != short:
            return target.putter_function, target
        if getter_name == short and putter_name != short:
            return target.getter, target
        return (target.getter if role == "get" else target.putter_function), target
    if inspect.isfunction(target) or inspect.ismethod(target):
        return target, None
    return None, None


def source_file(function: Callable[..., Any]) -> Path | None:
    """The resolved file that defines ``function``, or None when it has no Python source."""
    try:
        found = inspect.getsourcefile(inspect.unwrap(function))
    except TypeError:
        return None
    return Path(found).resolve() if found else None


def public_callables(module: Any) -> str:
    """The public functions and lenses a module defines itself, for a refusal message."""
    names = sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_") and (isinstance(value, Lens) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    )
    if not names:
        return "no public functions"
    shown = ", ".join(names[:12])
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "")
