"""``atdata codegen``: Python modules and packages, or .proto files, from schema records."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from atdata_core.cli._terminal import echo, safe_text


@click.command("codegen")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("-o", "--output", required=True, metavar="PATH",
              help="A .py file (one schema), a folder (a package), a .proto file or folder (--lang proto); - for stdout.")
@click.option("--lang", type=click.Choice(["python", "proto"]), default="python", show_default=True,
              help="python: @packable classes; proto: proto3 messages for protoc.")
@click.option("--class-name", metavar="NAME", help="Name of the class of a single module (default: from the schema id).")
@click.option("--all-versions", is_flag=True,
              help="Every published version of each REF's schema id, side by side (REF without @version).")
@click.option("--force", is_flag=True, help="Replace files that exist already.")
def codegen_cmd(refs: tuple[str, ...], output: str, lang: str, class_name: str | None, all_versions: bool, force: bool) -> None:
    """Write code for schemas: REF is an at:// URI, @handle/schema.id[@version] or a schema record file.

    \b
    atdata codegen @alice.example.com/com.example.image@1.0.0 -o image.py
    atdata codegen @alice.example.com/com.example.image --all-versions -o schemas/
    atdata codegen image.json --lang proto -o protos/

    One schema and a .py output give one module; a folder gives a package
    with one module per schema id, its versions side by side (ImageV1_0_0,
    ImageV2_0_0). Record text is escaped in what is written, names that
    cannot be code are refused, and every file is checked before any is
    written.
    """
    schemas = _collect(refs, all_versions)
    to_stdout = output == "-"
    if lang == "proto":
        files = _proto_files(schemas)
        if to_stdout or output.endswith(".proto"):
            if len(files) != 1:
                listed = ", ".join(sorted(files))
                raise click.UsageError(f"these schemas make {len(files)} .proto files ({safe_text(listed)}); give a folder with -o")
            (text,) = files.values()
            _write_one(output, text, force)
            return
        _write_tree(Path(output), files, force)
        return
    if class_name is not None and (len(schemas) != 1 or not output.endswith(".py") and not to_stdout):
        raise click.UsageError("--class-name names the class of a single module: give one schema and -o FILE.py")
    if to_stdout or output.endswith(".py"):
        if len(schemas) != 1:
            raise click.UsageError(
                f"{len(schemas)} schemas go into a package: give a folder with -o (one module per schema id)"
            )
        from atdata_core.schema import generate_python

        record, uri = schemas[0]
        _write_one(output, generate_python(record, class_name=class_name, uri=uri), force)
        return
    from atdata_core.schema import generate_package

    _write_tree(Path(output), generate_package(schemas), force)


def _collect(refs: tuple[str, ...], all_versions: bool) -> list[tuple[dict[str, Any], str | None]]:
    """(record, at:// URI or None) for every schema the references name, checked to be schema records."""
    from atdata_core.cli._federation import _account_and_id, _checked_schema, _schema_record

    found: list[tuple[dict[str, Any], str | None]] = []
    for ref in refs:
        if not all_versions or os.path.isfile(ref):
            where, record = _schema_record(ref)
            found.append((record, where if where.startswith("at://") else None))
            continue
        from atdata_core._loading import index_for
        from atdata_core.schema import schema_versions

        index = index_for(None)
        repo, schema_id = _account_and_id(ref, index)
        versions = schema_versions(index, repo, schema_id)
        if not versions:
            raise click.ClickException(f"{safe_text(ref)}: no versions of {safe_text(schema_id)} are published there")
        found += [(_checked_schema(item.value, item.uri), item.uri) for item in versions]
    return found


def _proto_files(schemas: list[tuple[dict[str, Any], str | None]]) -> dict[str, str]:
    from atdata_core.schema import proto_files

    files: dict[str, str] = {}
    for record, _ in schemas:
        for path, text in proto_files(record).items():
            if path in files and files[path] != text:
                raise click.ClickException(f"two schemas would both write {safe_text(path)}")
            files[path] = text
    return files


def _write_one(output: str, text: str, force: bool) -> None:
    if output == "-":
        click.echo(text, nl=False)
        return
    path = Path(output)
    if path.exists() and not force:
        raise click.ClickException(f"{safe_text(path)} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, text)
    echo(f"wrote {path}")


def _write_tree(root: Path, files: Mapping[str, str], force: bool) -> None:
    """Write every file under ``root`` (paths checked to stay inside it), or none when one exists already."""
    targets = []
    for relative, text in sorted(files.items()):
        target = (root / relative).resolve()
        if root.resolve() not in target.parents:
            raise click.ClickException(f"{safe_text(relative)} would be written outside {safe_text(root)}")
        targets.append((target, text))
    existing = [target for target, _ in targets if target.exists()]
    if existing and not force:
        shown = ", ".join(safe_text(path) for path in existing[:3])
        raise click.ClickException(f"{shown} exist{'s' if len(existing) == 1 else ''}; pass --force to replace")
    for target, text in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(target, text)
    echo(f"wrote {len(targets)} file(s) under {root}")
    for target, _ in targets:
        echo(f"  {target.relative_to(root.resolve())}")


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
