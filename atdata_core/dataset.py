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
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import sys
import warnings
from typing import Any, Callable, Generic, Iterable, Iterator, NamedTuple, TypeVar, overload

import numpy as np

from .errors import AtdataError, SampleTypeError, StorageError, StorageNotFound
from .sample import DictSample, decoder_for, is_packable, sample_fields
from ._shardref import ShardRef, as_shard_ref
from .shards import OnError, handle_error, iter_members, iter_samples

__all__ = ["Dataset", "Pipeline", "SampleBatch", "ShardRef"]

T = TypeVar("T")
U = TypeVar("U")

_DEFAULT_BUFFER = 1000


# --------------------------------------------------------------------------- shards


def _is_shard_records(source: Any) -> bool:
    return isinstance(source, (list, tuple)) and bool(source) and all(
        not isinstance(s, (str, os.PathLike)) and hasattr(s, "url") for s in source
    )


def _expand_source(source: Any) -> list[str]:
    from .storage import expand_source

    urls = list(expand_source(source))
    if urls and _all_local_missing(urls):
        raise StorageNotFound(
            f"no shards found for {_describe_source(source)}: none of its {len(urls)} path(s) exists, "
            f"e.g. {urls[0]!r}. Check the folder and the brace range (data-{{000000..000009}}.tar)"
        )
    return urls


def _all_local_missing(urls: list[str]) -> bool:
    """True when every URL is a local path and none exists (a typo in the pattern, usually)."""
    from .storage.file import local_path

    for url in urls:
        if "://" in url and not url[:7].lower() == "file://":
            return False
        try:
            if os.path.exists(local_path(url)):
                return False
        except AtdataError:
            return False
    return True


def _open_shard(url: str) -> Any:
    from .storage import open_shard

    return open_shard(url)


def _describe_source(source: Any) -> str:
    if isinstance(source, (list, tuple)):
        if not all(isinstance(s, (str, os.PathLike)) for s in source):
            return f"{len(source)} shard records"
        if len(source) <= 2:
            return repr([os.fspath(s) for s in source])
        return f"[{os.fspath(source[0])!r}, ... {len(source)} items]"
    return repr(os.fspath(source) if isinstance(source, os.PathLike) else source)


# --------------------------------------------------------------------------- pipeline stages


class _Stage(NamedTuple):
    kind: str  # "map" | "filter" | "head" | "lens" | "lens-lazy"
    arg: Any
    label: str

    def apply(self, it: Iterator[Any]) -> Iterator[Any]:
        if self.kind == "map":
            return map(self.arg, it)
        if self.kind == "filter":
            return filter(self.arg, it)
        if self.kind == "head":
            return itertools.islice(it, self.arg)
        if self.kind == "lens":
            return map(self.arg.get, it)
        if self.kind == "lens-lazy":
            return map(self.arg, it)
        raise AssertionError(self.kind)


class _LazyLens:
    """Convert samples to ``target`` through the lens graph, resolving a lens per source type."""

    def __init__(self, target: type, prefer: Any = None, graph: Any = None):
        self.target = target
        self.prefer = prefer
        self.graph = graph
        self.getters: dict[type, Callable[[Any], Any]] = {}

    def __call__(self, sample: Any) -> Any:
        cls = type(sample)
        get = self.getters.get(cls)
        if get is None:
            if cls is self.target:
                get = _identity
            else:
                from .lenses import find_lens

                get = find_lens(cls, self.target, prefer=self.prefer, graph=self.graph).get
            self.getters[cls] = get
        return get(sample)


def _identity(x: Any) -> Any:
    return x


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# --------------------------------------------------------------------------- Dataset


