"""``SampleBatch``: a list of samples whose fields read as columns."""

from __future__ import annotations

from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar, overload

import numpy as np

from ._dict_sample import DictSample
from ._fields import Array, ListOf, Optional, Scalar, is_packable, sample_fields
from .errors import SampleTypeError

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

    def to_numpy(self, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Every field (or those named in ``fields``) as a numpy array, batch first.

        Array fields are the stacked columns (``batch.image``) as they are, not
        copied; arrays of differing shapes or dtypes become a 1-D object array
        holding them. Fields declared ``int``, ``float`` or ``bool`` become
        ``int64``, ``float64`` and ``bool`` arrays (an ``int`` beyond int64, or
        a ``None``, makes the column an object array); ``str``, ``bytes``,
        lists, maps and nested samples are object arrays of the values.

        >>> cols = batch.to_numpy()     # doctest: +SKIP
        >>> cols["label"].dtype, cols["image"].shape
        (dtype('int64'), (128, 3, 64, 64))
        """
        types = self._field_types()
        out: dict[str, np.ndarray] = {}
        for name in self._chosen(fields):
            column = self[name]
            if type(column) is np.ndarray:
                out[name] = column
            else:
                out[name] = _numpy_column(column, types.get(name))
        return out

    def to_arrow(self, fields: Iterable[str] | None = None) -> Any:
        """The batch as a ``pyarrow.RecordBatch`` (needs ``pip install 'atdata-core[arrow]'``).

        Array fields whose arrays share a shape and dtype become Arrow
        ``fixed_shape_tensor`` columns over the stacked column's memory,
        without a copy (``bool`` and big-endian arrays are the exceptions:
        Arrow packs booleans into bits and stores numbers little-endian).
        Scalar fields become Arrow columns of their declared type (``int`` as
        ``int64``, ``str`` as ``string``, ``bytes`` as ``binary``; optional
        fields nullable; ``list[T]`` as lists), anything else as pyarrow infers
        it. ``fields`` chooses and orders the columns.

        A field holding arrays of differing shapes or dtypes, or of a kind
        Arrow has no type for (strings, objects, complex numbers), raises
        :class:`~atdata_core.errors.SampleTypeError` naming it: read such a
        field with :meth:`to_numpy`, or leave it out with ``fields``.

        >>> record_batch = batch.to_arrow()    # doctest: +SKIP
        >>> record_batch.column("image").to_numpy_ndarray().shape
        (128, 3, 64, 64)
        """
        try:
            import pyarrow as pa
        except ImportError as exc:
            raise ImportError(
                f"SampleBatch.to_arrow() needs pyarrow ({exc}); install the extra: pip install 'atdata-core[arrow]'"
            ) from exc
        types = self._field_types()
        names = self._chosen(fields)
        if not names:  # no columns, still as many rows as samples
            return pa.RecordBatch.from_arrays([pa.nulls(self._size)], names=["_"]).select([])
        arrays = [_arrow_column(pa, name, self[name], types.get(name), self._size) for name in names]
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _chosen(self, fields: Iterable[str] | None) -> list[str]:
        if fields is None:
            return self.fields()
        if isinstance(fields, str):
            raise TypeError(f"fields must be a list of field names, not the string {fields!r}")
        names = list(fields)
        known = self.fields()
        unknown = [name for name in names if name not in known]
        if unknown and known:
            raise AttributeError(f"samples of this batch have no field(s) {unknown}; fields are {known}")
        return names

    def _field_types(self) -> dict[str, Any]:
        cls = self.sample_type
        if cls is not None and is_packable(cls):
            return {f.name: f.type for f in sample_fields(cls)}
        return {}

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


# --------------------------------------------------------------------------- numpy and Arrow columns

_NUMPY_SCALARS: dict[type, Any] = {int: np.int64, float: np.float64, bool: np.bool_}


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):  # item by item: a slice assignment would unpack lists and arrays
        out[i] = value
    return out


def _numpy_column(values: list[Any], field_type: Any) -> np.ndarray:
    """A column that is not one stacked array (scalars, ragged arrays...) as a numpy array."""
    kind = field_type.type if isinstance(field_type, Scalar) else None
    if kind is None and field_type is None and values:
        # an untyped batch (DictSample): numbers and booleans when every value is one
        first = type(values[0])
        if first in _NUMPY_SCALARS and all(type(v) is first for v in values):
            kind = first
    dtype = _NUMPY_SCALARS.get(kind)  # type: ignore[arg-type]
    if dtype is not None:
        try:
            return np.array(values, dtype=dtype)
        except (OverflowError, TypeError, ValueError):
            pass  # beyond int64, or a value of another kind: keep the values as they are
    return _object_array(values)


# numpy dtype kinds Arrow holds as the same bytes: signed, unsigned, float, bool (bit-packed: a copy)
_ARROW_KINDS = frozenset("iufb")
_TENSOR_TYPES: dict[tuple[str, tuple[int, ...]], Any] = {}


def _arrow_scalar_type(pa: Any, field_type: Any) -> Any:
    """The Arrow type of a scalar, optional or list field; None to let pyarrow infer it."""
    if isinstance(field_type, Optional):
        return _arrow_scalar_type(pa, field_type.inner)
    if isinstance(field_type, Scalar):
        return {
            int: pa.int64(),
            float: pa.float64(),
            bool: pa.bool_(),
            str: pa.string(),
            bytes: pa.binary(),
        }.get(field_type.type)
    if isinstance(field_type, ListOf):
        item = _arrow_scalar_type(pa, field_type.item)
        return None if item is None else pa.list_(item)
    return None


def _tensor_column(pa: Any, name: str, column: np.ndarray) -> Any:
    """A stacked array column as an Arrow array: a fixed-shape tensor over the same memory."""
    dtype = column.dtype
    if dtype.kind not in _ARROW_KINDS:
        raise SampleTypeError(
            f"field {name!r} holds arrays of dtype {dtype}, which Arrow has no type for; "
            "read it with to_numpy(), or leave it out with to_arrow(fields=[...])"
        )
    if not dtype.isnative:
        column = column.astype(dtype.newbyteorder("="))
    column = np.ascontiguousarray(column)
    value_type = pa.from_numpy_dtype(column.dtype)
    size = len(column)
    if column.ndim == 1:
        return pa.array(column, type=value_type)
    if dtype.kind == "b":
        values = pa.array(column.reshape(-1), type=value_type)
    else:
        values = pa.Array.from_buffers(value_type, column.size, [None, pa.py_buffer(column)])
    shape = column.shape[1:]
    key = (column.dtype.str, shape)
    tensor_type = _TENSOR_TYPES.get(key)
    if tensor_type is None:
        tensor_type = _TENSOR_TYPES[key] = pa.fixed_shape_tensor(value_type, list(shape))
    storage = pa.Array.from_buffers(tensor_type.storage_type, size, [None], children=[values])
    return pa.ExtensionArray.from_storage(tensor_type, storage)


def _arrow_column(pa: Any, name: str, column: Any, field_type: Any, size: int) -> Any:
    if type(column) is np.ndarray:
        return _tensor_column(pa, name, column)
    inner = field_type.inner if isinstance(field_type, Optional) else field_type
    if isinstance(inner, Array) or any(type(v) is np.ndarray for v in column[:1]):
        if all(v is None for v in column) and size:
            return pa.nulls(size, pa.null())
        raise SampleTypeError(
            f"field {name!r} holds arrays of differing shapes or dtypes (or missing ones), which one "
            "Arrow fixed-shape tensor column cannot hold; read it with to_numpy() (an object array of "
            "the arrays), or leave it out with to_arrow(fields=[...])"
        )
    arrow_type = _arrow_scalar_type(pa, field_type)
    try:
        return pa.array(column, type=arrow_type)
    except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
        raise SampleTypeError(
            f"field {name!r} cannot be an Arrow column ({type(exc).__name__}: {exc}); read it with "
            "to_numpy(), or leave it out with to_arrow(fields=[...])"
        ) from exc
