"""Lenses: bidirectional transformations between sample types, and the graph that chains them.

The decorator is :func:`atdata_core.lens`; this package holds the rest::

    from atdata_core import lens
    from atdata_core.lenses import find_lens, check_lens_laws

    @lens
    def gray(img: RGBImage) -> GrayImage:            # get: source -> view
        return GrayImage(img.pixels.mean(axis=-1).astype(np.uint8))

    @gray.putter
    def gray_put(g: GrayImage, img: RGBImage) -> RGBImage:   # put: (view, source) -> source
        return RGBImage(np.repeat(g.pixels[..., None], 3, axis=-1))

    gray(img) == gray.get(img)
    (gray >> edges).get(img)          # composition
    find_lens(RGBImage, Edges)        # shortest registered chain, composed
    check_lens_laws(gray, samples)    # GetPut / PutGet, raises LensLawViolation

The package is not named ``lens``: importing a module of that name would
replace the decorator as the attribute ``atdata_core.lens``.

Lens records published to the network name code by reference
(:func:`code_reference`); running such a lens is the job of a lens executor
(:mod:`atdata_core.executors`).
"""

from __future__ import annotations

from typing import Any

from atdata_core.lenses._graph import LensGraph, default_graph, find_lens, register_lens
from atdata_core.lenses._laws import LensLawReport, check_lens_laws, first_difference, values_equal
from atdata_core.lenses._lens import Lens, compose, identity

__all__ = [
    "CodePath",
    "CodeReference",
    "Lens",
    "LensGraph",
    "LensLawReport",
    "check_lens_laws",
    "code_reference",
    "compose",
    "default_graph",
    "find_lens",
    "first_difference",
    "identity",
    "lens_code_references",
    "parse_code_path",
    "reference_from_mapping",
    "register_lens",
    "values_equal",
]

# Code references need git and the records package (cattrs): loaded on first use.
_LAZY = {
    "CodePath": "atdata_core.lenses._code",
    "code_reference": "atdata_core.lenses._code",
    "lens_code_references": "atdata_core.lenses._code",
    "parse_code_path": "atdata_core.lenses._code",
    "reference_from_mapping": "atdata_core.lenses._code",
    "CodeReference": "atdata_core.records",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'atdata_core.lenses' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
