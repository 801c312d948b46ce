"""``atdata hf import`` and ``atdata hf export``: the commands this plugin adds to the CLI.

::

    atdata hf import ./saved-mnist "shards/mnist-%06d.tar" --split train --class-name Digit
    atdata hf import mnist "shards/mnist-%06d.tar" --split train \\
        --publish mnist --schema-id com.example.digit --storage blob
    atdata hf export @alice.example.com/mnist ./mnist-hf          # a folder load_from_disk reads
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

__all__ = ["hf"]


@click.group()
def hf() -> None:
    """Hugging Face datasets: import them as typed atdata shards, export atdata datasets to them (atdata-hf)."""


def _pick_split(loaded: Any, split: str | None, source: str) -> Any:
    import datasets

    if not isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        return loaded
    names = sorted(loaded)
    if split is not None:
        if split not in loaded:
            raise click.BadParameter(f"{source} has no split {split!r}; it has {', '.join(names)}", param_hint="--split")
        return loaded[split]
    if len(names) == 1:
        return loaded[names[0]]
    raise click.BadParameter(f"{source} has several splits ({', '.join(names)}); choose one with --split")


def _load(source: str, config: str | None, split: str | None, streaming: bool) -> Any:
    """A saved dataset folder (``save_to_disk``), else whatever ``load_dataset`` finds under that name or path."""
    import datasets

    saved = os.path.isdir(source) and any(
        os.path.exists(os.path.join(source, marker)) for marker in ("state.json", "dataset_dict.json")
    )
    if saved:
        loaded = datasets.load_from_disk(source)
        if split is not None and isinstance(loaded, datasets.Dataset):
            raise click.BadParameter(f"{source} holds a single split; leave --split out", param_hint="--split")
        picked = _pick_split(loaded, split, source)
        return picked.to_iterable_dataset() if streaming else picked
    loaded = datasets.load_dataset(source, config, split=split, streaming=streaming)
    return _pick_split(loaded, split, source)


@hf.command("import")
@click.argument("source")
@click.argument("pattern")
@click.option("--split", help="Which split to import (needed when the dataset has several).")
@click.option("--config", "config", help="The dataset's configuration (load_dataset's name=).")
@click.option("--streaming", is_flag=True, help="Read the source as it is written, without preparing it first.")
@click.option("--class-name", default="HfSample", show_default=True, help="Name of the generated sample class.")
@click.option("--optional", "optional", multiple=True, metavar="FIELD",
              help="A field that may be missing (repeat; outer.inner for nested fields). Default: found from the data.")
@click.option("--maxcount", type=int, default=10_000, show_default=True, help="Samples per shard at most.")
@click.option("--maxsize", type=int, default=3_000_000_000, show_default=True, help="Bytes per shard at most.")
@click.option("--publish", "dataset_name", metavar="NAME", help="Publish the shards as the entry NAME (log in first).")
@click.option("--schema-id", help="Schema id to publish the class under: com.example.digit (with --publish).")
@click.option("--version", "version", default="1.0.0", show_default=True, help="Schema version (with --publish).")
@click.option("--storage", metavar="NAME_OR_URL",
              help="Where to place local shards when publishing: a backend (blob) or URL prefix (s3://bucket/x/).")
@click.option("--description", help="What the dataset holds (schema and entry).")
@click.option("--license", "license_", help="License of the data (SPDX id).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@click.option("--as", "account", metavar="HANDLE_OR_DID", help="Which saved session publishes (default: the last login).")
def import_cmd(source, pattern, split, config, streaming, class_name, optional, maxcount, maxsize, dataset_name,
               schema_id, version, storage, description, license_, tags, account) -> None:
    """Write the Hugging Face dataset SOURCE as atdata shards named by PATTERN.

    SOURCE is a folder written by save_to_disk, or anything load_dataset
    takes (a hub name, a local folder of files, a builder such as parquet).
    With HF_DATASETS_OFFLINE=1 and HF_HUB_OFFLINE=1 nothing is downloaded.
    The sample class is generated from the dataset's features; every field
    it could not map is named with what to do. PATTERN is a ShardWriter
    pattern: shards/mnist-%06d.tar.
    """
    from atdata_hf.importing import from_hf

    if dataset_name and not schema_id:
        raise click.BadParameter("publishing needs --schema-id (com.example.name)", param_hint="--schema-id")
    if schema_id and not dataset_name:
        raise click.BadParameter("--schema-id is for publishing; add --publish NAME", param_hint="--publish")
    client = None
    if dataset_name:
        from atdata_core.plugins import Client

        client = Client.from_saved(account)
    hf_dataset = _load(source, config, split, streaming)
    done = from_hf(
        hf_dataset, pattern, name=class_name, optional=list(optional) if optional else None, maxcount=maxcount,
        maxsize=maxsize, progress=True, client=client, schema_id=schema_id, version=version,
        dataset_name=dataset_name, storage=storage, description=description, license=license_, tags=tags,
    )
    click.echo(f"{done.count} samples in {len(done.shards)} shard(s) of {done.sample_type.__name__}")
    for shard in done.shards:
        click.echo(f"  {shard.url}  {shard.count} samples  sha256 {shard.sha256}")
    if done.schema is not None:
        click.echo(f"schema {done.schema.uri}")
    if done.entry is not None:
        click.echo(f"entry {done.entry.uri}")


def _import_class(target: str) -> Any:
    """``package.module:Class`` -> the class (the current folder importable, like ``python -m``)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"{target!r} should look like package.module:Class", param_hint="--type")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise click.BadParameter(f"cannot import {module_name}: {err}", param_hint="--type") from err
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise click.BadParameter(f"{module_name} has no {attr}", param_hint="--type")
    return obj


@hf.command("export")
@click.argument("source")
@click.argument("folder")
@click.option("--type", "type_", metavar="MODULE:CLASS", help="The sample class of local shards (published ones carry theirs).")
def export_cmd(source: str, folder: str, type_: str | None) -> None:
    """Write the atdata dataset SOURCE as a Hugging Face dataset in FOLDER (datasets.load_from_disk reads it).

    SOURCE is a published reference (@handle/name, @handle/name@label,
    at://...), whose schema gives the features, or local shards (a pattern,
    a glob, a folder) with --type naming their class.
    """
    import atdata_core

    from atdata_hf.exporting import to_hf

    if source.startswith(("at://", "@")):
        ds = atdata_core.load(source, _import_class(type_) if type_ else None)
    elif type_ is None:
        raise click.BadParameter(
            "local shards carry no schema: name their sample class with --type package.module:Class",
            param_hint="--type",
        )
    else:
        ds = atdata_core.Dataset(source, sample_type=_import_class(type_))
    exported = to_hf(ds)
    exported.save_to_disk(folder)
    click.echo(f"{exported.num_rows} rows written to {folder}")
    # kinds only: a published schema's text (class names...) is not for the terminal unescaped
    click.echo("features: " + ", ".join(f"{name} ({_kind(feature)})" for name, feature in exported.features.items()))


def _kind(feature: Any) -> str:
    return "dict" if isinstance(feature, dict) else type(feature).__name__
