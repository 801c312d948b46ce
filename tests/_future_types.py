"""Sample types declared under postponed annotations, for tests."""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import NDArray

import atdata_core


@atdata_core.packable
class Point:
    x: float
    y: float


@atdata_core.packable
class Annotated:
    image: NDArray[np.float32]
    anything: NDArray
    plain: np.ndarray
    where: Point
    names: list[str]
    scores: dict[str, float]
    note: Optional[str] = None
    later: Optional[Later] = None


@atdata_core.packable
class Later:
    """Referenced before its definition: resolution must be lazy."""

    value: int
