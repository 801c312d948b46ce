"""Code references for lenses (DESIGN D3): where a getter or putter lives, pinned to a commit.

A lens record never holds code, only a reference: ``repository``, ``commit``,
``path`` (``module/file.py:function``, relative to the repository root) and
``language``. :func:`code_reference` builds one for a function you have
locally; :func:`parse_code_path` reads the ``path`` back into candidate module
names and the function's name, which is what an executor needs to find the
installed code.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atdata_core.errors import LensError
from atdata_core.lenses import _git
from atdata_core.lenses._lens import Lens

if TYPE_CHECKING:
    from atdata_core.records import CodeReference

__all__ = ["CodePath", "code_reference", "lens_code_references", "parse_code_path", "reference_from_mapping"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CodePath:
    """A parsed ``path`` of a code reference.

    ``module/file.py:function`` is the form we write. Records written by other
    clients of the namespace also use ``package.module:function``; both are read.

    >>> p = CodePath.parse("src/imaging/lenses.py:to_gray")
    >>> p.module_candidates, p.function
    (('src.imaging.lenses', 'imaging.lenses', 'lenses'), 'to_gray')
    """

    __slots__ = ("raw", "file", "module_candidates", "function")

    def __init__(self, raw: str, file: str | None, module_candidates: tuple[str, ...], function: str):
        self.raw = raw
        self.file = file
        self.module_candidates = module_candidates
        self.function = function

    @classmethod
    def parse(cls, path: str) -> CodePath:
        if not isinstance(path, str) or ":" not in path:
            raise LensError(f"code path {path!r} should look like 'module/file.py:function'")
        location, _, function = path.rpartition(":")
        if not function or not all(_IDENTIFIER.match(part) for part in function.split(".")):
            raise LensError(f"code path {path!r}: {function!r} is not a function name")
        if any(part.startswith("__") and part.endswith("__") for part in function.split(".")):
            # __builtins__, __class__, __init__...: machinery reached through a module, never a lens function.
            raise LensError(f"code path {path!r}: {function!r} names a dunder attribute, not a lens function")
        location = location.strip()
        if location.endswith(".py"):
            parts = location[:-3].replace("\\", "/").split("/")
            if parts and parts[0] == ".":
                parts = parts[1:]
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
            if not parts or not all(_IDENTIFIER.match(part) for part in parts):
                raise LensError(
                    f"code path {path!r}: {location!r} is not a path of importable module names "
                    "(no '..', no absolute paths, no dashes)"
                )
            # Longest first: "src/pkg/mod.py" may be module src.pkg.mod, pkg.mod or mod
            # depending on the repository's layout; the file check settles it.
            candidates = tuple(".".join(parts[i:]) for i in range(len(parts)))
            return cls(path, location.replace("\\", "/"), candidates, function)
        parts = location.split(".")
        if not parts or not all(_IDENTIFIER.match(part) for part in parts):
            raise LensError(f"code path {path!r} should look like 'module/file.py:function'")
        return cls(path, None, (location,), function)

    def __repr__(self) -> str:
        return f"CodePath({self.raw!r})"


def parse_code_path(path: str) -> CodePath:
    """Parse a code reference's ``path``; raises :class:`LensError` when malformed."""
    return CodePath.parse(path)


def reference_from_mapping(data: Mapping[str, Any]) -> CodeReference:
    """A :class:`~atdata_core.records.CodeReference` from a record's ``getterCode`` / ``putterCode`` dict."""
    from atdata_core.records import CodeReference

    if isinstance(data, CodeReference):
        return data
    if not isinstance(data, Mapping):
        raise LensError(f"a code reference is a mapping with repository, commit and path, got {data!r}")
    missing = [key for key in ("repository", "commit", "path") if not isinstance(data.get(key), str)]
    if missing:
        raise LensError(f"code reference {dict(data)!r} lacks {', '.join(missing)}")
    return CodeReference(
        repository=data["repository"], commit=data["commit"], path=data["path"],
        branch=data.get("branch"), language=data.get("language"),
    )


