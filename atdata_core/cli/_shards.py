"""``atdata inspect`` and ``atdata preview``: look inside shards without writing code; ``atdata cache``."""

from __future__ import annotations

import json
from typing import Any

import click

from atdata_core.cli._terminal import echo


def _describe_value(value: Any) -> str:
    import numpy as np

    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype.str} {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        inner = sorted({_describe_value(v) for v in value[:8]})
        return f"list[{' | '.join(inner) if inner else '?'}]"
    if isinstance(value, dict):
        return "map"
    if value is None:
        return "nil"
    return type(value).__name__


def _summarise(value: Any, width: int = 70) -> str:
    import numpy as np

    if isinstance(value, np.ndarray):
        text = f"ndarray(dtype={value.dtype}, shape={tuple(value.shape)}"
        if value.size and value.dtype.kind in "biuf":
            text += f", min={value.min()}, max={value.max()}"
        return text + ")"
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _decode_sample(data: bytes, shard: str, member: str) -> Any:
    """One member as a DictSample; anything that does not decode is a SampleDecodeError naming it."""
    from atdata_core.codec import unpack_map
    from atdata_core.errors import AtdataError, SampleDecodeError
    from atdata_core.sample import DictSample

    try:
        return DictSample.from_map(unpack_map(data))
    except SampleDecodeError as exc:
        raise exc.located(shard, member) from None
    except AtdataError:
        raise
    except (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError) as exc:
        raise SampleDecodeError(f"cannot decode the sample ({type(exc).__name__}: {exc})", shard=shard, member=member) from exc


@click.command()
@click.argument("source", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def inspect(source: tuple[str, ...], as_json: bool) -> None:
    """Scan shards: samples, sizes, sha256 and the fields of their samples.

    SOURCE is a path, URL, brace pattern (data-{000..009}.tar), glob or directory.
    Exits 1 if a shard is missing, truncated or corrupt.
    """
    from tqdm import tqdm

    from atdata_core.errors import ShardError
    from atdata_core.shards import HashingReader, ShardLimits, iter_members
    from atdata_core.storage import expand_source, open_shard

    limits = ShardLimits.from_config()
    urls = expand_source(list(source) if len(source) > 1 else source[0])
    shards = []
    fields: dict[str, set[str]] = {}
    for url in tqdm(urls, desc="scanning shards", unit=" shards", disable=None, leave=False):
        stream = open_shard(url)
        try:
            reader = HashingReader(stream)
            samples = other = 0
            for name, data in iter_members(reader, shard=url, max_member_bytes=limits.max_member_bytes):
                if not name.endswith(".msgpack"):
                    other += 1
                    continue
                samples += 1
                if samples <= 16:
                    for key, value in _decode_sample(data, url, name).items():
                        fields.setdefault(key, set()).add(_describe_value(value))
            reader.drain(shard=url)  # the padding after the archive, for the sha256 of the file
        except OSError as exc:
            raise ShardError(f"reading failed: {exc}", shard=url) from exc
        finally:
            stream.close()
        shards.append({"url": url, "samples": samples, "other_members": other, "sha256": reader.hexdigest()})
    total = sum(s["samples"] for s in shards)
    if as_json:
        out = {"shards": shards, "samples": total, "fields": {k: sorted(v) for k, v in fields.items()}}
        click.echo(json.dumps(out, indent=2))
        return
    for shard in shards:
        extra = f" (+{shard['other_members']} other members)" if shard["other_members"] else ""
        echo(f"{shard['url']}  {shard['samples']} samples{extra}  sha256 {shard['sha256']}")
    click.echo(f"{len(shards)} shard(s), {total} samples")
    click.echo("fields:")
    for key, kinds in fields.items():
        # Keys come from the shard's bytes, written by whoever made it: escaped like record text.
        echo(f"  {key}: {' | '.join(sorted(kinds))}")


@click.command()
@click.argument("source")
@click.option("-n", "--count", default=3, show_default=True, help="How many samples to show.")
def preview(source: str, count: int) -> None:
    """Print the first samples of a shard, dataset pattern or at:// reference."""
    if source.startswith(("at://", "@")):
        import atdata_core

        dataset = atdata_core.load(source)
    else:
        from atdata_core.dataset import Dataset

        dataset = Dataset(source)
    shown = 0
    for sample in dataset.ordered():
        shown += 1
        click.echo(click.style(f"sample {shown}", bold=True))
        items = sample.items() if hasattr(sample, "items") else vars(sample).items()
        for key, value in items:
            echo(f"  {key}: {_summarise(value)}")
        if shown >= count:
            break
    if shown == 0:
        click.echo("no samples")


@click.group()
def cache() -> None:
    """What atdata keeps between runs: the local shard files already verified."""


@cache.command("info")
def cache_info() -> None:
    """Where the verified files are remembered, and how many.

    A local shard file whose sha256 matched its checksum is not hashed again
    by later reads while it is unchanged (same device, inode, size,
    modification and change times). Turn it off with
    ``[shards] remember_verified = false``.
    """
    from atdata_core._verified import verified_dir

    folder = verified_dir()
    count = sum(1 for _ in folder.glob("*/*")) if folder.is_dir() else 0
    echo(f"{folder}: {count} verified shard file(s) remembered")


@cache.command("clear")
def cache_clear() -> None:
    """Forget every verified shard file: each is hashed again on its next read."""
    from atdata_core._verified import forget_all, verified_dir

    count = forget_all()
    echo(f"forgot {count} verified shard file(s) ({verified_dir()})")
