"""A Ray Data ``Datasource`` over atdata shards: one read task per shard, typed Arrow columns.

::

    import ray
    from atdata_ray import read_atdata

    rds = read_atdata("data/train-{000000..000099}.tar", ImageSample)   # a local pattern
    rds = read_atdata(["https://example.org/a-000000.tar", ...])         # a URL list
    rds = read_atdata("@alice.example.com/mnist@v2", columns=["image"])  # a published reference
    for batch in rds.iter_batches(batch_size=128):
        batch["image"]   # np.ndarray (128, 28, 28) uint8

Each read task reads exactly one shard, whatever ``RANK`` / ``WORLD_SIZE``
say: Ray Train sets them in its workers, and atdata's own pipelines split
shards by them, so a task that inherited them would read a fraction of its
shard list (or nothing). Shards whose sha256 is known (a published entry,
``ShardInfo`` records, ``checksums=``) are verified; a mismatch fails the
read with :class:`~atdata_core.errors.ChecksumError` naming the shard.

Blocks are :meth:`atdata_core.SampleBatch.to_arrow` record batches: array
fields as Arrow ``fixed_shape_tensor`` columns over the decoded arrays
(no copy on our side), scalars as typed columns. A batch whose arrays differ
in shape goes through Ray's own tensor columns instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from ray.data import Datasource, ReadTask
from ray.data.block import BlockAccessor, BlockMetadata

import atdata_core
from atdata_core.errors import SampleTypeError, StorageError
from atdata_core.plugins import Array, storage_backend

__all__ = ["DEFAULT_BATCH_SIZE", "AtdataDatasource", "read_atdata"]

#: Rows per Arrow block a read task yields (Ray merges or splits blocks to its own target size).
DEFAULT_BATCH_SIZE = 1024


def read_atdata(
    source: Any,
    sample_type: type | None = None,
    *,
    columns: Iterable[str] | None = None,
    verify: bool = True,
    checksums: dict[str, str] | None = None,
    on_error: Any = "raise",
    index: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    ray_remote_args: dict[str, Any] | None = None,
) -> Any:
    """An atdata dataset as a ``ray.data.Dataset`` (see :class:`AtdataDatasource` for the arguments).

    >>> rds = read_atdata("@alice.example.com/mnist")       # doctest: +SKIP
    >>> rds.schema()                                         # doctest: +SKIP
    """
    import ray.data

    datasource = AtdataDatasource(
        source,
        sample_type,
        columns=columns,
        verify=verify,
        checksums=checksums,
        on_error=on_error,
        index=index,
        batch_size=batch_size,
    )
    return ray.data.read_datasource(datasource, ray_remote_args=ray_remote_args or {})


def _is_reference(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(("at://", "@"))


class AtdataDatasource(Datasource):
    """Read atdata shards with Ray Data, one read task per shard.

    Args:
        source: a local path, pattern or glob (``data-{000000..000009}.tar``),
            a URL or a list of URLs or paths, a list of
            :class:`~atdata_core.ShardInfo` (``ShardWriter.shards``), a
            published reference (``at://...``, ``@handle/name``,
            ``@handle/name@label``, resolved by :func:`atdata_core.load`), or
            an :class:`atdata_core.Dataset` (its map, filter and lens stages
            run in the read tasks).
        sample_type: the packable class the samples decode to; default: the
            published schema's class for a reference, else
            :class:`~atdata_core.DictSample`.
        columns: the fields to read (all by default). Ray's
            ``select_columns`` on the dataset is pushed down here too.
        verify: check each shard's sha256 where it is known (default). A
            :class:`atdata_core.Dataset` passed in reads as it was made (its
            read tasks each carry the whole dataset and read their shard of it).
        checksums: ``{url: sha256 hex}`` for shards given by URL.
        on_error: ``"raise"`` (default), ``"skip"`` or a callable, as for
            :class:`atdata_core.Dataset`.
        index: the index provider answering a reference's look-ups (name or object).
        batch_size: rows per block a read task yields.

    ``parallelism`` is not honoured: there is one read task per shard, so
    write shards of a few thousand samples for a Ray cluster to share.
    """

    def __init__(
        self,
        source: Any,
        sample_type: type | None = None,
        *,
        columns: Iterable[str] | None = None,
        verify: bool = True,
        checksums: dict[str, str] | None = None,
        on_error: Any = "raise",
        index: Any = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__()
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if isinstance(columns, str):
            raise TypeError(f"columns must be a list of field names, not the string {columns!r}")
        self._projection_map = None if columns is None else {name: name for name in columns}
        self._batch_size = batch_size
        if isinstance(source, atdata_core.Dataset):
            if sample_type is not None and source.sample_type is not sample_type:
                source = source.as_type(sample_type)
            # Its stages may drop samples (filter, head): counts are not promised per shard.
            self._dataset, self._per_shard = source, False
        elif _is_reference(source):
            self._dataset = atdata_core.load(source, sample_type, verify=verify, on_error=on_error, index=index)
            self._per_shard = False
        else:
            dataset = atdata_core.Dataset(
                source, sample_type=sample_type, checksums=checksums, on_error=on_error
            )
            if not verify:
                dataset = atdata_core.Dataset(
                    shards=[ref._replace(sha256=None) for ref in dataset.shards],
                    sample_type=sample_type,
                    on_error=on_error,
                )
            # plain relative paths name files from here, and a Ray worker may run elsewhere
            shards = [_absolute(ref) for ref in dataset.shards]
            if shards != dataset.shards:
                dataset = atdata_core.Dataset(shards=shards, sample_type=sample_type, on_error=on_error)
            self._dataset, self._per_shard = dataset, True
        self._sample_type = self._dataset.sample_type
        self._on_error = on_error
        self._shards = self._dataset.shards
        self._sizes: list[int | None] | None = None
        self._check_columns(self._get_data_columns())

    # -- what Ray asks

    def get_name(self) -> str:
        return "Atdata"

    def supports_projection_pushdown(self) -> bool:
        return True

    def apply_projection(self, projection_map: dict[str, str] | None) -> AtdataDatasource:
        clone = super().apply_projection(projection_map)
        clone._check_columns(clone._get_data_columns())
        return clone

    def estimate_inmemory_data_size(self) -> int | None:
        """The shards' total size in bytes (recorded, else asked of their storage); None if unknown.

        The decoded columns take about as much memory as the msgpack bytes.
        """
        sizes = self._shard_sizes()
        if any(size is None for size in sizes):
            return None
        return sum(sizes)  # type: ignore[arg-type]

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        columns = self._get_data_columns()
        sizes = self._shard_sizes()
        world = len(self._shards)
        tasks = []
        for rank, (ref, size) in enumerate(zip(self._shards, sizes)):
            if self._per_shard:
                # a dataset of this one shard: what the task carries stays small however many shards there are
                read = _ShardRead(
                    atdata_core.Dataset(shards=[ref], sample_type=self._sample_type, on_error=self._on_error),
                    0, 1, columns, self._batch_size,
                )
                rows = ref.count
            else:
                read = _ShardRead(self._dataset, rank, world, columns, self._batch_size)
                rows = None
            metadata = BlockMetadata(num_rows=rows, size_bytes=size, input_files=[str(ref.url)], exec_stats=None)
            tasks.append(ReadTask(read, metadata, per_task_row_limit=per_task_row_limit))
        return tasks

    # -- internals

    @property
    def shards(self) -> list[Any]:
        """The shards read, one read task each (``ShardRef(url, sha256, count, size)``)."""
        return list(self._shards)

    @property
    def sample_type(self) -> type | None:
        """The class the samples decode to (None after a ``Dataset.map``)."""
        return self._sample_type

    def _check_columns(self, columns: list[str] | None) -> None:
        if columns is None or self._sample_type is None or not atdata_core.is_packable(self._sample_type):
            return
        known = [f.name for f in atdata_core.sample_fields(self._sample_type)]
        unknown = [name for name in columns if name not in known]
        if unknown:
            raise ValueError(
                f"{self._sample_type.__qualname__} has no field(s) {unknown}; its fields are {known}"
            )

    def _shard_sizes(self) -> list[int | None]:
        if self._sizes is None:
            sizes: list[int | None] = []
            for ref in self._shards:
                size = ref.size
                if size is None:
                    try:
                        size = storage_backend(str(ref.url)).size(str(ref.url))
                    except (StorageError, OSError):
                        size = None
                sizes.append(None if size is None else int(size))
            self._sizes = sizes
        return self._sizes


def _absolute(ref: Any) -> Any:
    url = str(ref.url)
    if "://" in url or os.path.isabs(url):
        return ref
    return ref._replace(url=os.path.abspath(url))


class _ShardRead:
    """The work of one read task: shard ``rank`` of ``world`` of a dataset, as Arrow blocks.

    ``rank`` and ``world_size`` are given to the pipeline explicitly, so the
    ``RANK`` / ``WORLD_SIZE`` a Ray Train worker carries are never consulted.
    """

    def __init__(self, dataset: Any, rank: int, world: int, columns: list[str] | None, batch_size: int):
        self.dataset = dataset
        self.rank = rank
        self.world = world
        self.columns = columns
        self.batch_size = batch_size

    def batches(self) -> Iterator[Any]:
        """The shard's samples as :class:`atdata_core.SampleBatch` objects (the read without Ray)."""
        return iter(self.dataset.ordered(self.batch_size, rank=self.rank, world_size=self.world, epochs=1))

    def __call__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield batch_to_block(batch, self.columns)


def batch_to_block(batch: Any, columns: list[str] | None = None) -> Any:
    """A :class:`atdata_core.SampleBatch` as a Ray block (a ``pyarrow.Table``).

    Array columns become Arrow fixed-shape tensors over the batch's own
    memory; a column Arrow cannot type that way (arrays of differing shapes)
    goes through Ray's own tensor columns, which hold ragged arrays.
    """
    import pyarrow as pa

    if columns is not None and not columns:
        # Ray counts a block's rows by its columns, so a read asked for none (a count) keeps one,
        # the cheapest: a field that is no array
        fields = batch.fields()
        arrays = _array_fields(batch.sample_type)
        columns = ([name for name in fields if name not in arrays] or fields)[:1]
    try:
        record_batch = batch.to_arrow(columns)
    except SampleTypeError:
        return BlockAccessor.batch_to_block(batch.to_numpy(columns))
    return pa.Table.from_batches([record_batch])




def _array_fields(cls: Any) -> set[str]:
    if cls is None or not atdata_core.is_packable(cls):
        return set()
    return {f.name for f in atdata_core.sample_fields(cls) if isinstance(f.type, Array)}
