"""``DictSample``: a sample read without a class, and value equality of samples."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ._fields import is_packable
from .codec import decode_ndarray, encode_ndarray, looks_like_ndarray, pack_map, unpack_map
from .errors import SampleDecodeError

__all__ = ["DictSample", "values_equal"]


class DictSample:
    """A sample read without a class: attribute and item access over the decoded map.

    Byte values that parse as NDArrays are decoded to arrays; everything else is
    as msgpack decoded it.

    >>> s = DictSample({"label": "cat"})
    >>> s.label, s["label"]
    ('cat', 'cat')
    """

    __slots__ = ("_data",)
    __atdata_packable__ = False

    def __init__(self, data: dict[str, Any] | None = None, **fields: Any):
        merged = dict(data or {})
        merged.update(fields)
        object.__setattr__(self, "_data", merged)

    @classmethod
    def from_map(cls, data: dict[str, Any]) -> "DictSample":
        decoded = {}
        try:
            for key, value in data.items():
                decoded[key] = _decode_untyped(value)
        except RecursionError:
            # msgpack nests up to 1024 levels; Python's stack may end first
            raise SampleDecodeError(f"field {key!r} is nested too deeply to decode") from None
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_data", decoded)
        return obj

    @classmethod
    def from_bytes(cls, data: bytes) -> "DictSample":
        return cls.from_map(unpack_map(data))

    def to_map(self) -> dict[str, Any]:
        return {k: _encode_untyped(v) for k, v in self._data.items()}

    def to_bytes(self) -> bytes:
        return pack_map(self.to_map())

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def keys(self) -> Any:
        return self._data.keys()

    def items(self) -> Any:
        return self._data.items()

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"sample has no field {name!r}; fields are {sorted(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._data[name] = value

    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DictSample):
            return NotImplemented
        if self._data.keys() != other._data.keys():
            return False
        return all(values_equal(self._data[k], other._data[k]) for k in self._data)

    def __repr__(self) -> str:
        parts = []
        for key, value in self._data.items():
            if isinstance(value, np.ndarray):
                parts.append(f"{key}=ndarray({value.dtype}, shape={value.shape})")
            else:
                parts.append(f"{key}={value!r:.60}")
        return f"DictSample({', '.join(parts)})"


def _decode_untyped(value: Any) -> Any:
    if isinstance(value, bytes) and looks_like_ndarray(value):
        return decode_ndarray(value)
    if isinstance(value, dict):
        return {k: _decode_untyped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_untyped(v) for v in value]
    return value


def _encode_untyped(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_ndarray(value)
    if isinstance(value, DictSample):
        return value.to_map()
    if isinstance(value, dict):
        return {k: _encode_untyped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_untyped(v) for v in value]
    if is_packable(type(value)):
        return value.to_map()
    return value


def values_equal(a: Any, b: Any) -> bool:
    """Equality of field values that compares arrays by dtype and content (not elementwise)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return bool(a == b)
