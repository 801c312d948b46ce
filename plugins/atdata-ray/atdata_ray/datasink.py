"""A Ray Data ``Datasink`` writing atdata shards, one ``ShardWriter`` per write task.

::

    from atdata_ray import AtdataDatasink, Publication

    sink = AtdataDatasink("s3://bucket/datasets/mnist", ImageSample, maxcount=5000,
                          publish=Publication("mnist", schema=schema_uri))
    rds.map_batches(normalise).write_datasink(sink)
    sink.shards      # [ShardInfo(url, count, size, sha256, path), ...]
    sink.published   # the entry record written once every task finished

Write task ``t`` writes ``{path}/{prefix}-{t:05d}-000000.tar``,
``...-000001.tar`` (rolling at ``maxcount`` / ``maxsize``) with sample keys
``{t:05d}-0000000000``...: tasks never share a shard name or a key, so the
shards of all tasks form one dataset. ``path`` is any location a storage
backend takes: a local folder, ``s3://bucket/prefix``, ``atblob://<did>/prefix``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np
from ray.data import Datasink
from ray.data.block import BlockAccessor

import atdata_core
from atdata_core import ShardInfo, ShardWriter
from atdata_core.plugins import Array, DictOf, ListOf, Nested, Optional, Scalar

__all__ = ["AtdataDatasink", "Publication", "write_atdata"]


@attrs.frozen(kw_only=True)
class Publication:
    """What to publish once a write completes: a dataset entry listing the written shards.

    ``schema`` is the schema record's ``at://`` URI (or what
    :func:`atdata_core.publish_schema` returned); ``storage`` places shards
    written to a local folder first (``"blob"``, ``"s3://bucket/prefix/"``),
    as for :func:`atdata_core.publish_dataset`.
    """

    name: str
    schema: Any
    storage: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    license: str | None = None


class AtdataDatasink(Datasink):
    """Write a Ray dataset as atdata shards (see the module docstring).

    Args:
        path: the folder or URL prefix the shards go below.
        sample_type: the packable class each row becomes (rows are checked
            against its fields when encoded); without it rows are written as
            plain maps of their columns.
        prefix: the shards' file name prefix.
        maxcount, maxsize: when a task starts its next shard, as for :class:`atdata_core.ShardWriter`.
        base_url: the public URL prefix the shards will be served from, when not ``path``.
        publish: a :class:`Publication`: publish the entry once every task has finished.
        client: the logged-in ATProto client to publish with (default: the saved session,
            ``Client.from_saved()``). It stays on the driver: write tasks never receive it.

    After ``write_datasink``: :attr:`shards` lists every shard in name order,
    :attr:`published` the published entry (or None).
    """

    def __init__(
        self,
        path: str,
        sample_type: type | None = None,
        *,
        prefix: str = "part",
        maxcount: int = 10_000,
        maxsize: int | None = 3_000_000_000,
        base_url: str | None = None,
        publish: Publication | None = None,
        client: Any = None,
    ):
        if sample_type is not None and not atdata_core.is_packable(sample_type):
            raise TypeError(f"sample_type {sample_type!r} is not a @packable class")
        if "%" in prefix or "{" in prefix or "/" in prefix:
            raise ValueError(f"prefix {prefix!r} is a file name prefix: no '%', '{{' or '/'")
        if publish is not None and not isinstance(publish, Publication):
            raise TypeError(f"publish must be a Publication, not {type(publish).__name__}")
        path = os.fspath(path)
        # a relative folder names one from here, and a write task may run elsewhere
        self.path = (path if "://" in path else os.path.abspath(path)).rstrip("/")
        self.sample_type = sample_type
        self.prefix = prefix
        self.maxcount = maxcount
        self.maxsize = maxsize
        self.base_url = base_url
        self.publish = publish
        self._client = client
        self.shards: list[ShardInfo] = []
        self.published: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = None  # a session stays where it was made
        return state

    def get_name(self) -> str:
        return "Atdata"

    @property
    def min_rows_per_write(self) -> int | None:
        # a write task gets at least a shard's worth of rows, so shards come out full, not one per block
        return self.maxcount

    def pattern(self, task: int) -> str:
        """The shard name pattern of write task ``task``."""
        return f"{self.path}/{self.prefix}-{task:05d}-%06d.tar"

    def write(self, blocks: Iterable[Any], ctx: Any) -> list[ShardInfo]:
        task = ctx.task_idx
        with ShardWriter(
            self.pattern(task),
            maxcount=self.maxcount,
            maxsize=self.maxsize,
            base_url=self.base_url,
            key_prefix=f"{task:05d}-",
        ) as sink:
            for block in blocks:
                for sample in block_samples(block, self.sample_type):
                    sink.write(sample)
        return list(sink.shards)

    def on_write_complete(self, write_result: Any) -> None:
        shards = [info for returned in write_result.write_returns for info in (returned or ())]
        self.shards = sorted(shards, key=lambda info: info.path or info.url)
        if self.publish is None:
            return
        if not self.shards:
            raise ValueError(f"nothing was written, so there is no dataset {self.publish.name!r} to publish")
        client = self._client
        if client is None:
            from atdata_core.plugins import Client

            client = Client.from_saved()
        self.published = atdata_core.publish_dataset(
            client,
            self.publish.name,
            self.shards,
            schema=self.publish.schema,
            storage=self.publish.storage,
            description=self.publish.description,
            tags=self.publish.tags,
            license=self.publish.license,
        )


def write_atdata(dataset: Any, path: str, sample_type: type | None = None, **kwargs: Any) -> AtdataDatasink:
    """Write a ``ray.data.Dataset`` as atdata shards below ``path``; returns the datasink (``.shards``,
    ``.published``). Keyword arguments are :class:`AtdataDatasink`'s, plus Ray's ``concurrency``
    and ``ray_remote_args``."""
    ray_args = {key: kwargs.pop(key) for key in ("concurrency", "ray_remote_args") if key in kwargs}
    sink = AtdataDatasink(path, sample_type, **kwargs)
    dataset.write_datasink(sink, **ray_args)
    return sink


# --------------------------------------------------------------------------- rows to samples


def block_samples(block: Any, sample_type: type | None) -> Iterable[Any]:
    """The rows of a Ray block as samples of ``sample_type`` (or plain maps when None)."""
    table = BlockAccessor.for_block(block).to_arrow()
    if table.num_rows == 0:
        return []
    import pyarrow as pa

    names = table.column_names
    if sample_type is None:
        fields = {name: None for name in names}
    else:
        fields = {f.name: f.type for f in atdata_core.sample_fields(sample_type)}
        missing = [name for name, ft in fields.items() if name not in names and not isinstance(ft, Optional)]
        if missing:
            raise ValueError(
                f"the rows have no column(s) {missing} that {sample_type.__qualname__} needs; they have {names}"
            )
    columns: dict[str, list[Any]] = {}
    accessor = BlockAccessor.for_block(table)
    for name, ft in fields.items():
        if name not in names:
            continue
        arrow_type = table.schema.field(name).type
        if _is_array(ft) or isinstance(arrow_type, pa.BaseExtensionType):
            array = accessor.to_numpy(name)
            columns[name] = list(array) if array.dtype != object else [_array_or_none(v) for v in array]
        else:
            values = table.column(name).to_pylist()
            columns[name] = values if _passes(ft) else [_convert(ft, v) for v in values]
    if sample_type is None:
        return (dict(zip(columns, row)) for row in zip(*columns.values()))
    return (sample_type(**dict(zip(columns, row))) for row in zip(*columns.values()))


def _is_array(ft: Any) -> bool:
    return isinstance(ft, Array) or (isinstance(ft, Optional) and isinstance(ft.inner, Array))


def _array_or_none(value: Any) -> Any:
    return None if value is None else np.asarray(value)


def _passes(ft: Any) -> bool:
    """Whether ``to_pylist`` values already are what the field holds."""
    if ft is None or isinstance(ft, Scalar):
        return True
    if isinstance(ft, Optional):
        return _passes(ft.inner)
    if isinstance(ft, ListOf):
        return _passes(ft.item) and not isinstance(ft.item, (Array, Nested, DictOf))
    return False


def _convert(ft: Any, value: Any) -> Any:
    """An Arrow value (from ``to_pylist``) as the field's value: arrays, nested samples, maps."""
    if value is None:
        return None
    if isinstance(ft, Optional):
        return _convert(ft.inner, value)
    if isinstance(ft, Array):
        return np.asarray(value, dtype=ft.dtype)
    if isinstance(ft, ListOf):
        return [_convert(ft.item, item) for item in value]
    if isinstance(ft, DictOf):
        items = value.items() if isinstance(value, dict) else value  # an Arrow map is a list of pairs
        return {key: _convert(ft.value, item) for key, item in items}
    if isinstance(ft, Nested):
        known = atdata_core.sample_fields(ft.cls)
        return ft.cls(**{f.name: _convert(f.type, value[f.name]) for f in known if f.name in value})
    return value