class _TypedDataset:
    """``Dataset[T]``: a constructor that remembers the sample type ``T``.

    ``Dataset[ImageSample](source, ...)`` is ``Dataset(source, sample_type=ImageSample, ...)``.
    """

    __slots__ = ("sample_type",)

    def __init__(self, sample_type: type):
        self.sample_type = sample_type

    @property
    def __origin__(self) -> type:
        return Dataset

    @property
    def __args__(self) -> tuple[type, ...]:
        return (self.sample_type,)

    def __call__(self, source: Any = None, **kwargs: Any) -> "Dataset[Any]":
        if "sample_type" in kwargs:
            raise TypeError(f"{self!r}(...) already fixes the sample type; do not pass sample_type=")
        return Dataset(source, sample_type=self.sample_type, **kwargs)

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        return (Dataset,)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, Dataset) and obj.sample_type is self.sample_type

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TypedDataset) and other.sample_type is self.sample_type

    def __hash__(self) -> int:
        return hash((Dataset, self.sample_type))

    def __repr__(self) -> str:
        return f"Dataset[{self.sample_type.__qualname__}]"

    def __reduce__(self) -> Any:
        return (Dataset.__class_getitem__, (self.sample_type,))


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
        checksums: ``{url: sha256 hex}``; each listed shard is verified as it
            streams and a mismatch raises :class:`~atdata_core.errors.ChecksumError`
            when the shard's end is reached (its samples have been yielded by
            then: streaming cannot know sooner).
        on_error: ``"raise"`` (default), ``"skip"`` (warn, continue with the next
            sample or shard) or a callable receiving the error.
        num_samples, num_bytes: totals known from elsewhere (an index entry's
            ``size``), used by ``len()`` / ``size_bytes`` when per-shard counts are not.

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
        if isinstance(item, TypeVar) or item is Any:
            return super().__class_getitem__(item)  # type: ignore[misc]
        if item is DictSample or is_packable(item):
            return _TypedDataset(item)
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
                cls._default_sample_type = base.sample_type

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
    ):
        if sample_type is None:
            sample_type = self._default_sample_type or DictSample
        elif sample_type is not DictSample and not is_packable(sample_type):
            raise SampleTypeError(
                f"sample_type {sample_type!r} is not a sample type; decorate it with @atdata_core.packable"
            )
        if not (on_error in ("raise", "skip") or callable(on_error)):
            raise ValueError(f"on_error must be 'raise', 'skip' or a callable, not {on_error!r}")
        refs = _resolve_shards(source, shards, checksums)
        self._source_text = _describe_source(source if source is not None else [r.url for r in refs])
        # A list shared with derived datasets: count() fills in counts for all of them.
        self._shards: list[ShardRef] = refs
        self._decode_type: type = sample_type
        self._out_type: type | None = sample_type
        self._stages: tuple[_Stage, ...] = ()
        self._on_error: OnError = on_error
        self._num_samples = num_samples
        self._num_bytes = num_bytes
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
            _stages=(*self._stages, _Stage("map", fn, f"map({_fn_name(fn)})")), _out_type=None
        )

    def filter(self, predicate: Callable[[T], bool]) -> "Dataset[T]":
        """Keep the samples for which ``predicate(sample)`` is true.

        >>> ds.filter(lambda s: s.label == "cat")   # doctest: +SKIP
        """
        if not callable(predicate):
            raise TypeError(f"filter() needs a callable, got {predicate!r}")
        return self._derive(
            _stages=(*self._stages, _Stage("filter", predicate, f"filter({_fn_name(predicate)})"))
        )

    def head(self, n: int) -> "Dataset[T]":
        """Only the first ``n`` samples (of each consumer's stream when distributed).

        >>> for s in ds.head(3): print(s.label)    # doctest: +SKIP
        """
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"head() needs a non-negative int, got {n!r}")
        return self._derive(_stages=(*self._stages, _Stage("head", n, f"head({n})")))

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
            stage = _Stage("lens-lazy", _LazyLens(target, prefer, graph), label)
        else:
            from .lenses import find_lens

            stage = _Stage("lens", find_lens(current, target, prefer=prefer, graph=graph), label)
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
        buffer: int = _DEFAULT_BUFFER,
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
            n = 0
            stream = _open_shard(ref.url)
            try:
                for name, _ in iter_members(stream, shard=ref.url):
                    if name.endswith(".msgpack"):
                        n += 1
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


