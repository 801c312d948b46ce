"""Checking the lens laws on sample data.

A well-behaved lens obeys two laws (Foster et al., "Combinators for
bidirectional tree transformations"):

- **GetPut**: ``put(get(s), s) == s``: writing back an unchanged view changes nothing.
- **PutGet**: ``get(put(v, s)) == v``: what you write is what you read back.

:func:`check_lens_laws` tries both on your samples and raises
:class:`~atdata_core.errors.LensLawViolation` (an ``AssertionError``) on the
first counterexample, so it drops straight into a pytest test::

    from atdata_core.lenses import check_lens_laws

    def test_gray_lens_is_lawful():
        samples = [RGBImage(np.full((4, 4, 3), k, np.uint8)) for k in (0, 7, 255)]
        report = check_lens_laws(rgb_to_gray, samples)
        assert report.put_get == 3
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from atdata_core.errors import LensError, LensLawViolation
from atdata_core.lenses._lens import Lens
from atdata_core.sample import DictSample

__all__ = ["LensLawReport", "check_lens_laws", "values_equal", "first_difference"]


@dataclasses.dataclass(frozen=True)
class LensLawReport:
    """What :func:`check_lens_laws` checked: the lens and how many cases passed each law."""

    lens: str
    samples: int
    get_put: int
    put_get: int

    def __str__(self) -> str:
        return (
            f"lens {self.lens} obeys GetPut on {self.get_put} sample(s) "
            f"and PutGet on {self.put_get} (sample, view) pair(s)"
        )


def check_lens_laws(
    lens: Lens,
    samples: Iterable[Any],
    views: Iterable[Any] | None = None,
    *,
    eq: Callable[[Any, Any], bool] | None = None,
) -> LensLawReport:
    """Check GetPut and PutGet on ``samples``; raise on the first counterexample.

    GetPut is checked on every sample. PutGet needs views to put: with ``views``
    given, every view is put into every sample; without, each sample receives
    the view of the next sample (``get(samples[i + 1])``, wrapping around), a
    view that really differs from its own whenever the samples do.

    ``eq(a, b)`` compares results; the default compares field by field, arrays
    by dtype, shape and value (NaN equal to NaN). Raises
    :class:`~atdata_core.errors.LensLawViolation` naming the law, the sample,
    the view and what came back; returns a :class:`LensLawReport` otherwise.
    """
    if not isinstance(lens, Lens):
        raise LensError(f"check_lens_laws needs a Lens, got {lens!r}")
    if not lens.has_putter:
        raise LensError(
            f"lens {lens.name} has no putter, so the lens laws do not apply; add one with @{lens.name}.putter"
        )
    samples = list(samples)
    if not samples:
        raise LensError("check_lens_laws needs at least one sample")
    equal = eq if eq is not None else values_equal

    got_views = []
    for i, s in enumerate(samples):
        v = _call(lens.get, (s,), f"get(s) on sample #{i}")
        got_views.append(v)
        back = _call(lens.put, (v, s), f"put(get(s), s) on sample #{i}")
        if not equal(back, s):
            raise _violation(
                lens, "GetPut", "put(get(s), s) == s", i, s, expected=s, actual=back,
                lines=[("s", s), ("get(s)", v), ("put(get(s), s)", back)], eq=eq,
            )

    if views is None:
        pairs = [(i, s, got_views[(i + 1) % len(samples)]) for i, s in enumerate(samples)]
    else:
        view_list = list(views)
        pairs = [(i, s, v) for i, s in enumerate(samples) for v in view_list]
    for i, s, v in pairs:
        updated = _call(lens.put, (v, s), f"put(v, s) on sample #{i}")
        back = _call(lens.get, (updated,), f"get(put(v, s)) on sample #{i}")
        if not equal(back, v):
            raise _violation(
                lens, "PutGet", "get(put(v, s)) == v", i, s, expected=v, actual=back,
                lines=[("s", s), ("v", v), ("put(v, s)", updated), ("get(put(v, s))", back)], eq=eq,
            )
    return LensLawReport(lens=lens.name, samples=len(samples), get_put=len(samples), put_get=len(pairs))


def _call(func: Callable[..., Any], args: tuple[Any, ...], what: str) -> Any:
    try:
        return func(*args)
    except Exception as err:
        err.add_note(f"raised by {what} while checking the lens laws")
        raise


def _violation(
    lens: Lens, law: str, statement: str, index: int, sample: Any, *, expected: Any, actual: Any,
    lines: Sequence[tuple[str, Any]], eq: Any,
) -> LensLawViolation:
    width = max(len(label) for label, _ in lines) + 1
    text = [f"lens {lens.name} breaks {law} on sample #{index}: {statement} does not hold"]
    for label, value in lines:
        text.append(f"  {label + ':':<{width}} {describe(value)}")
    diff = first_difference(actual, expected)
    if diff is not None:
        text.append(f"  {'difference:':<{width}} {diff} (got, expected)")
    elif eq is not None:
        text.append(f"  {'difference:':<{width}} the eq function you passed returned False")
    err = LensLawViolation("\n".join(text))
    err.law = law
    err.index = index
    err.sample = sample
    err.expected = expected
    err.actual = actual
    return err


# ---------------------------------------------------------------------- equality


def values_equal(a: Any, b: Any) -> bool:
    """Deep equality that understands arrays inside samples (NaN equals NaN)."""
    return first_difference(a, b) is None


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where ``a`` and ``b`` first differ, as ``.field[2]: 1 != 2``; None when equal."""
    where = path or "value"
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return f"{where}: {_kind(a)} != {_kind(b)}"
        if a.dtype != b.dtype:
            return f"{where}: dtype {a.dtype} != {b.dtype}"
        if a.shape != b.shape:
            return f"{where}: shape {a.shape} != {b.shape}"
        same = (a == b)
        if a.dtype.kind in "fc":
            same = same | (np.isnan(a) & np.isnan(b))
        same = np.asarray(same)
        if bool(same.all()):
            return None
        bad = np.argwhere(~same)
        first = tuple(int(i) for i in bad[0])
        return (
            f"{where}: arrays differ at {len(bad)} of {a.size} position(s), first at {first}: "
            f"{a[first]!r} != {b[first]!r}"
        )
    if _is_number(a) and _is_number(b):
        if a == b or (_is_nan(a) and _is_nan(b)):
            return None
        return f"{where}: {a!r} != {b!r}"
    if type(a) is not type(b):
        return f"{where}: {_kind(a)} != {_kind(b)}"
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        for field in dataclasses.fields(a):
            diff = first_difference(getattr(a, field.name), getattr(b, field.name), f"{path}.{field.name}")
            if diff is not None:
                return diff
        return None
    attrs_fields = getattr(type(a), "__attrs_attrs__", None)
    if attrs_fields is not None:
        for field in attrs_fields:
            diff = first_difference(getattr(a, field.name), getattr(b, field.name), f"{path}.{field.name}")
            if diff is not None:
                return diff
        return None
    if isinstance(a, DictSample):
        return first_difference(a.to_dict(), b.to_dict(), path)
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for key in a:
            diff = first_difference(a[key], b[key], f"{path}[{key!r}]")
            if diff is not None:
                return diff
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            diff = first_difference(x, y, f"{path}[{i}]")
            if diff is not None:
                return diff
        return None
    try:
        same = a == b
        if isinstance(same, np.ndarray):
            same = bool(same.all())
        same = bool(same)
    except (ValueError, TypeError) as err:
        raise LensError(
            f"cannot compare two {_kind(a)} values at {where} ({err}); pass eq= to check_lens_laws"
        ) from err
    return None if same else f"{where}: {describe(a)} != {describe(b)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, complex, np.number)) and not isinstance(value, (bool, np.bool_))


