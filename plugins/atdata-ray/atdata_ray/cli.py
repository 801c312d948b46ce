"""``atdata ray inspect|copy``: the commands this plugin adds to the CLI.

::

    atdata ray inspect "data/train-{000000..000099}.tar" --type mypkg.samples:Image
    atdata ray inspect @alice.example.com/mnist             # read tasks, size, Arrow schema
    atdata ray copy @alice.example.com/mnist s3://bucket/mnist --maxcount 5000 \\
        --publish mnist-copy --schema at://did:plc:.../science.alt.dataset.schema/com.example.mnist:1.0.0

``inspect`` needs no cluster: it plans the read and decodes the first batch
of the first shard in this process. ``copy`` reads with one Ray task per
shard and writes with one shard writer per write task, on the cluster at
``--address`` or on a Ray instance it starts on this machine. Text from
records (field names, URLs) is printed with invisible characters escaped.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from atdata_core.plugins import safe_text

__all__ = ["ray_group"]


def _sample_type(target: str | None) -> type | None:
    if not target:
        return None
    module, _, name = target.partition(":")
    if not module or not name:
        raise click.BadParameter(f"{target!r}: give the class as module:Class (mypkg.samples:Image)", param_hint="--type")
    try:
        value: Any = importlib.import_module(module)
        for part in name.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as err:
        raise click.BadParameter(f"cannot import {target!r}: {err}", param_hint="--type") from None
    return value


def _source(source: tuple[str, ...]) -> Any:
    return source[0] if len(source) == 1 else list(source)


@click.group("ray")
def ray_group() -> None:
    """Read and write atdata datasets with Ray Data (atdata-ray)."""


@ray_group.command("inspect")
@click.argument("source", nargs=-1, required=True)
@click.option("--type", "type_", metavar="MODULE:CLASS", help="the packable class of the samples")
@click.option("--columns", help="comma-separated fields to read")
def inspect(source: tuple[str, ...], type_: str | None, columns: str | None) -> None:
    """Plan reading SOURCE with Ray: read tasks, size, and the Arrow schema of its blocks."""
    from atdata_core.errors import AtdataError
    from atdata_ray.datasource import AtdataDatasource, _ShardRead, batch_to_block

    try:
        datasource = AtdataDatasource(
            _source(source), _sample_type(type_), columns=columns.split(",") if columns else None
        )
        tasks = datasource.get_read_tasks(1)
        size = datasource.estimate_inmemory_data_size()
        first = tasks[0]._read_fn if tasks else None
        block = None
        if isinstance(first, _ShardRead):
            batch = next(first.batches(), None)
            block = None if batch is None else batch_to_block(batch, first.columns)
    except (AtdataError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    sample_type = datasource.sample_type
    click.echo(f"samples:    {safe_text(sample_type.__qualname__) if sample_type else 'as the dataset maps them'}")
    click.echo(f"read tasks: {len(tasks)} (one per shard)")
    rows = [t.metadata.num_rows for t in tasks]
    click.echo(f"rows:       {sum(rows) if rows and None not in rows else 'unknown until read'}")
    click.echo(f"bytes:      {size if size is not None else 'unknown'}")
    if block is not None:
        click.echo("schema:")
        for field in block.schema:
            click.echo(f"  {safe_text(field.name)}: {safe_text(field.type)}")


@ray_group.command("copy")
@click.argument("source", nargs=-1, required=True)
@click.argument("dest")
@click.option("--type", "type_", metavar="MODULE:CLASS", help="the packable class of the samples")
@click.option("--columns", help="comma-separated fields to copy (the class must have only these)")
@click.option("--prefix", default="part", show_default=True, help="shard file name prefix")
@click.option("--maxcount", type=int, default=10_000, show_default=True, help="samples per shard at most")
@click.option("--publish", "publish_name", metavar="NAME", help="publish the copy as a dataset entry NAME")
@click.option("--schema", help="the schema record's at:// URI (with --publish)")
@click.option("--storage", help="where to place local shards when publishing (blob, s3://bucket/prefix/)")
@click.option("--address", help="a running Ray cluster (default: start one on this machine)")
@click.option("--num-cpus", type=int, help="CPUs of the Ray instance started here")
def copy(
    source: tuple[str, ...],
    dest: str,
    type_: str | None,
    columns: str | None,
    prefix: str,
    maxcount: int,
    publish_name: str | None,
    schema: str | None,
    storage: str | None,
    address: str | None,
    num_cpus: int | None,
) -> None:
    """Copy SOURCE to shards below DEST with Ray: one read task per shard, one writer per write task."""
    from atdata_core.errors import AtdataError

    if publish_name and not schema:
        raise click.BadParameter("--publish needs --schema, the schema record's at:// URI", param_hint="--schema")
    import ray
    import ray.data

    import atdata_core
    from atdata_ray.datasink import AtdataDatasink, Publication
    from atdata_ray.datasource import AtdataDatasource

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            # this machine only: the node is addressed as 127.0.0.1, and no dashboard is served
            ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1")
        started = True
    try:
        datasource = AtdataDatasource(
            _source(source), _sample_type(type_), columns=columns.split(",") if columns else None
        )
        # the rows become samples of the class read (a published schema's own) unless only some fields are copied
        sample_type = datasource.sample_type if not columns else _sample_type(type_)
        if sample_type is not None and not atdata_core.is_packable(sample_type):
            sample_type = None
        publish = Publication(name=publish_name, schema=schema, storage=storage) if publish_name else None
        sink = AtdataDatasink(dest, sample_type, prefix=prefix, maxcount=maxcount, publish=publish)
        ray.data.read_datasource(datasource).write_datasink(sink)
    except (AtdataError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    finally:
        if started:
            ray.shutdown()
    samples = sum(info.count for info in sink.shards)
    click.echo(f"wrote {len(sink.shards)} shard(s), {samples} samples")
    for info in sink.shards:
        click.echo(f"  {safe_text(info.url)}  {info.count} samples  sha256 {info.sha256}")
    if sink.published is not None:
        click.echo(safe_text(sink.published.uri))
