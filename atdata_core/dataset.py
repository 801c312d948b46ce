"""Typed dataset pipelines over tar shards: ``Dataset[T]``, its iterables and ``SampleBatch``.

A :class:`Dataset` names a set of shards and the type its samples decode to::

    ds = Dataset[ImageSample]("data/train-{000000..000009}.tar")
    for batch in ds.shuffled(seed=0, buffer=1000, batch_size=128):
        batch.image   # np.ndarray of shape (128, 3, 64, 64)
        batch.label   # list of 128 str

A dataset is immutable: :meth:`Dataset.map`, :meth:`Dataset.filter`,
:meth:`Dataset.as_type` and :meth:`Dataset.head` return new datasets.
:meth:`Dataset.ordered` and :meth:`Dataset.shuffled` return a :class:`Pipeline`,
an iterable that can be iterated again (same order for the same epoch).

Distributed use needs nothing extra: at iteration time a pipeline finds its
consumer (node rank from ``torch.distributed`` when initialised or the
``RANK``/``WORLD_SIZE`` environment variables, DataLoader worker from torch if
torch is already imported) and reads only its share of the shards. Shard ``i``
of the (possibly shuffled) shard list goes to node ``i % world_size``, and the
``j``-th shard of a node to worker ``j % num_workers``.

This module never imports torch; :mod:`atdata_core.torch` does, when asked.

``typing.get_origin(Dataset[ImageSample])`` is :class:`Dataset` and
``typing.get_args`` gives ``(ImageSample,)``, as for any generic class. The
parts live in private modules: ``_shard_sources`` (what a source expands to),
``_consumers`` (node rank and DataLoader worker), ``_pipeline`` (stages and
:class:`Pipeline`) and ``_batch`` (:class:`SampleBatch`).
"""

from __future__ import annotations

import types
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from ._batch import SampleBatch
from ._dict_sample import DictSample
from ._fields import is_packable
from ._pipeline import DEFAULT_BUFFER, LazyLens, Pipeline, Stage, fn_name
from ._shard_sources import describe_source, open_shard, resolve_shards
from ._shardref import ShardRef
from .errors import SampleTypeError
from .shards import OnError, _count_samples

__all__ = ["Dataset", "Pipeline", "SampleBatch", "ShardRef"]

T = TypeVar("T")
U = TypeVar("U")


class _TypedDataset(types.GenericAlias):
    """``Dataset[T]``: a generic alias that, called, builds a dataset of sample type ``T``.

    ``Dataset[ImageSample](source, ...)`` is ``Dataset(source, sample_type=ImageSample, ...)``.
    Being a ``types.GenericAlias``, ``typing.get_origin`` and ``typing.get_args``
    read it like any other parametrised class.
    """

    def __call__(self, source: Any = None, **kwargs: Any) -> "Dataset[Any]":
        if "sample_type" in kwargs:
            raise TypeError(f"{self!r}(...) already fixes the sample type; do not pass sample_type=")
        return self.__origin__(source, sample_type=self.__args__[0], **kwargs)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self.__origin__) and obj.sample_type is self.__args__[0]

    def __repr__(self) -> str:
        return f"Dataset[{self.__args__[0].__qualname__}]"

    def __reduce__(self) -> Any:
        return (self.__origin__.__class_getitem__, (self.__args__[0],))


