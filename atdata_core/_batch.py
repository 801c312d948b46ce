"""``SampleBatch``: a list of samples whose fields read as columns."""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar, overload

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

    A batch read from a dataset whose members share a layout arrives decoded
    into columns (its arrays copied once, straight from the member bytes);
    its sample objects are built from the columns when first asked for
    (``batch.samples``, ``batch[i]``, iterating), their arrays read-only
    copies of the column rows as they are then. Stacked columns are arrays of
    their own, never views of a sample's array.

    >>> batch = SampleBatch([DictSample(x=np.zeros(2)), DictSample(x=np.ones(2))])
    >>> batch.x.shape, len(batch)
    ((2, 2), 2)
    """

    def __init__(self, samples: Iterable[T], sample_type: type | None = None):
        self._samples: list[T] | None = samples if isinstance(samples, list) else list(samples)
        if sample_type is None and self._samples:
            sample_type = type(self._samples[0])
        self.sample_type = sample_type
        self._size = len(self._samples)
        self._columns: dict[str, Any] = {}
        self._values: dict[str, list[Any]] = {}
        self._build: Callable[[], list[T]] | None = None

    @classmethod
    def _from_columns(
        cls,
        size: int,
        sample_type: type | None,
        columns: dict[str, Any],
        values: dict[str, list[Any]],
        build: Callable[[], list[T]],
    ) -> "SampleBatch[T]":
        """A batch of ``size`` samples given as ready ``columns`` and per-field ``values`` (made
        into columns when first read); ``build()`` makes the sample objects when they are asked for."""
        batch = cls.__new__(cls)
        batch._samples = None
        batch.sample_type = sample_type
        batch._size = size
        batch._columns = columns
        batch._values = values
        batch._build = build
        return batch

    @property
    def samples(self) -> list[T]:
        """The samples, in order."""
        if self._samples is None:
            self._samples = self._build()  # type: ignore[misc]
            self._build = None
        return self._samples

    @samples.setter
    def samples(self, samples: list[T]) -> None:
        self._samples = samples
        self._size = len(samples)
        self._columns = {}
        self._values = {}
        self._build = None

    def __len__(self) -> int:
        return self._size

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

    def __getstate__(self) -> dict[str, Any]:
        # the builder of the sample objects is a closure: pickle the samples instead
        state = dict(self.__dict__)
        state["_samples"] = self.samples
        state["_build"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def fields(self) -> list[str]:
        """The field names of the samples."""
        cls = self.sample_type
        if cls is not None and is_packable(cls):
            return [f.name for f in sample_fields(cls)]
        samples = self.samples
        if samples and isinstance(samples[0], DictSample):
            return list(samples[0].keys())
        if samples and hasattr(samples[0], "__dict__"):
            return [k for k in vars(samples[0]) if not k.startswith("_")]
        return []

    def to_dict(self) -> dict[str, Any]:
        """Every field as a column: ``{name: stacked array or list}``."""
        return {name: self[name] for name in self.fields()}

    def _column(self, name: str) -> Any:
        values = self._values.pop(name, None)
        if values is None:
            try:
                values = [getattr(s, name) for s in self.samples]
            except AttributeError:
                raise AttributeError(
                    f"samples of this batch have no field {name!r}; fields are {self.fields()}"
                ) from None
        if values and type(values[0]) is np.ndarray:
            return _stack(values)
        return values

    def __repr__(self) -> str:
        name = self.sample_type.__qualname__ if self.sample_type is not None else "?"
        return f"SampleBatch[{name}]({self._size} samples)"


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
