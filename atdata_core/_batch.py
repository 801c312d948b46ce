"""``SampleBatch``: a list of samples whose fields read as columns."""

from __future__ import annotations

from typing import Any, Generic, Iterable, Iterator, TypeVar, overload

import numpy as np

from ._dict_sample import DictSample
from ._fields import is_packable, sample_fields

__all__ = ["SampleBatch"]

T = TypeVar("T")


class SampleBatch(Generic[T]):
    """A list of samples whose fields read as columns.

    ``batch.field`` stacks array fields into one ``np.ndarray`` with the batch
    as the first axis (arrays of differing shapes or dtypes stay a list) and
    lists every other field; each column is computed once and cached.
    ``batch["field"]`` is the same (and reaches fields named like the batch's
    own attributes: ``samples``, ``fields``...); ``batch[i]`` is the i-th sample.

    >>> batch = SampleBatch([DictSample(x=np.zeros(2)), DictSample(x=np.ones(2))])
    >>> batch.x.shape, len(batch)
    ((2, 2), 2)
    """

    def __init__(self, samples: Iterable[T], sample_type: type | None = None):
        self.samples: list[T] = samples if isinstance(samples, list) else list(samples)
        if sample_type is None and self.samples:
            sample_type = type(self.samples[0])
        self.sample_type = sample_type
        self._columns: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[T]:
        return iter(self.samples)

    @overload
    def __getitem__(self, key: int) -> T: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return self._columns[key]
            except KeyError:
                column = self._columns[key] = self._column(key)
                return column
        if isinstance(key, slice):
            return SampleBatch(self.samples[key], self.sample_type)
        return self.samples[key]

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not attributes of the batch itself.
        if name.startswith("_"):
            raise AttributeError(name)
        column = self[name]
        self.__dict__[name] = column  # later reads skip __getattr__
        return column

    def fields(self) -> list[str]:
        """The field names of the samples."""
        cls = self.sample_type
        if cls is not None and is_packable(cls):
            return [f.name for f in sample_fields(cls)]
        if self.samples and isinstance(self.samples[0], DictSample):
            return list(self.samples[0].keys())
        if self.samples and hasattr(self.samples[0], "__dict__"):
            return [k for k in vars(self.samples[0]) if not k.startswith("_")]
        return []

    def to_dict(self) -> dict[str, Any]:
        """Every field as a column: ``{name: stacked array or list}``."""
        return {name: self[name] for name in self.fields()}

    def _column(self, name: str) -> Any:
        samples = self.samples
        try:
            values = [getattr(s, name) for s in samples]
        except AttributeError:
            raise AttributeError(
                f"samples of this batch have no field {name!r}; fields are {self.fields()}"
            ) from None
        if values and type(values[0]) is np.ndarray:
            return _stack(values)
        return values

    def __repr__(self) -> str:
        name = self.sample_type.__qualname__ if self.sample_type is not None else "?"
        return f"SampleBatch[{name}]({len(self.samples)} samples)"


def _stack(arrays: list[Any]) -> Any:
    first = arrays[0]
    shape, dtype = first.shape, first.dtype
    for a in arrays:
        if type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype:
            return arrays
    out = np.empty((len(arrays), *shape), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out
