"""``atdata login``, ``publish``, ``list``, ``schema`` and ``load``: the federation from the shell."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import click

from atdata_core._nsids import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID
from atdata_core.cli._terminal import echo, safe_text

SCHEMA = SCHEMA_NSID
_KINDS = {"datasets": ENTRY_NSID, "schemas": SCHEMA_NSID, "lenses": LENS_NSID, "labels": LABEL_NSID}


def _client(account: str | None) -> Any:
    from atdata_core.atproto import Client

    return Client.from_saved(account)


def _import_object(target: str) -> Any:
    """``package.module:Name`` -> the object (the current folder is importable, like ``python -m``)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise click.BadParameter(f"{target!r} should look like package.module:Name")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise click.BadParameter(f"cannot import {module_name}: {err}") from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise click.BadParameter(f"{module_name} has no {attr}") from None
    return obj


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return repr(value)


# --------------------------------------------------------------------------- login


@click.command()
@click.argument("handle_or_did")
@click.option("--password", envvar="ATDATA_PASSWORD", help="Password or app password (else $ATDATA_PASSWORD, else asked).")
@click.option("--pds", "pds_url", metavar="URL", help="The PDS to log in to (default: the one the account's DID document names).")
def login(handle_or_did: str, password: str | None, pds_url: str | None) -> None:
    """Log in to your PDS and save the session for the other commands.

    The session is kept in your config folder, readable by you only. Use an
    app password rather than your main one where your PDS offers them.
    """
    from atdata_core.atproto import SessionStore, login as atproto_login

    if not password:
        password = click.prompt(f"password for {handle_or_did}", hide_input=True)
    client = atproto_login(handle_or_did, password, pds_url=pds_url)
    store = SessionStore()
    echo(f"logged in as {client.handle or client.did} ({client.did}) on {client.pds_url}")
    echo(f"session saved in {store.path_for(client.did)}")


@click.command()
@click.argument("handle_or_did", required=False)
def logout(handle_or_did: str | None) -> None:
    """End a saved session (the default account's unless one is named) and delete its tokens."""
    from atdata_core.atproto import logout as atproto_logout

    if atproto_logout(handle_or_did):
        click.echo(f"logged out{' ' + handle_or_did if handle_or_did else ''}")
    else:
        click.echo("no saved session to end")


# --------------------------------------------------------------------------- publish


@click.group()
def publish() -> None:
    """Publish schemas, datasets, lenses and labels to your repository (log in first)."""


_account_option = click.option(
    "--as", "account", metavar="HANDLE_OR_DID", help="Which saved session to publish with (default: the last login)."
)