def _resolve_shards(source: Any, shards: Iterable[Any] | None, checksums: dict[str, str] | None) -> list[ShardRef]:
    known: dict[str, ShardRef] = {}
    if shards is not None:
        for item in shards:
            ref = as_shard_ref(item)
            known[ref.url] = ref
    if source is None:
        if not known:
            raise ValueError("Dataset needs a source: a URL, a pattern, a directory, a list, or shards=[ShardInfo, ...]")
        refs = list(known.values())
    elif _is_shard_records(source):
        refs = [as_shard_ref(item) for item in source]
        refs = [known.get(r.url, r) for r in refs]
    elif not isinstance(source, (str, os.PathLike, list, tuple)) and hasattr(source, "url"):
        refs = [known.get(os.fspath(source.url), as_shard_ref(source))]
    else:
        urls = _expand_source(source)
        if not urls:
            raise StorageNotFound(
                f"no shards found for {_describe_source(source)}: the pattern, glob or directory "
                "matched nothing. Check the path and the brace range (e.g. data-{000000..000009}.tar)"
            )
        refs = [known.get(url) or ShardRef(url) for url in urls]
        if known:
            missing = set(known) - set(urls)
            if missing:
                raise ValueError(
                    f"shards= names {len(missing)} shard(s) that the source does not match, "
                    f"e.g. {sorted(missing)[0]!r}"
                )
    if checksums:
        by_url = {r.url: i for i, r in enumerate(refs)}
        unknown = [url for url in checksums if url not in by_url]
        if unknown:
            raise ValueError(
                f"checksums= names {len(unknown)} URL(s) that are not shards of this dataset, "
                f"e.g. {unknown[0]!r}; its shards are like {refs[0].url!r}"
            )
        for url, digest in checksums.items():
            i = by_url[url]
            refs[i] = refs[i]._replace(sha256=digest)
    return refs


# --------------------------------------------------------------------------- consumers


def _node_rank() -> tuple[int, int]:
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return dist.get_rank(), dist.get_world_size()
        except Exception:  # torch.distributed half-configured: fall back to the environment
            pass
    env = os.environ
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        if world_var in env:
            try:
                return int(env.get(rank_var, "0")), int(env[world_var])
            except ValueError:
                raise ValueError(
                    f"environment variables {rank_var}={env.get(rank_var)!r} / {world_var}={env[world_var]!r} "
                    "must be integers"
                ) from None
    return 0, 1


def _worker() -> tuple[int, int]:
    # Only ask torch if it is already loaded: importing it here would cost seconds.
    data = sys.modules.get("torch.utils.data")
    if data is not None:
        info = data.get_worker_info()
        if info is not None:
            return info.id, info.num_workers
    return 0, 1


def _derived_seed(*parts: Any) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# --------------------------------------------------------------------------- Pipeline


