"""The :class:`Lens` object, composition and identity, and the putter's annotation check."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from atdata_core.errors import LensError
from atdata_core.lenses._hints import caller_namespace, resolve_hints

__all__ = ["Lens", "compose", "identity", "mark_owner", "type_name"]

# Set on a decorated getter/putter function, pointing back at its Lens, so a
# lens built from those functions elsewhere (composition, the executor) can be
# pickled by reference to the module-level Lens.
_OWNER_ATTR = "__atdata_lens__"


def type_name(tp: Any) -> str:
    """A short, readable name for a type in messages (``ImageSample``, ``list[int]``)."""
    if isinstance(tp, type):
        return tp.__qualname__.rsplit("<locals>.", 1)[-1]
    return repr(tp)


class Lens:
    """A pair of functions between a *source* type ``S`` and a *view* type ``V``.

    ``get(s) -> V`` reads the view out of a source; ``put(v, s) -> S`` writes a
    (changed) view back into a source. Build one with :func:`atdata_core.lens`; compose with
    ``first >> second``.

    >>> @lens
    ... def name_of(p: Person) -> Name:
    ...     return Name(p.name)
    >>> @name_of.putter
    ... def name_of_put(n: Name, p: Person) -> Person:
    ...     return Person(name=n.value, age=p.age)
    >>> name_of(person)            # same as name_of.get(person)
    """

    def __init__(
        self,
        getter: Callable[[Any], Any],
        putter: Callable[[Any, Any], Any] | None = None,
        *,
        source: Any,
        view: Any,
        name: str | None = None,
        qualified_name: str | None = None,
        steps: tuple[Lens, ...] | None = None,
    ):
        if not callable(getter):
            raise LensError(f"a lens getter must be callable, got {getter!r}")
        if putter is not None and not callable(putter):
            raise LensError(f"a lens putter must be callable, got {putter!r}")
        self._getter = getter
        self._putter = putter
        self.source = source
        self.view = view
        self.name = name or getattr(getter, "__name__", None) or "lens"
        module = getattr(getter, "__module__", None)
        qualname = getattr(getter, "__qualname__", None) or self.name
        self.qualified_name = qualified_name or (f"{module}:{qualname}" if module else qualname)
        # A plain lens is its own single step; a composed lens lists its parts.
        self.steps: tuple[Lens, ...] = steps if steps is not None else (self,)
        #: How a lens executor checked the code it loaded, one sentence per function
        #: (``"getter: lenses.py in the git checkout ... is identical to commit 3f2a9c1d0b7e"``).
        self.provenance: list[str] = []
        #: The published lens record this lens was loaded from, if any.
        self.record: dict[str, Any] | None = None

    # ------------------------------------------------------------------ use

    @property
    def getter(self) -> Callable[[Any], Any]:
        """The getter function ``f(s) -> v``."""
        return self._getter

    @property
    def putter_function(self) -> Callable[[Any, Any], Any] | None:
        """The putter function ``g(v, s) -> s``, or None when the lens has none."""
        return self._putter

    @property
    def has_putter(self) -> bool:
        return self._putter is not None

    def get(self, s: Any) -> Any:
        """The view of source ``s``."""
        return self._getter(s)

    def put(self, v: Any, s: Any) -> Any:
        """Source ``s`` updated so that its view is ``v``."""
        if self._putter is None:
            raise LensError(
                f"lens {self.name} has no putter, so it can only read {type_name(self.view)} out of "
                f"{type_name(self.source)}. Add one with @{self.name}.putter on a function "
                f"g(v: {type_name(self.view)}, s: {type_name(self.source)}) -> {type_name(self.source)}"
            )
        return self._putter(v, s)

    def __call__(self, s: Any) -> Any:
        return self._getter(s)

    def putter(self, func: Callable[[Any, Any], Any]) -> Lens:
        """Decorator: set ``func(v, s) -> s`` as this lens's putter. Returns the lens.

        Returning the lens (as ``property.setter`` does) lets the putter reuse
        the getter's name; a putter with its own name is reachable through the
        lens it was attached to.
        """
        if not callable(func):
            raise LensError(f"@{self.name}.putter needs a function, got {func!r}")
        if len(self.steps) > 1:
            raise LensError(f"{self.name} is a composed lens; its putter comes from its parts")
        _check_putter_annotations(self, func, caller_namespace(2))
        self._putter = func
        mark_owner(func, self)
        return self

    # ------------------------------------------------------------------ composition

    def __rshift__(self, other: Lens) -> Lens:
        if not isinstance(other, Lens):
            return NotImplemented
        return compose(self, other)

    # ------------------------------------------------------------------ misc

    def __repr__(self) -> str:
        return f"<Lens {self.name}: {type_name(self.source)} -> {type_name(self.view)}>"

    def __reduce__(self) -> Any:
        # Lenses travel to data-loader worker processes. A lens bound to a
        # module-level name pickles as that name; the rest rebuild from parts.
        if len(self.steps) > 1:
            return (compose, self.steps)
        if isinstance(self, _Identity):
            return (identity, (self.source,))
        module = sys.modules.get(getattr(self, "__module__", "") or "")
        qualname = getattr(self, "__qualname__", None)
        if module is not None and qualname and "<locals>" not in qualname:
            target: Any = module
            for part in qualname.split("."):
                target = getattr(target, part, None)
            if target is self:
                return qualname
        return (
            _rebuild,
            (_FunctionRef.of(self._getter), _FunctionRef.of(self._putter), self.source, self.view, self.name,
             self.qualified_name),
        )


class _Identity(Lens):
    """The lens whose get and put change nothing."""


def _identity_get(s: Any) -> Any:
    return s


def _identity_put(v: Any, s: Any) -> Any:
    return v


def identity(tp: Any) -> Lens:
    """The identity lens on ``tp``: ``get(s) is s`` and ``put(v, s) is v``."""
    return _Identity(
        _identity_get, _identity_put, source=tp, view=tp, name=f"identity[{type_name(tp)}]",
        qualified_name=f"identity[{type_name(tp)}]",
    )


def compose(*lenses: Lens) -> Lens:
    """Chain lenses left to right: ``compose(a, b)`` is ``a >> b``.

    get: ``b.get(a.get(s))``; put: ``a.put(b.put(v, a.get(s)), s)``. The view of
    each lens must be the source of the next.
    """
    if not lenses:
        raise LensError("compose() needs at least one lens")
    steps: list[Lens] = []
    for item in lenses:
        if not isinstance(item, Lens):
            raise LensError(f"compose() takes Lens objects, got {item!r}")
        steps.extend(step for step in item.steps if not isinstance(step, _Identity))
    for first, second in zip(lenses, lenses[1:]):
        if not _connects(first.view, second.source):
            raise LensError(
                f"cannot compose {first.name} >> {second.name}: {first.name} gives "
                f"{type_name(first.view)} but {second.name} reads {type_name(second.source)}"
            )
    if not steps:  # only identities
        return lenses[0]
    if len(steps) == 1:
        return steps[0]
    parts = tuple(steps)

    def get(s: Any) -> Any:
        for step in parts:
            s = step.get(s)
        return s

    putter = None
    if all(step.has_putter for step in parts):

        def put(v: Any, s: Any) -> Any:
            # Walk down collecting the intermediate sources, then put back up.
            sources = [s]
            for step in parts[:-1]:
                sources.append(step.get(sources[-1]))
            for step, src in zip(reversed(parts), reversed(sources)):
                v = step.put(v, src)
            return v

        putter = put
    name = " >> ".join(step.name for step in parts)
    return Lens(
        get, putter, source=lenses[0].source, view=lenses[-1].view, name=name,
        qualified_name=" >> ".join(step.qualified_name for step in parts), steps=parts,
    )


def _connects(view: Any, source: Any) -> bool:
    if view is source or view is Any or source is Any:
        return True
    return isinstance(view, type) and isinstance(source, type) and issubclass(view, source)


# ---------------------------------------------------------------------- annotations


def mark_owner(func: Any, owner: Lens) -> None:
    """Point a getter or putter function back at its Lens, so lenses built from it pickle by reference."""
    try:
        setattr(func, _OWNER_ATTR, owner)
    except (AttributeError, TypeError):  # builtins, bound methods
        pass


def _check_putter_annotations(owner: Lens, func: Callable[..., Any], namespace: dict[str, Any] | None) -> None:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return
    fname = getattr(func, "__qualname__", repr(func))
    if len(params) < 2:
        raise LensError(
            f"a putter takes (view, source) and returns the updated source; {fname} takes {len(params)} argument(s)"
        )
    try:
        hints = resolve_hints(func, namespace)
    except LensError:
        return  # annotations are documentation for a putter; the getter fixed the types
    expected = {params[0].name: owner.view, params[1].name: owner.source, "return": owner.source}
    for key, want in expected.items():
        got = hints.get(key)
        if got is not None and want is not None and got is not want and not _connects(got, want) and not _connects(want, got):
            where = "return type" if key == "return" else f"argument {key!r}"
            raise LensError(
                f"putter {fname} of lens {owner.name}: {where} is annotated {type_name(got)}, but the lens "
                f"maps {type_name(owner.source)} -> {type_name(owner.view)}, so it should be {type_name(want)}"
            )


# ---------------------------------------------------------------------- pickling support


class _FunctionRef:
    """A getter or putter that pickles through the module-level Lens owning it."""

    @staticmethod
    def of(func: Any) -> Any:
        owner = getattr(func, _OWNER_ATTR, None)
        if isinstance(owner, Lens):
            if owner._getter is func:
                return (owner, "get")
            if owner._putter is func:
                return (owner, "put")
        return func

    @staticmethod
    def resolve(ref: Any) -> Any:
        if isinstance(ref, tuple) and len(ref) == 2 and isinstance(ref[0], Lens):
            owner, role = ref
            return owner._getter if role == "get" else owner._putter
        return ref


def _rebuild(getter: Any, putter: Any, source: Any, view: Any, name: str, qualified_name: str) -> Lens:
    return Lens(
        _FunctionRef.resolve(getter), _FunctionRef.resolve(putter), source=source, view=view, name=name,
        qualified_name=qualified_name,
    )
