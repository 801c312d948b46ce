"""Lenses in an importable module: what an installed lens package looks like to the executor.

No ``from __future__ import annotations`` here on purpose: the annotations are
real types, the other case next to the string annotations of ``test_lens.py``.
"""

import numpy as np
from numpy.typing import NDArray

from atdata_core import lens
from atdata_core.lenses import identity  # noqa: F401  (identity: a name defined elsewhere)
from atdata_core.sample import packable


@packable
class RGBImage:
    pixels: NDArray[np.uint8]  # (height, width, 3)
    label: str


@packable
class RedChannel:
    pixels: NDArray[np.uint8]  # (height, width)
    label: str


@lens(register=False)
def red_channel(img: RGBImage) -> RedChannel:
    return RedChannel(pixels=img.pixels[..., 0].copy(), label=img.label)


@red_channel.putter
def red_channel_put(red: RedChannel, img: RGBImage) -> RGBImage:
    pixels = img.pixels.copy()
    pixels[..., 0] = red.pixels
    return RGBImage(pixels=pixels, label=red.label)


def label_of(img: RGBImage) -> str:
    """A plain function (no @lens) referenced as a getter."""
    return img.label


def label_put(label: str, img: RGBImage) -> RGBImage:
    return RGBImage(pixels=img.pixels, label=label)
