"""Reading a lens function's type annotations, also for classes local to the defining function."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

from atdata_core.errors import LensError

__all__ = ["caller_namespace", "resolve_hints"]


def caller_namespace(depth: int) -> dict[str, Any] | None:
    """The local variables of the frame ``depth`` levels above this call.

    ``typing.get_type_hints`` only sees module globals, so a lens between
    classes defined inside a function (tests, notebooks' helper functions)
    could not resolve string annotations without the defining frame's locals.
    The decorator must therefore be called directly by the code that applies
    it: a wrapper in between would hand over the wrapper's locals instead.
    """
    try:
        frame = sys._getframe(depth)  # 0 is this function, 1 its caller (lens / putter), 2 theirs
    except ValueError:
        return None
    try:
        return dict(frame.f_locals)
    finally:
        del frame


def resolve_hints(func: Callable[..., Any], namespace: dict[str, Any] | None) -> dict[str, Any]:
    """``func``'s annotations as objects; raises :class:`LensError` naming what cannot be resolved."""
    target = inspect.unwrap(func)
    try:
        return typing.get_type_hints(target, localns=namespace)
    except NameError as err:
        raise LensError(
            f"cannot resolve the annotations of {getattr(func, '__qualname__', func)!r}: {err}. "
            "Define the types before the lens, or pass source= and view= to @lens"
        ) from err
    except TypeError:
        return {}
