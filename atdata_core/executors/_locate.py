"""Finding the installed function a code path names, without running anything but imports of installed modules."""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atdata_core.lenses import Lens
from atdata_core.lenses._code import CodePath

__all__ = ["find_module", "pick_function", "public_callables", "source_file"]


def find_module(code_path: CodePath) -> tuple[str | None, str | None, list[str]]:
    """(module name, its file) of the installed module a code path names, and what was tried.

    Looking a module up imports its parent packages (installed code too), not the module itself.
    """
    tried: list[str] = []
    for candidate in code_path.module_candidates:
        try:
            spec = importlib.util.find_spec(candidate)
        except (ImportError, ValueError, AttributeError):
            spec = None
        except Exception as err:  # a parent package's __init__ failed
            tried.append(f"{candidate} (importing its package failed: {type(err).__name__}: {err})")
            continue
        if spec is None or not spec.origin or not spec.has_location:
            tried.append(f"module {candidate} (not installed)")
            continue
        origin = Path(spec.origin).resolve()
        if code_path.file is not None and not _path_ends_with(origin, code_path.file):
            tried.append(f"module {candidate} (installed, but its file is {origin}, not .../{code_path.file})")
            continue
        return candidate, str(origin), tried
    return None, None, tried


def _path_ends_with(path: Path, suffix: str) -> bool:
    want = [part for part in suffix.split("/") if part not in ("", ".")]
    have = path.as_posix().split("/")
    return have[-len(want):] == want


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
