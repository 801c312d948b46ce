"""Pipelines: the iteration of a :class:`~atdata_core.Dataset`, ordered or shuffled, batched or not.

A dataset holds its shards and a tuple of stages (map, filter, head, lens);
a :class:`Pipeline` reads this consumer's share of the shards, decodes, runs
the stages, shuffles through a buffer and batches. The order depends only on
the seed, the epoch and the consumer, so iterating again replays it.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import time
import warnings
from typing import Any, Callable, Generator, Generic, Iterator, NamedTuple, TypeVar

from ._batch import SampleBatch
from ._codec_compiler import SampleCodec, codec_of, decoder_for, member_decoder
from ._consumers import check_rank, dataloader_worker, node_rank
from ._fields import is_packable
from ._shard_sources import open_shard
from ._shardref import ShardRef
from ._verified import identity_of, is_remembered, remember
from .errors import AtdataError, NetworkError, StorageError
from .shards import (
    _SKIPPED,
    _VERIFIED,
    OnError,
    ShardLimits,
    _decode_member,
    _decoded,
    _fetch_ahead,
    _keep_freed_shard_memory,
    _known_length,
    _shard_members,
    handle_error,
    quick_switches,
)

__all__ = ["Pipeline"]

T = TypeVar("T")

DEFAULT_BUFFER = 1000


# --------------------------------------------------------------------------- stages


class Stage(NamedTuple):
    """One step a dataset applies to its samples, in order."""

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


class LazyLens:
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


def fn_name(fn: Callable[..., Any]) -> str:
    """The name of a function for a stage label."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# --------------------------------------------------------------------------- Pipeline