class Dataset(Generic[T]):
    """A typed dataset: shards of msgpack samples that decode to ``T``.

    ``source`` is a URL or path, a brace pattern (``data-{000000..000099}.tar``),
    a glob, a directory, or a list of any of these; or a list of
    :class:`~atdata_core.ShardInfo` (as ``ShardWriter.shards`` returns), which
    also gives counts, sizes and checksums. Without ``T`` samples are read as
    :class:`~atdata_core.DictSample`.

    Args:
        shards: ShardInfo records for the shards (counts, sizes, sha256), or
            ``(url, sha256)`` pairs as a storage record lists them; they make
            ``len()`` and ``size_bytes`` known and checksums verified. Without
            ``source`` they are the dataset's shards.
        checksums: ``{url: sha256 hex}``; each listed shard is verified (see
            "Checksums" below).
        on_error: ``"raise"`` (default), ``"skip"`` (warn, continue with the next
            sample or shard) or a callable receiving the error.
        num_samples, num_bytes: totals known from elsewhere (an index entry's
            ``size``), used by ``len()`` / ``size_bytes`` when per-shard counts are not.
        origin: where the shard list came from (an entry's ``at://`` URI), named
            in messages.

    Checksums: a shard whose sha256 is known (from ``shards=``, ``checksums=``
    or a loaded entry) is never consumed silently when it does not match.

    - A shard of at most ``[shards] verify_buffer_bytes`` (64 MiB by default)
      is read whole and verified before its first sample is yielded. A
      mismatch raises :class:`~atdata_core.errors.ChecksumError`; under
      ``on_error="skip"`` the whole shard is skipped with a warning (a callable
      receives the error, then the shard is skipped). No sample of it is
      yielded either way. (The first shard of a batched read is decoded
      into columns while it is hashed, and its batches held back until the
      check passed: the same guarantee, and no sample object is built before it.)
    - A larger shard is verified as it streams, so its samples are yielded
      before its end is hashed. A mismatch, or any failure to read it to its
      end, found after some of its samples were yielded raises
      ``ChecksumError`` (or ``ShardError``) whatever ``on_error`` says, and
      the message says how many were yielded: discard them. Raise
      ``verify_buffer_bytes`` to verify bigger shards first, at the cost of
      holding one whole shard in memory per reader.

    Bad samples inside a shard that verifies (or has no checksum) raise
    :class:`~atdata_core.errors.SampleDecodeError` naming shard and member, or
    are skipped one by one under ``"skip"``.

    Example::

        with ShardWriter("out/data-%06d.tar", maxcount=1000) as sink:
            for s in samples:
                sink.write(s)
        ds = Dataset[ImageSample](sink.shards)
        len(ds), ds.size_bytes       # known without reading a byte
        for s in ds.head(3):
            print(s.label)
    """

    def __class_getitem__(cls, item: Any) -> Any:
        if isinstance(item, tuple) and len(item) == 1:
            item = item[0]  # typing rebuilds an alias as origin[args] (get_type_hints does)
        if isinstance(item, TypeVar) or item is Any:
            return super().__class_getitem__(item)  # type: ignore[misc]
        if item is DictSample or is_packable(item):
            return _TypedDataset(cls, (item,))
        raise SampleTypeError(
            f"Dataset[{getattr(item, '__qualname__', item)!r}]: the sample type must be a @packable "
            "class or DictSample; decorate the class with @atdata_core.packable"
        )

    _default_sample_type: type | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # class ImageDataset(Dataset[ImageSample]): ... reads ImageSample by default
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if isinstance(base, _TypedDataset):
                cls._default_sample_type = base.__args__[0]

    def __init__(
        self,
        source: Any = None,
        *,
        shards: Iterable[Any] | None = None,
        checksums: dict[str, str] | None = None,
        on_error: OnError = "raise",
        sample_type: type | None = None,
        num_samples: int | None = None,
        num_bytes: int | None = None,
        origin: str | None = None,
    ):
        if sample_type is None:
            sample_type = self._default_sample_type or DictSample
        elif sample_type is not DictSample and not is_packable(sample_type):
            raise SampleTypeError(
                f"sample_type {sample_type!r} is not a sample type; decorate it with @atdata_core.packable"
            )
        if not (on_error in ("raise", "skip") or callable(on_error)):
            raise ValueError(f"on_error must be 'raise', 'skip' or a callable, not {on_error!r}")
        refs = resolve_shards(source, shards, checksums)
        self._source_text = describe_source(source if source is not None else [r.url for r in refs])
        # A list shared with derived datasets: count() fills in counts for all of them.
        self._shards: list[ShardRef] = refs
        self._decode_type: type = sample_type
        self._out_type: type | None = sample_type
        self._stages: tuple[Stage, ...] = ()
        self._on_error: OnError = on_error
        self._num_samples = num_samples
        self._num_bytes = num_bytes
        # Where the shard list came from (an entry's at:// URI), for messages.
        self._origin = origin
        self._epochs: int | None = 1

    # -- derived datasets

    def _derive(self, **changes: Any) -> "Dataset[Any]":
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def map(self, fn: Callable[[T], U]) -> "Dataset[U]":
        """Apply ``fn`` to every sample (before shuffling and batching).

        >>> ds.map(lambda s: s.image.mean())       # doctest: +SKIP
        """
        if not callable(fn):
            raise TypeError(f"map() needs a callable, got {fn!r}")
        return self._derive(
            _stages=(*self._stages, Stage("map", fn, f"map({fn_name(fn)})")), _out_type=None
        )

    def filter(self, predicate: Callable[[T], bool]) -> "Dataset[T]":
        """Keep the samples for which ``predicate(sample)`` is true.

        >>> ds.filter(lambda s: s.label == "cat")   # doctest: +SKIP
        """
        if not callable(predicate):
            raise TypeError(f"filter() needs a callable, got {predicate!r}")
        return self._derive(
            _stages=(*self._stages, Stage("filter", predicate, f"filter({fn_name(predicate)})"))
        )

    def head(self, n: int) -> "Dataset[T]":
        """Only the first ``n`` samples (of each consumer's stream when distributed).

        >>> for s in ds.head(3): print(s.label)    # doctest: +SKIP
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"head() needs a non-negative int, got {n!r}")
        return self._derive(_stages=(*self._stages, Stage("head", n, f"head({n})")))

    def as_type(self, target: type[U], *, prefer: Any = None, graph: Any = None) -> "Dataset[U]":
        """View the samples as ``target`` through the registered lenses (shortest path).

        Reading an untyped dataset as a sample type decodes straight into it.
        ``prefer`` and ``graph`` are passed to :func:`atdata_core.lenses.find_lens`
        (which lens wins where several connect the same types; which graph to search).

        >>> Dataset[ImageSample](src).as_type(GraySample)   # doctest: +SKIP
        """
        if not is_packable(target) and target is not DictSample:
            raise SampleTypeError(
                f"as_type({target!r}): the target must be a @packable class or DictSample"
            )
        current = self._out_type
        label = f"as_type({target.__qualname__})"
        if current is target:
            return self
        if current is DictSample and not self._stages:
            # Untyped shards read as a type: decode into it directly (extra fields are ignored).
            return self._derive(_decode_type=target, _out_type=target)
        if current is None:
            stage = Stage("lens-lazy", LazyLens(target, prefer, graph), label)
        else:
            from .lenses import find_lens

            stage = Stage("lens", find_lens(current, target, prefer=prefer, graph=graph), label)
        return self._derive(_stages=(*self._stages, stage), _out_type=target)

    def repeat(self, n: int | None = None) -> "Dataset[T]":
        """Read the dataset ``n`` times (forever when ``n`` is None): the default ``epochs``.

        In a shuffled pipeline each repetition is the next epoch (new shard and sample order).

        >>> for s in ds.repeat().shuffled(seed=0): ...   # doctest: +SKIP
        """
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError(f"repeat() needs a positive int or None, got {n!r}")
        return self._derive(_epochs=n)

    # -- iteration

    def ordered(
        self,
        batch_size: int | None = None,
        *,
        drop_last: bool = False,
        epochs: int | None | type[Ellipsis] = ...,  # type: ignore[valid-type]
        rank: int | None = None,
        world_size: int | None = None,
    ) -> "Pipeline[T]":
        """Iterate in shard order, then member order; batches when ``batch_size`` is given.

        ``epochs``: passes over the data (None: endless; default: the
        :meth:`repeat` count, 1). ``rank`` / ``world_size`` override what is
        read from ``torch.distributed`` or ``RANK`` / ``WORLD_SIZE``.
        ``drop_last`` drops a final batch shorter than ``batch_size``.

        >>> for batch in ds.ordered(batch_size=128): batch.image.shape   # doctest: +SKIP
        (128, 3, 64, 64)
        """
        return Pipeline(
            self,
            shuffle=False,
            batch_size=batch_size,
            drop_last=drop_last,
            epochs=self._epochs if epochs is ... else epochs,
            rank=rank,
            world_size=world_size,
        )

    def shuffled(
        self,
        seed: int = 0,
        buffer: int = DEFAULT_BUFFER,
        batch_size: int | None = None,
        *,
        drop_last: bool = False,
        epoch: int = 0,
        epochs: int | None | type[Ellipsis] = ...,  # type: ignore[valid-type]
        resampled: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> "Pipeline[T]":
        """Iterate in a seeded random order: shards shuffled, then samples through a buffer.

        The order depends only on ``seed`` and the epoch, so every node agrees
        on the shard split. Epoch ``e`` reorders with a seed derived from
        ``(seed, e)``; call :meth:`Pipeline.set_epoch` between epochs, or pass
        ``epochs=None`` for an endless stream that advances by itself.
        ``resampled=True`` draws shards with replacement (seeded) instead: each
        consumer draws its share of shards per epoch, independently.
        ``epochs`` (None: endless; default: the :meth:`repeat` count, 1),
        ``rank``, ``world_size`` and ``drop_last`` are as in :meth:`ordered`.
        ``seed`` defaults to 0 so that every node derives the same shard order.

        >>> for batch in ds.shuffled(seed=1, buffer=1000, batch_size=32): ...   # doctest: +SKIP
        """
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1, got {buffer}")
        return Pipeline(
            self,
            shuffle=True,
            seed=seed,
            buffer=buffer,
            batch_size=batch_size,
            drop_last=drop_last,
            epoch=epoch,
            epochs=self._epochs if epochs is ... else epochs,
            resampled=resampled,
            rank=rank,
            world_size=world_size,
        )

    def __iter__(self) -> Iterator[T]:
        return iter(self.ordered())

    def torch(self, **kwargs: Any) -> Any:
        """This dataset as a ``torch.utils.data.IterableDataset`` (see :func:`atdata_core.torch.to_torch`).

        >>> loader = DataLoader(ds.torch(batch_size=64), batch_size=None, num_workers=2)  # doctest: +SKIP
        """
        from .torch import to_torch

        return to_torch(self, **kwargs)

    def to_ray(self, **kwargs: Any) -> Any:
        """This dataset as a Ray Data ``ray.data.Dataset``, one read task per shard (needs ``atdata-ray``).

        Array fields arrive as Arrow fixed-shape tensor columns, others as
        typed columns; ``columns=[...]`` reads only those fields. Keyword
        arguments go to :func:`atdata_ray.read_atdata`.

        >>> rds = ds.to_ray()                                  # doctest: +SKIP
        >>> for batch in rds.iter_batches(batch_size=128): batch["image"].shape
        (128, 3, 64, 64)
        """
        try:
            from atdata_ray import read_atdata
        except ImportError as exc:
            if getattr(exc, "name", None) not in ("atdata_ray", "ray"):
                raise
            raise ImportError(
                f"Dataset.to_ray() needs the atdata-ray plugin ({exc}); install it: pip install atdata-ray"
            ) from exc
        return read_atdata(self, **kwargs)

    # -- what is known

    @property
    def sample_type(self) -> type | None:
        """The type of the samples this dataset yields (None after a :meth:`map`)."""
        return self._out_type

    @property
    def urls(self) -> list[str]:
        """The shard URLs, in order."""
        return [s.url for s in self._shards]

    @property
    def shards(self) -> list[ShardRef]:
        """The shards with what is known of them (count, size, sha256; None when unknown)."""
        return list(self._shards)

    def _known_total(self) -> int | None:
        if self._num_samples is not None:
            return self._num_samples
        total = 0
        for ref in self._shards:
            if ref.count is None:
                return None
            total += ref.count
        return total

    def __len__(self) -> int:
        total = self._known_total()
        if total is None:
            if self._origin is not None:
                raise TypeError(
                    f"the number of samples is unknown: the entry {self._origin} records no sample count. "
                    "ds.count() counts them by scanning the shards once; len() works after that"
                )
            raise TypeError(
                f"the number of samples of {self!r} is unknown: its shards were given without counts. "
                "Build the dataset from ShardInfo records (shards=writer.shards) or an index entry, "
                "or call ds.count(), which scans the shards once"
            )
        for stage in self._stages:
            if stage.kind == "filter":
                raise TypeError(
                    f"len() is unknown after .{stage.label}: filtering drops an unknown number of "
                    "samples; use ds.count(), which scans"
                )
            if stage.kind == "head":
                total = min(total, stage.arg)
        return total

    @property
    def size_bytes(self) -> int | None:
        """Total bytes of the shards when recorded (ShardInfo sizes or ``num_bytes``), else None."""
        if self._num_bytes is not None:
            return self._num_bytes
        total = 0
        for ref in self._shards:
            if ref.size is None:
                return None
            total += ref.size
        return total

    def count(self) -> int:
        """Count the samples this dataset yields by scanning the shards.

        Without :meth:`filter` stages only tar headers are read (nothing is
        decoded), and the per-shard counts are remembered so ``len()`` works
        afterwards.

        >>> Dataset("data-{000..009}.tar").count()   # doctest: +SKIP
        20000
        """
        if any(stage.kind in ("filter",) for stage in self._stages):
            return sum(1 for _ in self.ordered(rank=0, world_size=1, epochs=1))
        for i, ref in enumerate(self._shards):
            if ref.count is not None:
                continue
            stream = open_shard(ref.url)
            try:
                n = _count_samples(stream, shard=ref.url)
            finally:
                stream.close()
            self._shards[i] = ref._replace(count=n)
        return len(self)

    # -- presentation

    def _type_name(self) -> str:
        return self._decode_type.__qualname__

    def __repr__(self) -> str:
        n = len(self._shards)
        parts = [f"{n} shard{'s' if n != 1 else ''}"]
        total = self._known_total()
        if total is not None:
            parts.append(f"{total} samples")
        else:
            parts.append(self._source_text)
        text = f"Dataset[{self._type_name()}]({', '.join(parts)})"
        for stage in self._stages:
            text += f".{stage.label}"
        if self._epochs != 1:
            text += f".repeat({self._epochs if self._epochs is not None else ''})"
        return text
