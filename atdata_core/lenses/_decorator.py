"""The ``@lens`` decorator: a getter function becomes a :class:`Lens`, registered in the lens graph.

It is exported as :func:`atdata_core.lens`. No module is named after it: a
module ``atdata_core.lens`` would replace the function as an attribute of the
package as soon as it is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from atdata_core.errors import LensError
from atdata_core.lenses._graph import default_graph
from atdata_core.lenses._hints import caller_namespace, resolve_hints
from atdata_core.lenses._lens import Lens, mark_owner

__all__ = ["lens"]


def lens(
    func: Callable[[Any], Any] | None = None,
    /,
    *,
    name: str | None = None,
    source: Any = None,
    view: Any = None,
    register: bool = True,
    replace: bool = False,
    graph: Any = None,
) -> Any:
    """Turn a getter ``f(s: S) -> V`` into a :class:`Lens` from ``S`` to ``V``.

    The source and view types come from the annotations (also under ``from
    __future__ import annotations``, including classes local to a function);
    ``source=`` / ``view=`` override them. The lens is registered in the
    process-wide lens graph (``graph=`` picks another, ``register=False`` none);
    ``replace=True`` makes it win over a lens already registered for the same
    pair of types.

    >>> @lens
    ... def gray(img: RGBImage) -> GrayImage:
    ...     return GrayImage(img.pixels.mean(axis=-1).astype(np.uint8))
    >>> @gray.putter
    ... def gray_put(g: GrayImage, img: RGBImage) -> RGBImage:
    ...     return RGBImage(np.repeat(g.pixels[..., None], 3, axis=-1))
    """
    namespace = caller_namespace(2)

    def wrap(f: Callable[[Any], Any]) -> Lens:
        if isinstance(f, Lens):
            raise LensError(f"{f.name} is already a lens")
        if not callable(f):
            raise LensError(f"@lens decorates a getter function, got {f!r}")
        src, dst = _getter_types(f, namespace, source, view)
        obj = Lens(f, None, source=src, view=dst, name=name)
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            value = getattr(f, attr, None)
            if value is not None:
                setattr(obj, attr, value)
        obj.__wrapped__ = f
        mark_owner(f, obj)
        if register:
            (graph if graph is not None else default_graph()).register(obj, replace=replace)
        return obj

    return wrap if func is None else wrap(func)


def _getter_types(func: Callable[[Any], Any], namespace: dict[str, Any] | None, source: Any, view: Any) -> tuple[Any, Any]:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        params = []
    fname = getattr(func, "__qualname__", repr(func))
    if params and len([p for p in params if p.default is inspect.Parameter.empty and p.kind in (
            p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) > 1:
        raise LensError(f"a lens getter takes one argument (the source sample); {fname} takes {len(params)}")
    if source is None or view is None:
        hints = resolve_hints(func, namespace)
        if source is None and params:
            source = hints.get(params[0].name)
        if view is None:
            view = hints.get("return")
    missing = [what for what, value in (("source", source), ("view", view)) if value is None]
    if missing:
        raise LensError(
            f"@lens cannot tell the {' and '.join(missing)} type of {fname}: annotate it as "
            f"def {getattr(func, '__name__', 'f')}(s: Source) -> View, or pass "
            + " and ".join(f"{what}=" for what in missing)
        )
    return source, view