class Pipeline(Generic[T]):
    """An iterable over a :class:`Dataset`: ordered or shuffled, batched or not.

    Made by :meth:`Dataset.ordered` and :meth:`Dataset.shuffled`. Iterating
    again replays the same order (for the same epoch). In a DataLoader worker
    or on one node of many, it reads only its share of the shards.

    >>> pipe = ds.shuffled(seed=0, batch_size=64)   # doctest: +SKIP
    >>> for epoch in range(3):
    ...     pipe.set_epoch(epoch)
    ...     for batch in pipe: ...
    """

    def __init__(
        self,
        dataset: Dataset[T],
        *,
        shuffle: bool,
        seed: int = 0,
        buffer: int = _DEFAULT_BUFFER,
        batch_size: int | None = None,
        drop_last: bool = False,
        epoch: int = 0,
        epochs: int | None = 1,
        resampled: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"epochs must be a positive int or None (endless), got {epochs!r}")
        if (rank is None) != (world_size is None):
            raise ValueError("pass both rank= and world_size=, or neither (to read them from torch or RANK/WORLD_SIZE)")
        if world_size is not None:
            _check_rank(rank, world_size, "arguments")  # type: ignore[arg-type]
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = seed
        self.buffer = buffer
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.epoch = epoch
        self.epochs = epochs
        self.resampled = resampled
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration starts at (changes a shuffled order)."""
        self.epoch = epoch

    def consumer(self) -> tuple[int, int, int, int]:
        """``(rank, world_size, worker, num_workers)`` as this process sees them now."""
        if self.world_size is not None:
            rank, world = self.rank, self.world_size
        else:
            rank, world = _node_rank()
            _check_rank(rank, world, "torch.distributed / RANK and WORLD_SIZE")
        worker, workers = _worker()
        return rank, world, worker, workers  # type: ignore[return-value]

    def shards_for(self, epoch: int, rank: int = 0, world_size: int = 1, worker: int = 0, num_workers: int = 1) -> list[ShardRef]:
        """The shards one consumer reads in one epoch, in reading order."""
        refs = self.dataset._shards
        consumers = world_size * num_workers
        if self.resampled:
            rng = random.Random(_derived_seed("resample", self.seed, epoch, rank, worker))
            per_consumer = max(1, math.ceil(len(refs) / consumers))
            return [refs[rng.randrange(len(refs))] for _ in range(per_consumer)]
        order = list(refs)
        if self.shuffle:
            random.Random(_derived_seed("shards", self.seed, epoch)).shuffle(order)
        return order[rank::world_size][worker::num_workers]

    def __iter__(self) -> Iterator[Any]:
        rank, world, worker, workers = self.consumer()
        if world * workers > len(self.dataset._shards) and not self.resampled:
            mine = self.shards_for(self.epoch, rank, world, worker, workers)
            if not mine:
                warnings.warn(
                    f"{len(self.dataset._shards)} shard(s) for {world * workers} consumers "
                    f"({world} node(s) x {workers} worker(s)): node {rank} worker {worker} gets no "
                    "shard and yields nothing. Write the dataset in at least as many shards as "
                    "consumers, use fewer DataLoader workers, or pass resampled=True",
                    RuntimeWarning,
                    stacklevel=2,
                )
        samples = self._samples(rank, world, worker, workers)
        if self.batch_size is None:
            return samples
        return _batches(samples, self.batch_size, self.drop_last, self.dataset._out_type)

    def _samples(self, rank: int, world: int, worker: int, workers: int) -> Iterator[Any]:
        epoch = self.epoch
        last = None if self.epochs is None else epoch + self.epochs
        while last is None or epoch < last:
            yield from self._epoch_samples(epoch, rank, world, worker, workers)
            epoch += 1

    def _epoch_samples(self, epoch: int, rank: int, world: int, worker: int, workers: int) -> Iterator[Any]:
        ds = self.dataset
        it: Iterator[Any] = _read_shards(
            self.shards_for(epoch, rank, world, worker, workers), decoder_for(ds._decode_type), ds._on_error
        )
        for stage in ds._stages:
            it = stage.apply(it)
        if self.shuffle:
            rng = random.Random(_derived_seed("samples", self.seed, epoch, rank, worker))
            it = _shuffle_buffer(it, self.buffer, rng)
        return it

    def __repr__(self) -> str:
        if self.shuffle:
            args = [f"seed={self.seed}", f"buffer={self.buffer}"]
        else:
            args = []
        if self.batch_size is not None:
            args.append(f"batch_size={self.batch_size}")
        if self.resampled:
            args.append("resampled=True")
        if self.epochs != 1:
            args.append(f"epochs={self.epochs}")
        if self.world_size is not None:
            args.append(f"rank={self.rank}, world_size={self.world_size}")
        return f"{self.dataset!r}.{'shuffled' if self.shuffle else 'ordered'}({', '.join(args)})"


def _check_rank(rank: int, world: int, where: str) -> None:
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} / world size {world} from {where}: need world_size >= 1 and 0 <= rank < world_size")


def _read_shards(refs: list[ShardRef], decode: Callable[[dict[str, Any]], Any], on_error: OnError) -> Iterator[Any]:
    for ref in refs:
        try:
            stream = _open_shard(ref.url)
        except (StorageError, OSError) as exc:
            error = exc if isinstance(exc, AtdataError) else StorageError(f"cannot open shard {ref.url}: {exc}")
            handle_error(error, on_error)
            continue
        try:
            yield from iter_samples(stream, decode, shard=ref.url, on_error=on_error, checksum=ref.sha256)
        finally:
            stream.close()


def _shuffle_buffer(it: Iterator[Any], size: int, rng: random.Random) -> Iterator[Any]:
    buf: list[Any] = []
    append = buf.append
    rand = rng.random
    for item in it:
        if len(buf) < size:
            append(item)
            continue
        i = int(rand() * size)
        out = buf[i]
        buf[i] = item
        yield out
    rng.shuffle(buf)
    yield from buf


def _batches(it: Iterator[Any], size: int, drop_last: bool, sample_type: type | None) -> Iterator["SampleBatch[Any]"]:
    islice = itertools.islice
    while True:
        chunk = list(islice(it, size))
        if not chunk or (drop_last and len(chunk) < size):
            return
        yield SampleBatch(chunk, sample_type)


# --------------------------------------------------------------------------- SampleBatch


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