@publish.command("schema")
@click.argument("target", metavar="MODULE:CLASS")
@click.option("--id", "schema_id", required=True, help="Schema id, NSID-shaped: com.example.image")
@click.option("--version", "version", required=True, help="Semantic version: 1.0.0")
@click.option("--description", help="What the samples are.")
@click.option("--license", "license_", help="License of the schema (SPDX id).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@_account_option
def publish_schema_cmd(target, schema_id, version, description, license_, tags, account) -> None:
    """Publish the schema of a @packable class as SCHEMA_ID:VERSION.

    Publishing the same schema again is a no-op; a changed schema needs a new
    version, and a breaking change a new major version.
    """
    from atdata_core.publish import publish_schema

    cls = _import_object(target)
    result = publish_schema(
        _client(account), cls, schema_id=schema_id, version=version, description=description,
        license=license_, tags=tags,
    )
    click.echo(result.uri)


@publish.command("dataset")
@click.argument("name")
@click.argument("shards", nargs=-1, required=True)
@click.option("--schema", "schema_uri", required=True, help="at:// URI of the samples' schema record.")
@click.option("--description", help="What the dataset holds.")
@click.option("--license", "license_", help="License of the data (SPDX id).")
@click.option("--tag", "tags", multiple=True, help="A tag (repeat for more).")
@click.option(
    "--storage", metavar="NAME_OR_URL",
    help="Where to place local shards: a storage backend (blob) or a URL prefix (s3://bucket/prefix/). "
    "Default: [publish] storage in the configuration.",
)
@_account_option
def publish_dataset_cmd(name, shards, schema_uri, description, license_, tags, storage, account) -> None:
    """Publish a dataset entry for SHARDS (URLs, local files, patterns, globs).

    Each shard is read once to record its sha256, sample count and size.
    Shards already at URLs stay where they are. Local files are first placed
    on shared storage by the backend --storage names (`atdata plugins` lists
    the ones that can publish, and the configured default), all of them
    before the entry is written; if placing fails part way, the same command
    again reuses what was placed.
    """
    from atdata_core.plugins import url_scheme
    from atdata_core.publish import publish_dataset
    from atdata_core.storage import expand_source

    urls = expand_source(list(shards) if len(shards) > 1 else shards[0])
    if not urls:
        raise click.BadParameter(f"no shards match {' '.join(shards)}")
    measured = _measure_shards(urls)
    result = publish_dataset(
        _client(account), name, measured, schema=schema_uri, description=description, tags=tags, license=license_,
        storage=storage, progress=True,
    )
    total = sum(count for _, _, count, _ in measured)
    click.echo(f"{len(measured)} shard(s), {total} samples")
    if any(url_scheme(url) in ("", "file") for url, *_ in measured):
        click.echo(f"local shards placed, recorded as {result.record['storage'].get('$type', '?')}")
    click.echo(result.uri)


def _measure_shards(urls: list[str]) -> list[tuple[str, str, int, int]]:
    """``(url, sha256, count, size)`` of each shard, read through its storage backend."""
    from tqdm import tqdm

    from atdata_core.shards import HashingReader, iter_members
    from atdata_core.storage import open_shard

    class Counting:
        def __init__(self, stream: Any):
            self.stream, self.size = stream, 0

        def read(self, n: int = -1) -> bytes:
            data = self.stream.read(n)
            self.size += len(data)
            return data

    out = []
    for url in tqdm(urls, desc="hashing shards", unit=" shards", disable=None, leave=False):
        stream = open_shard(url)
        try:
            counted = Counting(stream)
            reader = HashingReader(counted)  # type: ignore[arg-type]
            count = sum(1 for member, _ in iter_members(reader, shard=url) if member.endswith(".msgpack"))
            reader.drain(shard=url)  # the padding after the archive's end, bounded
        finally:
            stream.close()
        out.append((url, reader.hexdigest(), count, counted.size))
    return out


@publish.command("lens")
@click.argument("target", metavar="MODULE:FUNC")
@click.option("--source", "source", required=True, help="at:// URI of the source schema.")
@click.option("--target", "view", required=True, help="at:// URI of the target (view) schema.")
@click.option("--repository", help="Repository URL others install the code from (default: git origin).")
@click.option("--commit", help="Commit holding the code (default: HEAD of its checkout).")
@click.option("--name", help="Lens name (default: the function's).")
@click.option("--description")
@_account_option
def publish_lens_cmd(target, source, view, repository, commit, name, description, account) -> None:
    """Publish a lens made with @lens and .putter: references to its code, pinned to a commit."""
    from atdata_core.publish import publish_lens

    lens_obj = _import_object(target)
    result = publish_lens(
        _client(account), lens_obj, source_schema=source, target_schema=view, repository=repository,
        commit=commit, name=name, description=description,
    )
    click.echo(result.uri)


@publish.command("label")
@click.argument("name")
@click.argument("dataset_uri")
@click.option("--version", help="The label's tag, e.g. v2 (load it as @handle/NAME@v2).")
@click.option("--description")
@_account_option
def publish_label_cmd(name, dataset_uri, version, description, account) -> None:
    """Name a dataset entry, like a git tag: NAME is the dataset name, --version the tag."""
    from atdata_core.publish import publish_label

    result = publish_label(_client(account), name, dataset_uri, version=version, description=description)
    click.echo(result.uri)


# --------------------------------------------------------------------------- discovery


@click.command("list")
@click.argument("handle_or_did")
@click.option("--kind", type=click.Choice(sorted(_KINDS)), default="datasets", show_default=True)
@click.option("-q", "--query", help="Text to find in names and descriptions.")
@click.option("--tag", "tags", multiple=True, help="Keep records with this tag (repeat for more).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def list_cmd(handle_or_did, kind, query, tags, as_json) -> None:
    """List an account's datasets, schemas, lenses or labels, read from its own PDS."""
    from atdata_core import discover

    lister = getattr(discover, f"list_{kind}")
    found = lister(handle_or_did, query=query, tags=tags)
    if as_json:
        _echo_json([{"uri": r.uri, "cid": r.cid, "value": dict(r.value)} for r in found])
        return
    for record in found:
        value = record.value if isinstance(record.value, Mapping) else {}
        detail = {
            "datasets": lambda: _size_text(value.get("size")),
            "schemas": lambda: str(value.get("version", "")),
            "lenses": lambda: f"{value.get('sourceSchema', '?')} -> {value.get('targetSchema', '?')}",
            "labels": lambda: f"{value.get('version') or ''} -> {value.get('datasetUri', '?')}",
        }[kind]()
        # Names, versions and URIs are the record author's text: shown with controls escaped.
        echo(f"{value.get('name', '?')}  {detail}  {record.uri}")
    if not found:
        click.echo(f"no {kind} found")


def _size_text(size: Any) -> str:
    if not isinstance(size, Mapping):
        return ""
    parts = []
    for key, unit in (("samples", "samples"), ("shards", "shards"), ("bytes", "bytes")):
        count = size.get(key)
        if isinstance(count, int) and not isinstance(count, bool):
            parts.append(f"{count:,} {unit}" if key == "bytes" else f"{count} {unit}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- schema


@click.group()
def schema() -> None:
    """Show and compare published schemas."""


#: A record is at most this many bytes of JSON (a PDS refuses larger ones); a bigger file is not one.
_RECORD_BYTES = 1_000_000


def _schema_record(ref: str) -> tuple[str, dict[str, Any]]:
    """A schema by at:// URI, @handle/schema.id[@version], or a local JSON file; checked to be a schema record."""
    if os.path.isfile(ref):
        return ref, _checked_schema(_read_json_file(ref), ref)
    uri, value = _published_schema(ref)
    return uri, _checked_schema(value, uri)


def _read_json_file(path: str) -> Any:
    """The JSON value of a file, or a one-line click error saying why it has none."""
    shown = safe_text(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_RECORD_BYTES + 1)
    except OSError as err:
        raise click.ClickException(f"cannot read {shown}: {err.strerror or err}") from None
    if len(data) > _RECORD_BYTES:
        raise click.ClickException(
            f"{shown} is larger than a record can be ({_RECORD_BYTES:,} bytes of JSON), so it is not a schema record"
        )
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise click.ClickException(f"{shown} is not UTF-8 text, so it is not a schema record saved as JSON") from None
    except json.JSONDecodeError as err:
        raise click.ClickException(
            f"{shown} is not JSON ({err.msg} at line {err.lineno}, column {err.colno}); give a schema record saved "
            "as JSON"
        ) from None
    except RecursionError:
        raise click.ClickException(f"{shown} nests JSON too deeply to be a schema record") from None


def _checked_schema(value: Any, where: str) -> dict[str, Any]:
    """``value`` when it is a schema record (read tolerantly, DESIGN D6), else a one-line click error."""
    from atdata_core.errors import ValidationError
    from atdata_core.lexicon import validate_record

    shown = safe_text(where)
    if not isinstance(value, Mapping):
        raise click.ClickException(f"{shown} is not a schema record: expected a JSON object, got {type(value).__name__}")
    declared = value.get("$type")
    if declared is not None and declared != SCHEMA_NSID:
        raise click.ClickException(f"{shown} is a {safe_text(repr(declared))} record, not a schema ({SCHEMA_NSID})")
    record = dict(value)
    try:
        validate_record(record, SCHEMA_NSID, strict=False)
    except ValidationError as err:
        raise click.ClickException(f"{shown} is not a valid schema record: {safe_text(err)}") from None
    return record


def _published_schema(ref: str) -> tuple[str, Any]:
    from atdata_core._loading import index_for

    index = index_for(None)
    if ref.startswith("at://"):
        found = index.get_record(ref)
    elif ref.startswith("@") and "/" in ref:
        account, _, rest = ref[1:].partition("/")
        schema_id, _, version = rest.partition("@")
        found = index.resolve_schema(index.resolve_repo(account), schema_id, version or None)
    else:
        raise click.BadParameter(
            f"{ref!r}: give an at:// URI, @handle/schema.id or @handle/schema.id@version, or a JSON file"
        )
    return found.uri, found.value


def _account_and_id(ref: str, index: Any) -> tuple[str, str]:
    """(repository DID, schema id) of ``@handle/schema.id`` or a schema record's at:// URI."""
    if ref.startswith("at://"):
        from atdata_core.plugins import AtUri
        from atdata_core.schema._versions import version_of

        uri = AtUri.parse(ref)
        did = index.resolve_repo(uri.authority)
        found = index.get_record(str(uri.with_authority(did)))
        identity = version_of(found)
        if identity is None:
            raise click.ClickException(f"{safe_text(ref)} is not a schema record with a name and version")
        return did, identity[0]
    if ref.startswith("@") and "/" in ref:
        account, _, rest = ref[1:].partition("/")
        schema_id, _, version = rest.partition("@")
        if version:
            raise click.UsageError(f"{safe_text(ref)}: --all-versions takes a schema id without @version")
        return index.resolve_repo(account), schema_id
    raise click.BadParameter(f"{safe_text(ref)}: give an at:// URI, @handle/schema.id or a JSON file")


@schema.command("show")
@click.argument("ref")
@click.option("--python", "as_python", is_flag=True, help="Print a Python module defining the sample class.")
def schema_show(ref: str, as_python: bool) -> None:
    """Print a schema record (REF: at:// URI, @handle/schema.id[@version] or a JSON file)."""
    from atdata_core.schema import generate_python

    uri, record = _schema_record(ref)
    if as_python:
        # Record text inside the module is escaped by the writer, which parses the module before returning it.
        click.echo(generate_python(record, uri=uri if uri.startswith("at://") else None), nl=False)
        return
    echo(f"# {uri}")
    _echo_json(record)


@schema.command("diff")
@click.argument("old")
@click.argument("new")
def schema_diff(old: str, new: str) -> None:
    """Compare two schema versions: the change's kind (patch/minor/major) and every change."""
    from atdata_core.schema import classify_change, diff_schemas

    _, old_record = _schema_record(old)
    _, new_record = _schema_record(new)
    kind = classify_change(old_record, new_record)
    changes = diff_schemas(old_record, new_record)
    echo(f"{old_record.get('version')} -> {new_record.get('version')}: {kind} change")
    for change in changes:
        echo(f"  {change}")
    if not changes:
        click.echo("  no changes")


@schema.command("versions")
@click.argument("ref")
@click.option("--changes", "show_changes", is_flag=True, help="List every change under each version.")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
def schema_versions_cmd(ref: str, show_changes: bool, as_json: bool) -> None:
    """List the versions of a schema id with their change class against the previous one.

    REF: @handle/schema.id (a @version is ignored) or the at:// URI of one of
    its versions. A version whose number promises less than its change (a
    breaking change under a minor bump, possible in records other clients
    wrote) is marked "understated".
    """
    from atdata_core._loading import index_for
    from atdata_core.schema import schema_versions, version_history

    index = index_for(None)
    base = ref
    if ref.startswith("@") and "/" in ref:
        account, _, rest = ref[1:].partition("/")
        base = f"@{account}/{rest.partition('@')[0]}"
    repo, schema_id = _account_and_id(base, index)
    history = version_history(schema_versions(index, repo, schema_id))
    if as_json:
        _echo_json([
            {"version": step.version, "uri": step.uri, "change": step.kind, "changes": list(step.changes),
             "understated": step.understated, "note": step.note}
            for step in history
        ])
        return
    if not history:
        raise click.ClickException(f"no versions of {safe_text(schema_id)} are published by {safe_text(repo)}")
    echo(f"{schema_id}  ({repo})")
    for step in history:
        if step.kind is None and step.note is None:
            change = "first version"
        elif step.kind is None:
            change = f"unknown ({step.note})"
        else:
            change = f"{step.kind} change" + ("  [understated: the version number promises less]" if step.understated else "")
        echo(f"  {step.version:<14} {change}  {step.uri}")
        if show_changes:
            for line in step.changes:
                echo(f"      {line}")


# --------------------------------------------------------------------------- load


@click.command("load")
@click.argument("ref")
@click.option("-n", "--count", default=3, show_default=True, help="How many samples to show.")
@click.option("--no-verify", is_flag=True, help="Do not check the shards' sha256 (not recommended).")
@click.option("--index", "index_name", metavar="NAME", help="Index provider to ask (default: [index] default, else the account's own PDS).")
def load_cmd(ref: str, count: int, no_verify: bool, index_name: str | None) -> None:
    """Load a published dataset (at:// URI, @handle/name or @handle/name@label) and show its first samples."""
    from atdata_core.cli._shards import _summarise
    from atdata_core.dataset import Dataset
    from atdata_core._loading import resolve

    resolved = resolve(ref, index=index_name)
    entry = resolved.entry
    schema_value = resolved.schema_value
    echo(f"dataset  {entry.name}  {resolved.entry_uri}")
    echo(f"schema   {schema_value.get('name')} {schema_value.get('version')}  {resolved.schema_uri}")
    size = entry.size
    if size is not None and size.samples is not None:
        click.echo(f"samples  {size.samples}")
    click.echo(f"shards   {len(resolved.shards)}" + (f", {size.bytes:,} bytes" if size and size.bytes else ""))
    dataset = Dataset(
        shards=[shard._replace(sha256=None) if no_verify else shard for shard in resolved.shards],
        sample_type=resolved.sample_type,
    )
    shown = 0
    for sample in dataset.ordered():
        if shown >= count:
            break
        shown += 1
        click.echo(click.style(f"sample {shown}", bold=True))
        items = sample.items() if hasattr(sample, "items") else vars(sample).items()
        for key, value in items:
            echo(f"  {key}: {_summarise(value)}")
    if shown == 0:
        click.echo("no samples")