class Pipeline(Generic[T]):
    """An iterable over a :class:`~atdata_core.Dataset`: ordered or shuffled, batched or not.

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
        dataset: Any,
        *,
        shuffle: bool,
        seed: int = 0,
        buffer: int = DEFAULT_BUFFER,
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
            check_rank(rank, world_size, "arguments")  # type: ignore[arg-type]
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
            rank, world = node_rank()
            check_rank(rank, world, "torch.distributed / RANK and WORLD_SIZE")
        worker, workers = dataloader_worker()
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
        if self.batch_size is None:
            return self._samples(rank, world, worker, workers)
        codec = self._column_codec()
        if codec is not None:
            shards = self._member_streams(rank, world, worker, workers)
            return _column_batches(shards, codec, self.batch_size, self.drop_last, self.dataset)
        samples = self._samples(rank, world, worker, workers)
        return _batches(samples, self.batch_size, self.drop_last, self.dataset._out_type)

    def _column_codec(self) -> SampleCodec | None:
        """The codec that decodes this pipeline's batches straight into columns, if one can.

        In order, with no stages between reading and batching, batches are the
        samples as decoded, so they can be decoded a batch at a time (the
        checks are the same; see :class:`~atdata_core._codec_compiler.ColumnBatch`).
        """
        ds = self.dataset
        if self.shuffle or ds._stages or ds._decode_type is not ds._out_type or not is_packable(ds._decode_type):
            return None
        codec = codec_of(ds._decode_type)
        return codec if codec.batchable else None

    def _member_streams(
        self, rank: int, world: int, worker: int, workers: int
    ) -> Generator[tuple[str, Iterator[Any], bool], None, None]:
        """``(shard, its members, held)`` for every shard this consumer reads, epoch after epoch; the
        members (``(name, bytes)`` of each ``.msgpack`` member) are to be read before the next shard.
        ``held``: the members come before the shard's check, and end with ``_VERIFIED`` once it
        passed (the first shard of the read, when it is to be verified: see :func:`_open_shards`)."""
        epoch = self.epoch
        last = None if self.epochs is None else epoch + self.epochs
        on_error = self.dataset._on_error
        while last is None or epoch < last:
            limits = ShardLimits.from_config()
            refs = self.shards_for(epoch, rank, world, worker, workers)
            # In the first epoch the first shard begins the first batch: nothing before it to hold
            # back. (Batches decoded into columns run no code of the sample's author: see batchable.)
            hold_first = epoch == self.epoch
            opened = _open_shards(refs, on_error, limits, hold_first=hold_first, consumers=workers)
            for ref, stream, head, hold, verified in opened:
                members = _shard_members(
                    stream, ref.url, on_error, ref.sha256, ref.size, limits, head=head, hold=hold, on_verified=verified
                )
                yield ref.url, members, hold
            epoch += 1

    def _samples(self, rank: int, world: int, worker: int, workers: int) -> Iterator[Any]:
        epoch = self.epoch
        last = None if self.epochs is None else epoch + self.epochs
        while last is None or epoch < last:
            yield from self._epoch_samples(epoch, rank, world, worker, workers)
            epoch += 1

    def _epoch_samples(self, epoch: int, rank: int, world: int, worker: int, workers: int) -> Iterator[Any]:
        ds = self.dataset
        it: Iterator[Any] = _read_shards(
            self.shards_for(epoch, rank, world, worker, workers),
            decoder_for(ds._decode_type),
            ds._on_error,
            ShardLimits.from_config(),
            consumers=workers,
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


def _derived_seed(*parts: Any) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _read_shards(
    refs: list[ShardRef],
    decode: Callable[[dict[str, Any]], Any],
    on_error: OnError,
    limits: ShardLimits,
    consumers: int = 1,
) -> Iterator[Any]:
    from_member = member_decoder(decode)
    for ref, stream, head, _, verified in _open_shards(refs, on_error, limits, consumers=consumers):
        members = _shard_members(stream, ref.url, on_error, ref.sha256, ref.size, limits, head=head, on_verified=verified)
        yield from _decoded(members, from_member, ref.url, on_error)


def _open_shards(
    refs: list[ShardRef], on_error: OnError, limits: ShardLimits, *, hold_first: bool = False, consumers: int = 1
) -> Iterator[tuple[ShardRef, Any, Any, bool, Any]]:
    """``(ref, stream, head, hold, verified)`` for each shard in turn, closed once the next is asked for.

    ``ref`` is the shard's, without its checksum when it is a local file
    verified against it before and unchanged since; ``verified``, if not None,
    is to be called once its checksum matched (see :func:`_recall`).

    A shard that cannot be opened goes to ``on_error``, in its turn. Shards
    that come over the network, and local files from the first one to verify
    before use on, are fetched on threads of their own, ahead of the decoding
    (:class:`_Fetcher`): ``head`` is then what was read of the shard before
    its turn. Local files before that one (without a checksum,
    or remembered as verified) are opened on the calling thread.

    ``hold_first``: the caller can hold back what it makes of a shard until
    the shard's check passed (batches decoded into columns: no sample object
    is built, no user code runs). The first shard, which no other shard's
    decoding hides, is then not read whole before its turn when it is a local
    file to verify: ``hold`` is True for it, and its members are scanned while
    it is read and hashed (``hold`` in :func:`~atdata_core.shards._shard_members`).

    ``consumers``: the readers of this process (DataLoader workers) that share
    its cores, for how many local shards may be hashed at once (:func:`_local_workers`).
    """
    start = 0
    if not any(_remote(ref.url) for ref in refs):
        # Local files are opened on this thread, in turn, up to the first to verify before use: a
        # file remembered as verified is not (see _recall), so the epochs after the first read
        # every shard here, without a fetching thread (and without pausing for one). That shard
        # and those after it go to the fetcher.
        start = len(refs)
        for index, ref in enumerate(refs):
            if _verified_first(ref, limits) and not limits.remember_verified:
                start = index
                break
            try:
                stream = open_shard(ref.url)
            except (StorageError, NetworkError, OSError) as exc:
                handle_error(_open_failure(exc, ref), on_error)
                continue
            try:
                read_as, verified = _recall(ref, stream, limits)
                if _verified_first(read_as, limits):
                    start = index
                    break
                yield read_as, stream, None, False, verified
            finally:
                stream.close()
        if start == len(refs):
            return
        # The fetcher's first shard begins the read only when no shard was read here.
        hold_first = hold_first and start == 0
        refs = refs[start:]
    remote = any(_remote(ref.url) for ref in refs)
    workers = _Fetcher.REMOTE_WORKERS if remote else _local_workers(consumers)
    fetcher = _Fetcher(refs, limits, hold_first=hold_first, workers=workers)
    try:
        for ref in refs:
            fetched = fetcher.take()
            try:
                if fetched.error is not None:
                    handle_error(_open_failure(fetched.error, ref), on_error)
                    continue
                yield fetched.ref or ref, fetched.stream, fetched.head, fetched.hold, fetched.verified
            finally:
                fetched.close()
    finally:
        fetcher.close()


def _recall(ref: ShardRef, stream: Any, limits: ShardLimits) -> tuple[ShardRef, Callable[[], None] | None]:
    """``(ref, verified)`` for a shard just opened, before any of it is read.

    A local file verified against this checksum before, and unchanged since
    (:mod:`atdata_core._verified`), is read as ``ref`` without its checksum;
    for one still to verify, ``verified`` remembers it once it matched.
    Anything else is read as it is, and ``verified`` is None.
    """
    checksum = ref.sha256
    if not checksum or not limits.remember_verified or _remote(ref.url):
        return ref, None
    identity = identity_of(stream)
    if identity is None:
        return ref, None
    if is_remembered(identity, checksum):
        return ref._replace(sha256=None), None
    return ref, lambda: remember(identity, checksum, stream)


def _open_failure(exc: BaseException, ref: ShardRef) -> AtdataError:
    return exc if isinstance(exc, AtdataError) else StorageError(f"cannot open shard {ref.url}: {exc}")


def _local_workers(consumers: int = 1) -> int:
    """How many local shards a read fetches (reads whole and hashes) at once, ahead of the decoding.

    sha256 of a shard costs more CPU than decoding it (about 1.6 GB/s against
    2.8 GB/s on one core, on the machine of docs/performance.md), so a single
    hash beside the decoding holds a verified read to about 0.6x an
    unverified one. Where each reader of this process (``consumers``: its
    DataLoader workers) has :data:`_Fetcher.LOCAL_WORKERS` cores or more,
    that many shards are hashed at once: on two cores, two hashes and the
    decoding share them, 9-16 % faster than one hash (one more shard in
    memory); from three on, the second hash has a core of its own. With
    fewer cores, one shard is fetched at a time.
    """
    cores = _usable_cores() // max(1, consumers)
    return _Fetcher.LOCAL_WORKERS if cores >= _Fetcher.LOCAL_WORKERS else 1


def _usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _verified_first(ref: ShardRef, limits: ShardLimits) -> bool:
    """Whether a shard is read whole and verified before its first sample (see :func:`iter_samples`)."""
    return bool(ref.sha256) and (ref.size is None or ref.size <= limits.verify_buffer_bytes)


def _remote(url: str) -> bool:
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() != "file"


class _Fetched:
    """One shard as the fetching thread left it: opened (``stream``), perhaps read (``head``), or failed."""

    __slots__ = ("stream", "head", "error", "crash", "hold", "ref", "verified")

    def __init__(self, stream: Any = None, head: Any = None, error: BaseException | None = None,
                 crash: BaseException | None = None, hold: bool = False, ref: ShardRef | None = None,
                 verified: Any = None):
        self.stream = stream
        self.head = head
        self.error = error  # failed to open: goes to on_error in its turn
        self.crash = crash  # anything else: raised in its turn
        self.hold = hold  # only opened: read, hashed and scanned at once in its turn (see _open_shards)
        self.ref = ref  # the shard as it is to be read (see _recall)
        self.verified = verified

    def close(self) -> None:
        if self.head is not None:
            self.head.close()
        if self.stream is not None:
            self.stream.close()


class _Fetcher:
    """The shards of one read, opened in order on threads of their own, ahead of the decoding.

    A shard to verify before use, or (after the first) a network body of
    announced length of at most ``[shards] verify_buffer_bytes``, is read
    whole there, and hashed as it arrives on a hashing thread
    (:func:`~atdata_core.shards._fetch_ahead`): file and socket reads and
    hashlib on large buffers release the GIL, so both run beside the
    decoding of the current shard (reading into fresh memory costs page
    faults: on a thread apart from the hash, they do not slow it). Any other
    shard is only opened (its request's round trip is not waited for in its
    turn).

    ``workers`` shards are fetched at once, each on a thread of its own, and
    at most that many wait ahead of the one being decoded. Local files are
    read :data:`LOCAL_WORKERS` at a time where each reader has that many
    cores, else one at a time (:func:`_local_workers`); remote
    shards :data:`REMOTE_WORKERS` at a time, so that one request's round trip
    and its server's work per request overlap another's body.
    """

    __slots__ = ("_refs", "_limits", "_hold_first", "_cond", "_done", "_next", "_taken", "_room", "_stop", "_threads")

    #: Remote shards fetched at once: a third shard in memory, against a request's fixed costs
    #: (its round trip, and the server's and the client's work per request) hidden behind another.
    REMOTE_WORKERS = 2
    #: Local shards to verify fetched at once, where the cores allow (see _local_workers).
    LOCAL_WORKERS = 2

    def __init__(self, refs: list[ShardRef], limits: ShardLimits, *, hold_first: bool = False, workers: int = 1):
        import threading

        self._refs = refs
        self._limits = limits
        self._hold_first = hold_first
        self._cond = threading.Condition()
        self._done: dict[int, _Fetched] = {}  # fetched, by index, until taken
        self._next = 0  # the index of the next shard to fetch
        self._taken = 0  # the index of the next shard to take
        self._room = threading.Semaphore(max(1, workers))
        self._stop = threading.Event()
        _keep_freed_shard_memory()
        count = max(1, min(workers, len(refs)))
        self._threads = [
            threading.Thread(target=self._run, name="atdata-shard-fetch", daemon=True) for _ in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        stopped = self._stop.is_set
        cond = self._cond
        while True:
            self._room.acquire()
            if stopped():
                return
            with cond:
                index = self._next
                if index >= len(self._refs):
                    self._room.release()  # for another thread, to see there is nothing left
                    return
                self._next = index + 1
            ref = self._refs[index]
            try:
                with quick_switches:
                    fetched = _fetch(ref, self._limits, stopped, ahead=index > 0, hold=index == 0 and self._hold_first)
            except BaseException as exc:  # noqa: BLE001 - raised on the decoding thread, in the shard's turn
                fetched = _Fetched(crash=exc)
            with cond:
                if not stopped():
                    self._done[index] = fetched
                    cond.notify_all()
                    continue
            fetched.close()
            return

    def take(self) -> _Fetched:
        """The next shard, once fetched; a thread goes on to the one after those fetched or in fetching."""
        with self._cond:
            index = self._taken
            while index not in self._done:
                self._cond.wait()
            fetched = self._done.pop(index)
            self._taken = index + 1
        self._room.release()
        if fetched.crash is not None:
            raise fetched.crash
        return fetched

    def close(self) -> None:
        """Stop the threads and close what they fetched. One still inside a read (a stalled
        connection) is not waited for long: it closes its shard when the read ends."""
        self._stop.set()
        for _ in self._threads:
            self._room.release()
        until = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, until - time.monotonic()))
        with self._cond:
            left = list(self._done.values())
            self._done.clear()
        for fetched in left:
            fetched.close()


def _fetch(ref: ShardRef, limits: ShardLimits, stopped: Callable[[], bool], ahead: bool, hold: bool = False) -> _Fetched:
    try:
        stream = open_shard(ref.url)
    except (StorageError, NetworkError, OSError) as exc:
        return _Fetched(error=exc)
    try:
        ref, verified = _recall(ref, stream, limits)
        if hold and ref.sha256 and not _remote(ref.url):
            length = ref.size if ref.size is not None else _known_length(stream)
            if length is not None and length <= limits.verify_buffer_bytes:
                return _Fetched(stream, hold=True, ref=ref, verified=verified)
        head = _fetch_ahead(stream, ref.sha256, ref.size, limits, stopped, ahead)
        return _Fetched(stream, head, ref=ref, verified=verified)
    except BaseException:
        stream.close()
        raise


def _column_batches(
    shards: Iterator[tuple[str, Iterator[Any], bool]], codec: SampleCodec, size: int, drop_last: bool, dataset: Any
) -> Iterator[SampleBatch[Any]]:
    """:func:`_columns`, closing ``shards`` (a generator) when it ends, fails or is closed: a
    failure raised here leaves them suspended, and the exception's traceback would otherwise
    keep them, with the threads fetching ahead and the shards they hold, until it is collected."""
    try:
        yield from _columns(shards, codec, size, drop_last, dataset)
    finally:
        close = getattr(shards, "close", None)
        if close is not None:
            close()


def _columns(
    shards: Iterator[tuple[str, Iterator[Any], bool]], codec: SampleCodec, size: int, drop_last: bool, dataset: Any
) -> Iterator[SampleBatch[Any]]:
    """Batches of ``size`` samples, decoded into columns while the members share a layout.

    A member that does not fit the batch's columns is decoded on its own, as
    an unbatched read would (errors go to ``on_error`` in member order), and
    the rest of that batch is a list of samples. The batches are the same as
    :func:`_batches` makes, sample for sample.

    The batches of a held shard (the first of the read, decoded into columns
    while it is read and hashed) are held back until its checksum matched;
    nothing of a shard that fails it is handed out. A member of it that does
    not fit the columns, and every member after it, wait undecoded until
    then: no sample object is built from bytes not yet verified.
    """
    on_error = dataset._on_error
    sample_type = dataset._out_type
    columns = codec.columns()
    add = columns.add
    from_member = codec.from_member
    count = 0  # members in the columns
    pending: list[Any] = []  # samples decoded one by one: this batch does not share one layout
    for shard, members, hold in shards:
        if hold:  # the first shard of the first epoch: the columns are empty
            held: list[Any] = []
            rest: list[Any] = []  # from the first member that does not fit the columns on
            for member in members:
                if member is _VERIFIED:
                    break
                if rest or not add(member[1]):
                    rest.append(member)
                    continue
                count += 1
                if count == size:
                    count = 0
                    held.append(columns.take(sample_type))
            else:  # the check failed (and went to on_error): nothing of the shard is used
                columns = codec.columns()
                add = columns.add
                count = 0
                continue
            yield from held
            del held
            members = itertools.chain(rest, members)  # then whatever the shard reports after its check
        for name, data in members:
            if not pending and add(data):
                count += 1
                if count == size:
                    count = 0
                    yield columns.take(sample_type)
                continue
            if not pending:
                pending = columns.samples()
                count = 0
            sample = _decode_member(from_member, data, shard, name, on_error)
            if sample is _SKIPPED:
                continue
            pending.append(sample)
            if len(pending) == size:
                yield SampleBatch(pending, sample_type)
                pending = []
    if drop_last:
        return
    if count:
        yield columns.take(sample_type)
    elif pending:
        yield SampleBatch(pending, sample_type)


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


def _batches(it: Iterator[Any], size: int, drop_last: bool, sample_type: type | None) -> Iterator[SampleBatch[Any]]:
    islice = itertools.islice
    while True:
        chunk = list(islice(it, size))
        if not chunk or (drop_last and len(chunk) < size):
            return
        yield SampleBatch(chunk, sample_type)
