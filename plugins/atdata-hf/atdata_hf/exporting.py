"""``to_hf``: an atdata dataset as a Hugging Face ``Dataset`` or ``IterableDataset``."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import sys
import uuid
import weakref
from typing import Any, ClassVar

from atdata_core.errors import SampleTypeError
from atdata_core.plugins import sample_fields, storage_backend

from atdata_hf.features import features_of
from atdata_hf.rows import row_from_sample

__all__ = ["shard_checksums", "to_hf"]

# Bumped when the rows this module writes for the same shards change.
_ROWS_VERSION = "atdata-hf rows 1"

# ``Dataset[T](...)`` with nothing after it: a plain dataset, whose rows depend on its shards alone.
_PLAIN_REPR = re.compile(r"Dataset\[[^\]]*\]\([^()]*\)")


def shard_checksums(ds: Any) -> list[str]:
    """The sha256 (hex) of each shard of ``ds``: as recorded when known, else read and hashed once."""
    out = []
    for ref in ds.shards:
        if ref.sha256:
            out.append(ref.sha256)
            continue
        digest = hashlib.sha256()
        with storage_backend(ref.url).open(ref.url) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        out.append(digest.hexdigest())
    return out


class _Source:
    """The atdata dataset a generator reads, as Hugging Face's arguments hold it.

    Hugging Face hashes a generator's arguments with dill, which cannot find
    sample classes built at run time (dill pickles them by value and fails).
    This pickles the dataset with the standard pickler instead, where such
    classes rebuild from their recipes; a dataset that does not pickle (a
    lambda in a ``map``) is passed by a token valid in this process only.
    """

    _live: ClassVar[weakref.WeakValueDictionary[str, _Source]] = weakref.WeakValueDictionary()

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.token = uuid.uuid4().hex
        _Source._live[self.token] = self

    def __reduce__(self) -> Any:
        try:
            return (_source_from_pickle, (pickle.dumps(self.dataset),))
        except Exception:  # noqa: BLE001 - lambdas, open handles: keep the dataset in this process
            return (_source_from_token, (self.token,))


def _source_from_pickle(data: bytes) -> _Source:
    return _Source(pickle.loads(data))


def _source_from_token(token: str) -> _Source:
    source = _Source._live.get(token)
    if source is None:
        raise RuntimeError(
            "this Hugging Face dataset reads an atdata pipeline that cannot be pickled (a lambda in map or "
            "filter?) and was sent to another process; use module-level functions, or to_hf(ds) without streaming"
        )
    return source


def _in_dataloader_worker() -> tuple[int, int]:
    data = sys.modules.get("torch.utils.data")
    info = data.get_worker_info() if data is not None else None
    return (info.id, info.num_workers) if info is not None else (0, 1)


def _rows(parts: list[tuple[int, int]], source: _Source, features: Any) -> Any:
    """The rows of the shards ``parts`` names: ``(i, n)`` is shard ``i`` of ``n``, read through the whole pipeline.

    rank= and world_size= are given, so RANK / WORLD_SIZE set by a launcher
    (Ray Train, torchrun) never narrow what is read here.
    """
    worker, workers = _in_dataloader_worker()
    if workers > 1:
        raise RuntimeError(
            "an IterableDataset from to_hf(streaming=True) cannot be split across DataLoader workers "
            f"(this is worker {worker} of {workers}): atdata would split the shards a second time. "
            "Use num_workers=0, to_hf(ds) (a map-style Dataset, fine with workers), or atdata's own "
            "ds.torch(), which splits shards across workers"
        )
    for rank, world in parts:
        for sample in source.dataset.ordered(rank=rank, world_size=world, epochs=1):
            yield row_from_sample(sample, features)


def _storage_features(features: Any) -> Any:
    """``features`` with each ``Audio`` as the struct Arrow stores it.

    Hugging Face encodes an ``Audio`` value through torchcodec even when it
    is already an encoded file, so rows are written as the struct and the
    result is cast to ``Audio`` afterwards, which encodes nothing.
    """
    import datasets

    def plain(feature: Any) -> Any:
        if isinstance(feature, dict):
            return {name: plain(sub) for name, sub in feature.items()}
        if isinstance(feature, datasets.Audio):
            return {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
        if isinstance(feature, (datasets.List, datasets.LargeList)):
            kind = type(feature)
            inner = plain(feature.feature)
            if kind is datasets.List:
                return datasets.List(inner, length=feature.length)
            return datasets.LargeList(inner)
        return feature

    return datasets.Features({name: plain(sub) for name, sub in features.items()})


def _fingerprint(ds: Any, features: Any) -> str:
    """The cache key of ``to_hf(ds)``: the shards' contents, the features and the pipeline.

    Hugging Face's own key for ``from_generator`` hashes the generator and its
    arguments, not the shards' bytes, so a shard rewritten in place would
    return the old rows. A pipeline with stages (``map``, ``filter``, lenses)
    is keyed by a fresh value: its functions cannot be hashed reliably, and
    stale rows are worse than converting again.
    """
    text = repr(ds)
    if not _PLAIN_REPR.fullmatch(text):
        return "atdata-" + uuid.uuid4().hex
    body = json.dumps(
        {
            "rows": _ROWS_VERSION,
            "shards": [[ref.url, sha] for ref, sha in zip(ds.shards, shard_checksums(ds))],
            "features": features.to_dict(),
            "fields": [repr(f) for f in sample_fields(ds.sample_type)] if _sample_fields_known(ds.sample_type) else [],
            "type": f"{ds.sample_type.__module__}.{ds.sample_type.__qualname__}",
        },
        sort_keys=True,
        default=repr,
    )
    return "atdata-" + hashlib.sha256(body.encode()).hexdigest()


def to_hf(
    ds: Any,
    *,
    streaming: bool = False,
    features: Any = None,
    cache_dir: str | None = None,
    keep_in_memory: bool = False,
) -> Any:
    """An atdata dataset as a Hugging Face ``datasets.Dataset`` (or ``IterableDataset`` when ``streaming``).

    The features come from the sample type (:func:`atdata_hf.features.features_of`):
    a class made by :func:`~atdata_hf.from_hf` gives back the features it
    came from; NDArray fields become ``Array2D``-``Array5D`` or lists with
    their dtype. ``features`` overrides them. Arrays keep their dtype in
    Arrow; read them back with ``.with_format("numpy", dtype=None)``, since
    plain ``with_format("numpy")`` casts integers to int64 and floats to
    float32.

    A ``Dataset`` is written to the Hugging Face cache (``cache_dir``, else
    ``$HF_HOME``) once per content: the cache key is the shards' sha256
    (read once when the dataset does not record them), the features and the
    sample type, so a rewritten shard is converted again. A pipeline with
    ``map`` / ``filter`` / lens stages is converted on every call.

    An ``IterableDataset`` reads the shards as it is iterated, one Hugging
    Face shard per atdata shard (``n_shards``), so ``.shard()`` and
    ``split_dataset_by_node`` split by shard.

    >>> hf = to_hf(atdata_core.Dataset[Digit]("mnist/train-*.tar"))   # doctest: +SKIP
    >>> hf.features                                                     # doctest: +SKIP
    {'image': Array2D(shape=(28, 28), dtype='uint8'), 'label': ClassLabel(names=['0', ..., '9'])}
    """
    import datasets

    sample_type = ds.sample_type
    if features is None:
        if sample_type is None:
            raise SampleTypeError(
                f"{ds!r}: after .map() the sample type is unknown, so are the features; pass features=, "
                "or map with a lens (ds.as_type(View)) so the type stays known"
            )
        if not _sample_fields_known(sample_type):
            raise SampleTypeError(
                f"{ds!r}: samples are read as DictSample, whose fields are unknown until read; read them as a "
                "sample type (atdata_core.Dataset[MyType](...) or ds.as_type(MyType)), or pass features="
            )
        features = features_of(sample_type)
    elif not isinstance(features, datasets.Features):
        features = datasets.Features(features)
    n = len(ds.shards)
    parts = [(i, n) for i in range(n)]
    written = _storage_features(features)
    gen_kwargs = {"parts": parts, "source": _Source(ds), "features": features}
    if streaming:
        made = datasets.IterableDataset.from_generator(_rows, features=written, gen_kwargs=gen_kwargs)
    else:
        fingerprint = _fingerprint(ds, features) if sample_type is not None else "atdata-" + uuid.uuid4().hex
        made = datasets.Dataset.from_generator(
            _rows,
            features=written,
            gen_kwargs=gen_kwargs,
            cache_dir=cache_dir,
            keep_in_memory=keep_in_memory,
            fingerprint=fingerprint,
        )
    return made if written == features else made.cast(features)


def _sample_fields_known(sample_type: Any) -> bool:
    try:
        sample_fields(sample_type)
    except SampleTypeError:
        return False
    return True
