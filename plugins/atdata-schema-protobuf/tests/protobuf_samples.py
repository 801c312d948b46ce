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


def holder(annotation: Any, **field: Any) -> type:
    """A packable class with one field ``value`` of ``annotation``."""
    spec = ("value", annotation, dataclasses.field(**field)) if field else ("value", annotation)
    return packable(dataclasses.make_dataclass("Holder", [spec]))


CASES = [
    ("str", str, "text ✓"),
    ("int", int, -(2**40)),
    ("float", float, 0.1),
    ("bool", bool, True),
    ("bytes", bytes, b"\x00\xff"),
    ("ndarray", np.ndarray, np.arange(4, dtype=np.int16)),
    ("ndarray_dtype", NDArray[np.float32], np.ones((2, 2), dtype=np.float32)),
    ("ndarray_shape", Annotated[NDArray[np.int16], {"shape": (2, None)}], np.zeros((2, 5), dtype=np.int16)),
    ("ndarray_scalar_shape", Annotated[NDArray[np.float64], {"shape": ()}], np.array(1.5)),
    ("ndarray_big_endian", Annotated[np.ndarray, {"dtype": ">i8"}], np.arange(3, dtype=">i8")),
    ("any", Any, {"a": [1, "b", None]}),
    ("list", list[int], [1, 2, 3]),
    ("list_any", list, [1, "x", [2]]),
    ("list_of_lists", list[list[str]], [["a"], [], ["b", "c"]]),
    ("list_of_optional", list[Optional[float]], [1.0, None]),
    ("list_of_arrays", list[NDArray[np.uint8]], [np.arange(3, dtype=np.uint8)]),
    ("list_of_nested", list[Point], [Point(1.0), Point(2.0, 3.0)]),
    ("list_of_dicts", list[dict[str, int]], [{"a": 1}, {}]),
    ("list_of_optional_lists", list[Optional[list[int]]], [[1], None, []]),
    ("dict", dict[str, str], {"a": "b"}),
    ("dict_any", dict, {"a": [1]}),
    ("dict_of_lists", dict[str, list[int]], {"a": [1, 2]}),
    ("dict_of_dicts", dict[str, dict[str, bool]], {"a": {"b": True}}),
    ("dict_of_optional", dict[str, Optional[int]], {"a": None, "b": 2}),
    ("dict_of_nested", dict[str, Point], {"p": Point(0.0)}),
    ("dict_of_arrays", dict[str, NDArray[np.float32]], {"w": np.zeros(2, dtype=np.float32)}),
    ("optional_str", Optional[str], None),
    ("optional_int", Optional[int], 4),
    ("optional_list", Optional[list[int]], [1]),
    ("optional_dict", Optional[dict[str, int]], None),
    ("optional_nested", Optional[Point], Point(1.0)),
    ("optional_array", Optional[NDArray[np.float32]], np.ones(2, dtype=np.float32)),
    ("nested", Point, Point(4.0, 5.0)),
]


# Versions of one schema, for compatibility checks.


@packable
class V1:
    name: str
    size: int
    inner: Point
    note: Optional[str] = None


@packable
class AppendedOptional:
    name: str
    size: int
    inner: Point
    note: Optional[str] = None
    caption: Optional[str] = None


@packable
class InsertedOptional:
    name: str
    size: int
    inner: Point
    caption: Optional[str] = None
    note: Optional[str] = None