def code_reference(
    func: Callable[..., Any],
    *,
    repository: str | None = None,
    commit: str | None = None,
    branch: str | None = None,
    allow_dirty: bool = False,
) -> CodeReference:
    """The code reference of a module-level function (or the getter of a :class:`Lens`).

    When the function's file is in a git checkout, ``commit`` is HEAD,
    ``branch`` the current branch, ``repository`` the ``origin`` remote and
    ``path`` the file relative to the checkout's top; arguments override each.
    A file with uncommitted changes is refused (the commit would not contain
    the code you are running) unless ``allow_dirty=True``. Outside a checkout,
    ``repository`` and ``commit`` must be given and ``path`` is the file
    relative to its top-level package's parent.
    """
    if isinstance(func, Lens):
        func = func.getter
    func = inspect.unwrap(func)
    qualname = getattr(func, "__qualname__", None)
    module_name = getattr(func, "__module__", None)
    if not qualname or not module_name:
        raise LensError(f"{func!r} has no module and name, so no code reference can point at it")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise LensError(
            f"{qualname} is defined inside a function or is a lambda; a code reference can only point at a "
            "module-level function (or a method of a module-level class)"
        )
    if module_name == "__main__":
        raise LensError(
            f"{qualname} is defined in the __main__ script; move it into an importable module so others can "
            "install and reference it"
        )
    try:
        file = Path(inspect.getsourcefile(func) or "").resolve()
    except TypeError:
        file = Path()
    if not file.is_file():
        raise LensError(f"cannot find the source file of {module_name}:{qualname}")

    root = _git.checkout_root(file)
    if root is not None:
        relpath = file.relative_to(root.resolve()).as_posix()
        try:
            if commit is None:
                commit = _git.head_commit(root)
                if not allow_dirty and _git.is_dirty(root, relpath):
                    raise LensError(
                        f"{relpath} has uncommitted changes, so commit {commit[:12]} does not contain the code of "
                        f"{qualname}. Commit it first, or pass allow_dirty=True"
                    )
            if branch is None:
                name = _git.git(root, "rev-parse", "--abbrev-ref", "HEAD")
                branch = None if name == "HEAD" else name
            if repository is None:
                try:
                    repository = _git.git(root, "remote", "get-url", "origin")
                except _git.GitUnavailable:
                    repository = None
        except _git.GitUnavailable as err:
            raise LensError(f"cannot read git facts for {file} in {root}: {err}") from err
    else:
        top = module_name.split(".")[0]
        top_module = sys.modules.get(top)
        top_file = getattr(top_module, "__file__", None)
        if top_file is None:
            relpath = file.name
        else:
            top_path = Path(top_file).resolve()
            base = top_path.parent.parent if top_path.name == "__init__.py" else top_path.parent
            relpath = file.relative_to(base).as_posix()
    if not repository:
        raise LensError(
            f"no repository for {module_name}:{qualname}: its file is not in a git checkout with an 'origin' "
            "remote; pass repository= (the URL others install it from)"
        )
    if not commit:
        raise LensError(f"no commit for {module_name}:{qualname}: its file is not in a git checkout; pass commit=")
    from atdata_core.records import CodeReference

    return CodeReference(repository=repository, commit=commit, path=f"{relpath}:{qualname}", branch=branch,
                         language="python")


def lens_code_references(lens: Lens, **kwargs: Any) -> tuple[CodeReference, CodeReference]:
    """(getterCode, putterCode) references for a lens made with ``@lens`` and ``.putter``."""
    if not isinstance(lens, Lens) or len(lens.steps) > 1:
        raise LensError(f"lens_code_references needs a single lens, not {lens!r}; publish each part")
    if not lens.has_putter:
        raise LensError(f"lens {lens.name} has no putter; a lens record needs both getterCode and putterCode")
    getter = code_reference(lens.getter, **kwargs)
    putter_func = lens.putter_function
    putter = code_reference(putter_func, **kwargs)  # type: ignore[arg-type]
    return getter, putter