def _is_nan(value: Any) -> bool:
    try:
        return math.isnan(value)
    except TypeError:
        return False


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray({value.dtype}, shape={value.shape})"
    return type(value).__qualname__


_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 80
_repr.maxlist = 8
_repr.maxdict = 8


def describe(value: Any, limit: int = 300) -> str:
    """A one-line, bounded description of a sample or view for messages."""
    text = _describe(value, depth=0)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any, depth: int) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 6:
            return f"array({np.array2string(value, separator=', ')}, dtype={value.dtype})"
        return f"ndarray({value.dtype}, shape={value.shape})"
    if depth > 3:
        return "..."
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(
            f"{f.name}={_describe(getattr(value, f.name), depth + 1)}" for f in dataclasses.fields(value)
        )
        return f"{type(value).__qualname__}({inner})"
    if isinstance(value, dict):
        items = list(value.items())
        inner = ", ".join(f"{k!r}: {_describe(v, depth + 1)}" for k, v in items[:8])
        return "{" + inner + (", ..." if len(items) > 8 else "") + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_describe(v, depth + 1) for v in value[:8])
        more = ", ..." if len(value) > 8 else ""
        return f"[{inner}{more}]" if isinstance(value, list) else f"({inner}{more})"
    return _repr.repr(value)
