"""PyTorch adapter: a :class:`Dataset` or :class:`Pipeline` as a ``torch.utils.data.IterableDataset``.

Needs the optional extra ``atdata-core[torch]``; the rest of atdata-core never
imports torch. Shards are split across DataLoader workers (and across nodes,
from ``torch.distributed`` or ``RANK``/``WORLD_SIZE``) when iteration starts in
each worker, so every sample is read by exactly one worker.

What comes out (``as_dict=True``, the default):

- unbatched: one ``dict`` per sample, ``{field: value}``, arrays as tensors.
  Let the DataLoader batch them (``batch_size=32``): its default collate
  stacks tensors and numbers and lists strings.
- batched (``batch_size=`` given here): one ``dict`` per batch; array fields
  stacked into one tensor (batch first), numeric fields as 1-D tensors, the
  rest as lists. Use ``DataLoader(..., batch_size=None)`` so it passes the
  batches through; batching in the workers is the fast path.

With ``as_dict=False`` the samples or :class:`~atdata_core.SampleBatch` objects
come out as the pipeline yields them (numpy arrays, no conversion).

Decoded arrays are read-only views over the shard bytes; a tensor made from
one gets its own copy. Stacked batch arrays are already fresh and are shared
with the tensor without a copy.

Plugins: local shards open without plugin discovery. When the shards need a
storage plugin (``http://``, ``s3://``...), plugins are discovered once, when
the ``TorchDataset`` is made, so that forked DataLoader workers inherit them
instead of discovering them again at every epoch. Spawned workers start
afresh and discover once each: give the DataLoader ``persistent_workers=True``
to do that once per run rather than once per epoch.

Example::

    from torch.utils.data import DataLoader
    ds = Dataset[ImageSample]("data-{000000..000099}.tar")
    loader = DataLoader(ds.torch(shuffle=True, seed=0, batch_size=128), batch_size=None, num_workers=4)
    for batch in loader:
        batch["image"]   # torch.uint8 tensor, shape (128, 3, 64, 64)
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from typing import Any, Iterator

import numpy as np

try:
    import torch
    import torch.utils.data
except ImportError as exc:  # the optional extra is not installed
    raise ImportError(
        f"atdata_core.torch needs PyTorch ({exc}); install the extra: pip install 'atdata-core[torch]'"
    ) from exc

# Not atdata_core.dataset: Dataset.torch() imports this module, and the two must not import
# each other. A Dataset is recognised through the module that defined it (see _is_dataset).
from ._batch import SampleBatch
from ._dict_sample import DictSample
from ._fields import is_packable
from ._pipeline import Pipeline

__all__ = ["TorchDataset", "to_torch", "to_tensor"]


def to_torch(
    data: Any,
    *,
    shuffle: bool = False,
    seed: int = 0,
    buffer: int = 1000,
    batch_size: int | None = None,
    drop_last: bool = False,
    epochs: Any = ...,
    resampled: bool = False,
    as_dict: bool = True,
) -> "TorchDataset":
    """Wrap a :class:`~atdata_core.Dataset` (or a ready :class:`~atdata_core.Pipeline`) as a torch ``IterableDataset``.

    Given a :class:`Dataset`, the other arguments choose the pipeline
    (``shuffle=True`` is :meth:`Dataset.shuffled`, else :meth:`Dataset.ordered`).
    Given a :class:`Pipeline` (``ds.shuffled(...)``), it is used as it is.

    >>> loader = DataLoader(to_torch(ds, batch_size=64), batch_size=None, num_workers=2)  # doctest: +SKIP
    """
    if isinstance(data, Pipeline):
        if shuffle or seed != 0 or buffer != 1000 or batch_size is not None or drop_last or resampled or epochs is not ...:
            raise TypeError(
                "to_torch() got a Pipeline, which already fixes order and batching; pass those "
                "arguments to ds.shuffled(...) / ds.ordered(...) instead, or pass the Dataset"
            )
        pipeline = data
    elif _is_dataset(data):
        if shuffle:
            pipeline = data.shuffled(
                seed, buffer, batch_size, drop_last=drop_last, epochs=epochs, resampled=resampled
            )
        else:
            if resampled:
                raise ValueError("resampled=True draws shards at random: pass shuffle=True with it")
            pipeline = data.ordered(batch_size, drop_last=drop_last, epochs=epochs)
    else:
        raise TypeError(f"to_torch() takes a Dataset or a Pipeline (ds.ordered() / ds.shuffled()), not {type(data).__name__}")
    return TorchDataset(pipeline, as_dict=as_dict)


def _is_dataset(data: Any) -> bool:
    # A Dataset exists only once atdata_core.dataset is imported, so looking it up there
    # (rather than importing it) is exact and keeps this module off the dataset module.
    module = sys.modules.get("atdata_core.dataset")
    return module is not None and isinstance(data, module.Dataset)


class TorchDataset(torch.utils.data.IterableDataset):
    """A :class:`Pipeline` as a torch ``IterableDataset``; see :func:`to_torch`.

    Call :meth:`set_epoch` before each epoch for a new shuffled order (as with
    ``DistributedSampler``); with ``persistent_workers=True`` the workers keep
    the epoch they started with. Create it after ``init_process_group`` so that
    spawned workers (which do not inherit the process group) know the node rank.
    """

    def __init__(self, pipeline: Pipeline[Any], *, as_dict: bool = True):
        super().__init__()
        self.pipeline = pipeline
        self.as_dict = as_dict
        # Spawned DataLoader workers do not inherit the process group: remember the node's
        # rank now (when the process group is already initialised) for them.
        self._node: tuple[int, int] | None = None
        if pipeline.world_size is None and _distributed_ready():
            self._node = (torch.distributed.get_rank(), torch.distributed.get_world_size())
        _discover_for_workers(pipeline)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (changes a shuffled order)."""
        self.pipeline.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        pipeline = self.pipeline
        if self._node is not None and not _distributed_ready():
            pipeline = copy.copy(pipeline)
            pipeline.rank, pipeline.world_size = self._node
        if not self.as_dict:
            return iter(pipeline)
        return map(_convert, pipeline)

    def __repr__(self) -> str:
        return f"TorchDataset({self.pipeline!r})"


