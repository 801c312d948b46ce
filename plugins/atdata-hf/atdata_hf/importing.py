"""``from_hf``: a Hugging Face dataset written as typed atdata shards, optionally published."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

import atdata_core
from atdata_core.errors import SampleTypeError
from atdata_core.plugins import sample_fields

from atdata_hf.features import sample_type_from_features
from atdata_hf.rows import samples_from_table

__all__ = ["HfImport", "from_hf", "optional_columns"]


@attrs.frozen
class HfImport:
    """What :func:`from_hf` made: the sample class, the shards, a dataset over them, and what was published."""

    sample_type: type
    shards: list[Any]
    dataset: Any
    schema: Any = None
    entry: Any = None

    @property
    def count(self) -> int:
        """How many samples were written."""
        return sum(shard.count for shard in self.shards)


def _is_iterable_dataset(hf_dataset: Any) -> bool:
    import datasets

    return isinstance(hf_dataset, datasets.IterableDataset)


def _null_paths(array: Any, feature: Any, path: str, out: set[str]) -> None:
    """Add the path of every field of ``feature`` that holds a missing value in ``array``."""
    import pyarrow as pa

    if array.null_count:
        out.add(path)
    if isinstance(feature, dict) and pa.types.is_struct(array.type):
        for name, sub in feature.items():
            index = array.type.get_field_index(name)
            if index >= 0:
                _null_paths(array.field(index), sub, f"{path}.{name}" if path else name, out)
    elif type(feature).__name__ in ("List", "LargeList", "Sequence") and (
        pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type)
    ):
        _null_paths(array.flatten(), feature.feature, f"{path}[]", out)


def optional_columns(hf_dataset: Any) -> set[str]:
    """The fields of an Arrow-backed Hugging Face dataset that hold a missing value somewhere.

    Paths as :func:`~atdata_hf.features.sample_type_from_features` takes them
    (``column``, ``outer.inner``, ``column[]``). Read from Arrow's null counts:
    no row is decoded. An ``IterableDataset`` cannot be inspected without
    reading it, so it gives an empty set.
    """
    if _is_iterable_dataset(hf_dataset):
        return set()
    out: set[str] = set()
    table = hf_dataset.data.table if hasattr(hf_dataset.data, "table") else hf_dataset.data
    for name, feature in hf_dataset.features.items():
        column = table.column(name)
        for chunk in column.chunks:
            _null_paths(chunk, feature, name, out)
    return out


def _total(hf_dataset: Any) -> int | None:
    if not _is_iterable_dataset(hf_dataset):
        return len(hf_dataset)
    info = getattr(hf_dataset, "info", None)
    splits = getattr(info, "splits", None) or {}
    split = getattr(hf_dataset, "split", None)
    if split is not None and str(split) in splits:
        return splits[str(split)].num_examples or None
    return None


def _tables(hf_dataset: Any, batch_size: int) -> Iterable[Any]:
    """Arrow tables of ``batch_size`` rows, as stored: Hugging Face decodes nothing."""
    yield from hf_dataset.with_format("arrow").iter(batch_size=batch_size)


def from_hf(
    hf_dataset: Any,
    pattern: str,
    *,
    name: str = "HfSample",
    sample_type: type | None = None,
    optional: Iterable[str] | None = None,
    maxcount: int = 10_000,
    maxsize: int | None = 3_000_000_000,
    batch_size: int = 1000,
    progress: bool = True,
    client: Any = None,
    schema_id: str | None = None,
    version: str = "1.0.0",
    dataset_name: str | None = None,
    storage: str | None = None,
    description: str | None = None,
    license: str | None = None,
    tags: Sequence[str] = (),
) -> HfImport:
    """Write a Hugging Face ``Dataset`` or ``IterableDataset`` as atdata shards of a generated sample class.

    The class has one field per feature (see :mod:`atdata_hf.features`);
    ``name`` is its name. Fields that hold a missing value are optional: an
    Arrow-backed ``Dataset`` is checked for them from its null counts, an
    ``IterableDataset`` cannot be, so name them with ``optional`` (column
    names; ``outer.inner`` for nested fields, ``column[]`` for list items).
    Pass ``sample_type`` to write into a class of your own with the same
    field names instead.

    ``pattern`` names the shards as :class:`atdata_core.ShardWriter` does
    (``"out/mnist-%06d.tar"``, or an ``s3://`` pattern with atdata-storage-s3);
    ``maxcount`` / ``maxsize`` roll shards over. A progress bar counts rows
    unless ``progress=False``.

    With a logged-in ``client`` the schema is published as
    ``schema_id``:``version`` and the shards as the entry ``dataset_name``
    (local shards are placed through ``storage``, a backend name or URL
    prefix, as :func:`atdata_core.publish_dataset` does).

    >>> done = from_hf(load_dataset("mnist", split="train"), "mnist/train-%06d.tar", name="Digit")  # doctest: +SKIP
    >>> done.dataset                                                                              # doctest: +SKIP
    Dataset[Digit](7 shards, 60000 samples)
    """
    import datasets
    from tqdm import tqdm

    if isinstance(hf_dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise TypeError(
            f"from_hf takes one split, not a {type(hf_dataset).__name__} of {sorted(hf_dataset)}; "
            "pass hf_dataset['train'] (or load_dataset(..., split='train'))"
        )
    if not isinstance(hf_dataset, (datasets.Dataset, datasets.IterableDataset)):
        raise TypeError(f"from_hf takes a datasets.Dataset or IterableDataset, not {type(hf_dataset).__name__}")
    features = hf_dataset.features
    if features is None:
        raise SampleTypeError(
            "this IterableDataset does not know its features (Hugging Face infers them only when it reads); "
            "give them: load_dataset(..., features=...) or hf_dataset = hf_dataset.cast(features)"
        )
    if client is not None and (schema_id is None or dataset_name is None):
        raise ValueError("publishing needs schema_id= (com.example.name) and dataset_name= besides client=")
    if sample_type is None:
        wanted = set(optional) if optional is not None else optional_columns(hf_dataset)
        sample_type = sample_type_from_features(features, name=name, optional=wanted)
    else:
        missing = [f.name for f in sample_fields(sample_type) if f.name not in features]
        if missing:
            raise SampleTypeError(
                f"{sample_type.__name__} has fields the Hugging Face dataset has no column for: {missing} "
                f"(its columns: {list(features)}); rename the columns or leave sample_type out to generate a class"
            )

    bar = tqdm(total=_total(hf_dataset), unit=" rows", desc="importing", disable=not progress)
    written = 0
    try:
        with atdata_core.ShardWriter(pattern, maxcount=maxcount, maxsize=maxsize) as sink:
            for table in _tables(hf_dataset, batch_size):
                for sample in samples_from_table(sample_type, table, features, first_row=written):
                    sink.write(sample)
                written += table.num_rows
                bar.update(table.num_rows)
    finally:
        bar.close()
    shards = list(sink.shards)
    if not shards:
        raise SampleTypeError("the Hugging Face dataset has no rows: nothing was written")
    dataset = atdata_core.Dataset(shards, sample_type=sample_type)

    schema = entry = None
    if client is not None:
        schema = atdata_core.publish_schema(
            client, sample_type, schema_id=schema_id, version=version, description=description,
            license=license, tags=tuple(tags),
        )
        entry = atdata_core.publish_dataset(
            client, dataset_name, shards, schema=schema, storage=storage, description=description,
            tags=tuple(tags), license=license, progress=progress,
        )
    return HfImport(sample_type=sample_type, shards=shards, dataset=dataset, schema=schema, entry=entry)
