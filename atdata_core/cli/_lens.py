"""``atdata lens``: published lenses, their verifications, and whom you trust to run lens code.

``list`` and ``show`` read records; ``show`` and ``verify`` also say whether
the installed code would run and why, deciding the way loading does, without
importing anything. ``verify --publish`` runs the lens laws on samples and
publishes a ``lensVerification``; ``trust`` edits ``[lens] trusted_dids`` and
``pinned_commits`` in your user configuration file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from atdata_core.cli._terminal import echo, safe_text


@click.group("lens")
def lens_group() -> None:
    """List, show and verify published lenses; choose whose lens code may run."""


def _index() -> Any:
    from atdata_core._loading import index_for

    return index_for(None)


def _schema_label(uri: Any) -> str:
    """``com.example.image@1.0.0`` for a schema URI keyed ``{id}:{version}``, else the URI."""
    from atdata_core.records import parse_schema_rkey

    if not isinstance(uri, str):
        return "?"
    parsed = parse_schema_rkey(uri.rsplit("/", 1)[-1])
    return f"{parsed[0]}@{parsed[1]}" if parsed else uri


# --------------------------------------------------------------------------- list


@lens_group.command("list")
@click.argument("account")
@click.option("-q", "--query", help="Text to find in names and descriptions.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def lens_list(account: str, query: str | None, as_json: bool) -> None:
    """List the lenses an ACCOUNT (handle or DID) published: name, source -> target schema, URI."""
    from atdata_core.discover import list_lenses

    found = list_lenses(account, query=query)
    if as_json:
        click.echo(json.dumps([{"uri": r.uri, "cid": r.cid, "value": dict(r.value)} for r in found], indent=2))
        return
    for record in found:
        value = record.value if isinstance(record.value, Mapping) else {}
        echo(f"{value.get('name', '?')}  {_schema_label(value.get('sourceSchema'))} -> "
             f"{_schema_label(value.get('targetSchema'))}  {record.uri}")
    if not found:
        click.echo("no lenses found")


# --------------------------------------------------------------------------- show / verify


def _decision(lens: Any) -> tuple[bool | None, str]:
    """(would run, why) for a published lens, decided without importing; (None, why) when it cannot run here."""
    from atdata_core.errors import AtdataError
    from atdata_core.lenses._published import decide_published_lens

    try:
        decision = decide_published_lens(lens)
    except AtdataError as err:
        return None, str(err)
    if decision is None:
        return None, "its lens executor does not say in advance whether it would run it"
    return decision.allowed, decision.reason


@lens_group.command("show")
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True, help="Print the record, its verifications and the decision as JSON.")
def lens_show(uri: str, as_json: bool) -> None:
    """Show a lens record, the verifications of DIDs you trust, and whether its code would run here.

    Nothing is imported to decide: the code is located on disk, checked
    against its pinned commit, and its source hashed.
    """
    from atdata_core.lenses._published import published_lens

    lens = published_lens(_index(), uri)
    runs, why = _decision(lens)
    if as_json:
        click.echo(json.dumps({
            "uri": lens.uri, "cid": lens.cid, "author": lens.author, "value": dict(lens.value),
            "verifications": [{"uri": v.uri, "value": dict(v.value)} for v in lens.verifications],
            "runs": runs, "reason": why,
        }, indent=2, default=repr))
        return
    value = lens.value
    echo(f"lens     {lens.name}  {lens.uri}")
    echo(f"author   {lens.author}")
    echo(f"version  {lens.cid or '(CID not known)'}")
    echo(f"maps     {_schema_label(value.get('sourceSchema'))} -> {_schema_label(value.get('targetSchema'))}")
    if isinstance(value.get("description"), str):
        echo(f"about    {value['description']}")
    for key in ("getterCode", "putterCode"):
        code = value.get(key)
        if isinstance(code, Mapping):
            echo(f"{key[:6]}   {code.get('path')} at {str(code.get('commit'))[:12]} of {code.get('repository')}")
    if lens.verifications:
        click.echo("verifications by DIDs you trust:")
        for item in lens.verifications:
            v = item.value
            digest = v.get("codeHash", {}).get("digest") if isinstance(v.get("codeHash"), Mapping) else None
            echo(f"  {v.get('verificationMethod')}  code sha256:{str(digest)[:12]}  {item.uri}")
    else:
        click.echo("verifications by DIDs you trust: none")
    state = {True: "would run", False: "would not run", None: "cannot run here"}[runs]
    echo(f"{state}: {why}")


@lens_group.command("verify")
@click.argument("uri")
@click.option("--publish", is_flag=True, help="Publish your own lensVerification of it (log in first).")
@click.option("--method", type=click.Choice(["automatedTest", "codeReview", "formalProof", "signedHash"]),
              default="automatedTest", show_default=True, help="With --publish: how you verified it.")
@click.option("--samples", "samples_ref", metavar="DATASET",
              help="With --publish --method automatedTest: a dataset (at:// URI or @handle/name) of source samples.")
@click.option("-n", "--count", default=16, show_default=True, help="How many samples the lens laws are checked on.")
@click.option("--description", help="With --publish: what was verified (default: the lens-law report).")
@click.option("--as", "account", metavar="HANDLE_OR_DID", help="Which saved session to publish with.")
def lens_verify(uri: str, publish: bool, method: str, samples_ref: str | None, count: int,
                description: str | None, account: str | None) -> None:
    """Check a lens against the verifications of DIDs you trust, or publish your own verification.

    Without --publish: exit 0 when the installed code may run (a
    verification by a DID you trust covers this version of the lens and the
    hash of the installed getter and putter source, or you trust it
    otherwise), 1 when not, saying why.

    With --publish: check the lens laws (GetPut, PutGet) on samples of
    --samples, running the installed code (you ask for it), then publish a
    lensVerification holding the lens record's CID and the code's sha256.
    """
    from atdata_core.lenses._published import published_lens

    if not publish:
        lens = published_lens(_index(), uri)
        runs, why = _decision(lens)
        if runs:
            echo(f"verified: {why}")
            return
        raise click.ClickException(f"not verified: {why}")

    from atdata_core.atproto import Client
    from atdata_core.publish import publish_lens_verification

    samples = None
    if method == "automatedTest":
        if not samples_ref:
            raise click.UsageError("--method automatedTest checks the lens laws on samples: give --samples DATASET")
        import atdata_core

        samples = list(atdata_core.load(samples_ref).head(max(count, 1)))
    client = Client.from_saved(account)
    result = publish_lens_verification(client, uri, samples=samples, method=method, description=description)
    echo(f"published {result.uri}")
    echo(f"  {result.record.get('description', '')}")


# --------------------------------------------------------------------------- trust


@lens_group.command("trust")
@click.argument("who", required=False, metavar="[DID|@HANDLE|LENS-URI]")
@click.option("--remove", is_flag=True, help="Stop trusting it.")
def lens_trust(who: str | None, remove: bool) -> None:
    """Trust a DID's lenses and verifications, or pin a lens's commit; without an argument, list what you trust.

    \b
    atdata lens trust did:plc:abc...          lenses and lensVerifications it publishes count
    atdata lens trust @alice.example.com      the same, by handle
    atdata lens trust at://.../lens/3k...     pin that lens's commit(s) (code you reviewed)
    atdata lens trust --remove did:plc:abc...

    Written to [lens] trusted_dids / pinned_commits of your user configuration file.
    """
    from atdata_core.config import user_config_path
    from atdata_core.plugins import get_config

    config = get_config()
    if who is None:
        for key in ("trusted_dids", "pinned_commits"):
            values = config.get_list(f"lens.{key}")
            echo(f"[lens] {key}" + (f"  (from {config.source('lens.' + key)})" if values else ""))
            for value in values:
                echo(f"  {value}")
            if not values:
                click.echo("  (none)")
        return

    path = user_config_path()
    if who.startswith("at://"):
        from atdata_core.lenses._published import published_lens

        lens = published_lens(_index(), who, verifiers=())
        entries = []
        for key in ("getterCode", "putterCode"):
            code = lens.value.get(key)
            if isinstance(code, Mapping) and isinstance(code.get("commit"), str) and code.get("commit"):
                entries.append(f"{code.get('repository') or ''}@{code['commit']}".lstrip("@"))
        if not entries:
            raise click.ClickException(f"{safe_text(who)} pins no commit to trust")
        key, targets = "pinned_commits", list(dict.fromkeys(entries))
    else:
        did = who
        if not who.startswith("did:"):
            did = _index().resolve_repo(who.lstrip("@"))
        key, targets = "trusted_dids", [did]
    current = _file_list(path, key)
    if remove:
        updated = [value for value in current if value not in targets]
        if updated == current:
            raise click.ClickException(f"{safe_text(', '.join(targets))} is not in [lens] {key} of {safe_text(path)}")
    else:
        updated = current + [value for value in targets if value not in current]
    _write_lens_list(path, key, updated)
    verb = "no longer trusted" if remove else ("pinned" if key == "pinned_commits" else "trusted")
    for value in targets:
        echo(f"{verb}: {value}")
    echo(f"[lens] {key} in {path}")
    variable = f"ATDATA_LENS_{key.upper()}"
    if os.environ.get(variable) is not None:
        echo(f"note: {variable} is set and overrides the file while it is")
    else:
        from atdata_core.config import load_config

        source = load_config().source(f"lens.{key}")
        if source not in (str(path), "built-in defaults"):
            echo(f"note: {source} sets [lens] {key} too, and overrides the user file")


# --------------------------------------------------------------------------- editing the configuration file

_HEADER = re.compile(r"^\s*\[\s*lens\s*\]\s*(#.*)?$")
_ANY_HEADER = re.compile(r"^\s*\[")


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    import tomllib

    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise click.ClickException(f"cannot read {safe_text(path)} as TOML: {err}") from None


def _file_list(path: Path, key: str) -> list[str]:
    _, data = _read_toml(path)
    section = data.get("lens")
    value = section.get(key, []) if isinstance(section, Mapping) else []
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _write_lens_list(path: Path, key: str, values: list[str]) -> None:
    """Set ``[lens] key = [...]`` in a TOML file, leaving every other line as it was."""
    import tomllib

    text, data = _read_toml(path)
    line = f"{key} = [{', '.join(json.dumps(value) for value in values)}]\n"
    lines = text.splitlines(keepends=True)
    header = next((i for i, current in enumerate(lines) if _HEADER.match(current)), None)
    if header is None:
        if "lens" in data:
            raise click.ClickException(
                f"{safe_text(path)} sets [lens] in a form this command does not edit (dotted keys or an inline "
                f"table); add {key} there yourself"
            )
        prefix = text if not text or text.endswith("\n") else text + "\n"
        new_text = prefix + ("\n" if prefix.strip() else "") + "[lens]\n" + line
    else:
        end = next((j for j in range(header + 1, len(lines)) if _ANY_HEADER.match(lines[j])), len(lines))
        assignment = re.compile(rf"^\s*{re.escape(key)}\s*=")
        start = next((j for j in range(header + 1, end) if assignment.match(lines[j])), None)
        if start is None:
            lines.insert(header + 1, line)
        else:
            stop = start
            while True:  # the value may span lines: up to the first line where it parses
                try:
                    tomllib.loads("".join(lines[start : stop + 1]))
                    break
                except tomllib.TOMLDecodeError:
                    stop += 1
                    if stop >= end:
                        raise click.ClickException(f"cannot find the end of {key} in {safe_text(path)}") from None
            lines[start : stop + 1] = [line]
        new_text = "".join(lines)
    try:
        written = tomllib.loads(new_text).get("lens", {}).get(key)
    except tomllib.TOMLDecodeError:
        written = None
    if written != values:
        raise click.ClickException(f"could not set [lens] {key} in {safe_text(path)} safely; edit it yourself")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(new_text, encoding="utf-8")
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        else:
            os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