def _discover_for_workers(pipeline: Pipeline[Any]) -> None:
    """Discover plugins now, in the process that starts the workers, if any shard's storage needs them."""
    from .storage import _local_file_storage

    schemes: dict[str, str] = {}
    for ref in pipeline.dataset._shards:
        schemes.setdefault(ref.url.split("://", 1)[0].lower() if "://" in ref.url else "", ref.url)
    if any(_local_file_storage(url) is None for url in schemes.values()):
        from .plugins import get_registry

        get_registry()


def _distributed_ready() -> bool:
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized()


def _convert(item: Any) -> Any:
    if isinstance(item, SampleBatch):
        return {name: _column_tensor(item[name]) for name in item.fields()}
    return to_tensor(item)


def _column_tensor(column: Any) -> Any:
    if isinstance(column, np.ndarray):
        return _array_tensor(column)
    if column and all(type(v) in (int, float, bool) for v in column):
        kinds = {type(v) for v in column}
        dtype = torch.float64 if float in kinds else torch.bool if kinds == {bool} else torch.int64
        return torch.tensor(column, dtype=dtype)
    return [to_tensor(v) for v in column]


def _array_tensor(array: np.ndarray) -> torch.Tensor:
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")  # a view over shard bytes: give the tensor its own copy
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    return torch.from_numpy(array)


def to_tensor(value: Any) -> Any:
    """Arrays to tensors, samples to dicts of fields, recursively; other values as they are.

    >>> to_tensor(DictSample(x=np.zeros(2), y="a"))   # doctest: +SKIP
    {'x': tensor([0., 0.], dtype=torch.float64), 'y': 'a'}
    """
    if isinstance(value, np.ndarray):
        return _array_tensor(value)
    if isinstance(value, DictSample):
        return {k: to_tensor(v) for k, v in value.items()}
    if is_packable(type(value)):
        return {f.name: to_tensor(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_tensor(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_tensor(v) for v in value) if isinstance(value, list) else tuple(to_tensor(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value
