"""Sample classes the tests share: one field of every type the format maps, and their neighbours."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import numpy as np
from numpy.typing import NDArray

from atdata_core import packable


@packable
class Point:
    x: float
    y: float = 0.5


@packable
class Everything:
    """One field of every kind the protobuf format maps."""

    image: Annotated[NDArray[np.uint8], {"shape": (None, None, 3)}]
    label: str
    count: int
    flag: bool
    blob: bytes
    tags: list[str]
    center: Point
    points: list[Point]
    grid: list[list[int]]
    maybe: list[Optional[int]]
    counts: dict[str, int]
    series: dict[str, list[float]]
    arrays: dict[str, NDArray[np.float32]]
    anything: Any
    score: Optional[float] = None
    note: str = dataclasses.field(default="hi", metadata={"description": 'a "note"\n} message Evil {'})
    extra: Optional[list[int]] = None
    origin: Point = dataclasses.field(default_factory=lambda: Point(1.0, 2.0))
    raw: bytes = b"\x00\x01"
    weights: Optional[NDArray[np.float64]] = None


def everything(seed: int = 0) -> Everything:
    rng = np.random.default_rng(seed)
    return Everything(
        image=rng.integers(0, 255, (4, 5, 3), dtype=np.uint8),
        label="cat",
        count=-3,
        flag=True,
        blob=b"\x00\xffbytes",
        tags=["a", "b"],
        center=Point(0.25, -1.0),
        points=[Point(1.0), Point(2.0, 3.0)],
        grid=[[1, 2], [], [3]],
        maybe=[1, None, 3],
        counts={"a": 1, "b": 2},
        series={"s": [0.5, 1.5], "t": []},
        arrays={"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
        anything={"k": [1, "two", None]},
        score=0.75,
        extra=[7],
        weights=np.linspace(0, 1, 4),
    )
