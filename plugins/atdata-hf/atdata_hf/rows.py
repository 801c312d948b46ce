"""Rows of a Hugging Face dataset and atdata samples, both ways.

Rows come in as Arrow storage (``with_format("arrow")``), never decoded by
Hugging Face: an ``Image`` is its ``{"bytes", "path"}`` struct, an
``Array3D`` its nested lists. Dense arrays of a whole batch are converted
from Arrow at once where the column allows it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from atdata_core.errors import SampleTypeError
from atdata_core.plugins import Array, ListOf, Nested, Optional, Scalar, sample_fields

__all__ = ["row_from_sample", "samples_from_table"]

_MEDIA = ("Image", "Audio")


def _kind(feature: Any) -> str:
    return "dict" if isinstance(feature, dict) else type(feature).__name__


def _media_bytes(value: Any, where: str) -> bytes | None:
    """The encoded file of an Image or Audio value (``{"bytes", "path"}``), read from its path when not embedded."""
    if value is None:
        return None
    data = value.get("bytes")
    if data is not None:
        return bytes(data)
    path = value.get("path")
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    raise SampleTypeError(
        f"{where}: the file is neither embedded in the dataset nor a local file ({path!r}); "
        "download the files the dataset names first, so that their paths are local"
    )


def _to_atdata(value: Any, ft: Any, feature: Any, where: str) -> Any:
    if isinstance(ft, Optional):
        return None if value is None else _to_atdata(value, ft.inner, feature, where)
    if value is None:
        raise SampleTypeError(
            f"{where}: a missing value (None) in a field that is not optional; allow missing values by naming "
            "the field: from_hf(..., optional=['column', 'outer.inner', 'column[]']), or "
            "atdata hf import --optional column"
        )
    kind = _kind(feature)
    if kind in _MEDIA:
        return _media_bytes(value, where)
    if isinstance(ft, Array):
        array = np.asarray(value, dtype=ft.dtype)
        return array
    if isinstance(ft, ListOf):
        item = feature.feature
        return [_to_atdata(v, ft.item, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(ft, Nested):
        return _sample(ft.cls, value, feature, where)
    if isinstance(ft, Scalar) and ft.type is float:
        return float(value)
    return value


def _sample(cls: type, row: dict[str, Any], features: Any, where: str) -> Any:
    values = {}
    for field in sample_fields(cls):
        values[field.name] = _to_atdata(row.get(field.name), field.type, features[field.name], f"{where}.{field.name}")
    return cls(**values)


def _dense_column(column: Any, ft: Array) -> list[Any] | None:
    """Every row of an Arrow column of fixed-shape arrays as ndarrays, converted at once; None when not possible.

    Works on lists nested to the field's depth (Array2D-5D store theirs so)
    whose inner lengths are fixed, with no missing value at any level.
    """
    import pyarrow as pa

    if ft.shape is None or ft.dtype is None:
        return None
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if array.null_count:
        return None
    n = len(array)
    outer = None
    level = array
    for depth in range(len(ft.shape)):
        if not (pa.types.is_list(level.type) or pa.types.is_large_list(level.type)
                or pa.types.is_fixed_size_list(level.type)):
            return None
        if depth == 0:
            outer = np.asarray(level.value_lengths().to_numpy(zero_copy_only=False), dtype=np.int64)
        level = level.flatten()
        if level.null_count:
            return None
    inner = tuple(ft.shape[1:])
    per_row = int(np.prod(inner, dtype=np.int64)) if inner else 1
    leaf = level.to_numpy(zero_copy_only=False)
    if outer is None or leaf.size != int(outer.sum()) * per_row:
        return None  # ragged inner lists: the row-by-row path says which row
    leaf = leaf.astype(ft.dtype, copy=False)
    ends = np.cumsum(outer * per_row)
    starts = ends - outer * per_row
    return [leaf[s:e].reshape((int(length), *inner)) for s, e, length in zip(starts, ends, outer)][:n]


def samples_from_table(cls: type, table: Any, features: Any, *, first_row: int = 0) -> list[Any]:
    """The samples of ``cls`` for every row of an Arrow table of a Hugging Face dataset."""
    fields = sample_fields(cls)
    dense: dict[str, list[Any]] = {}
    for field in fields:
        if isinstance(field.type, Array) and _kind(features[field.name]) not in _MEDIA:
            converted = _dense_column(table.column(field.name), field.type)
            if converted is not None:
                dense[field.name] = converted
    rest = [f.name for f in fields if f.name not in dense]
    python = table.select(rest).to_pylist() if rest else [{} for _ in range(table.num_rows)]
    out = []
    for i, row in enumerate(python):
        where = f"row {first_row + i}"
        values = {}
        for field in fields:
            if field.name in dense:
                values[field.name] = dense[field.name][i]
            else:
                values[field.name] = _to_atdata(row.get(field.name), field.type, features[field.name],
                                                f"{where}, column {field.name}")
        out.append(cls(**values))
    return out


# --------------------------------------------------------------------------- atdata -> Hugging Face


def _to_hf(value: Any, feature: Any) -> Any:
    if value is None:
        return None
    kind = _kind(feature)
    if kind in _MEDIA:
        return {"bytes": bytes(value), "path": None}
    if kind == "dict":
        return {name: _to_hf(getattr(value, name, None) if not isinstance(value, dict) else value.get(name), sub)
                for name, sub in feature.items()}
    if kind in ("List", "LargeList", "Sequence") and not isinstance(value, np.ndarray):
        return [_to_hf(v, feature.feature) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def row_from_sample(sample: Any, features: Any) -> dict[str, Any]:
    """One sample as a Hugging Face row for ``features`` (arrays stay ndarrays: Hugging Face encodes them)."""
    if isinstance(sample, Mapping) or not hasattr(sample, "__dataclass_fields__"):
        # a DictSample (or a plain map) holds its fields by key
        return {name: _to_hf(sample[name] if name in sample else None, feature) for name, feature in features.items()}
    return {name: _to_hf(getattr(sample, name), feature) for name, feature in features.items()}
