"""Hostile lens and schema records, and what records put on a terminal (DESIGN D3, D8; issue 7).

A record is data written by someone else. These tests play the stranger: lens
records naming code that must never run, schema records built to inject code
into generated modules, names that try to drive the terminal, listings with one
malformed record among good ones, and records written loosely by other clients.
Where the realistic path is a record read from another account, the record is
published by a second account on the local PDS and read back by the victim.

Modules that must not run write a marker file when they are imported; each
test checks the marker is absent (and that the module is not in sys.modules).
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest

from atdata_core.errors import LensExecutionRefused
from atdata_core.executors import PythonExecutorSettings, PythonLensExecutor

REPOSITORY = "https://example.com/stranger/lenses.git"
COMMIT = "c0ffee" + "0" * 34


def marker_module(folder: Path, name: str, marker: Path, body: str = "def get(x):\n    return x\n") -> Path:
    """Write ``name.py`` into ``folder``: importing it creates ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.py"
    file.write_text(f"open({str(marker)!r}, 'a').write('imported\\n')\n{body}")
    return file


def marker_package(folder: Path, dotted: str, markers: Path, leaf_body: str = "def get(x):\n    return x\n") -> list[Path]:
    """A package tree for ``dotted`` whose every ``__init__.py`` and leaf module write a marker of their own."""
    parts = dotted.split(".")
    written = []
    here = folder
    for depth, part in enumerate(parts):
        marker = markers / f"MARKER-{'.'.join(parts[: depth + 1])}"
        written.append(marker)
        if depth < len(parts) - 1:
            here = here / part
            marker_module(here, "__init__", marker, body="")
        else:
            marker_module(here, part, marker, body=leaf_body)
    return written


def reference(path: str, commit: str = COMMIT) -> dict[str, str]:
    return {"repository": REPOSITORY, "commit": commit, "path": path, "language": "python"}


def forget(*names: str) -> None:
    for loaded in [n for n in sys.modules if any(n == name or n.startswith(name + ".") for name in names)]:
        del sys.modules[loaded]


@pytest.fixture
def unique():
    """A fresh module name per test, so no import cache from another test can answer for it."""
    names = []

    def make(stem: str) -> str:
        names.append(f"{stem}_{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    forget(*names)


EXECUTORS = {
    "default": PythonExecutorSettings(),
    "require_verified_commit": PythonExecutorSettings(require_verified_commit=True),
}


# ====================================================================== hostile lens records


@pytest.mark.parametrize("entry", ["", "absolute"])
@pytest.mark.parametrize("settings", list(EXECUTORS), ids=list(EXECUTORS))
def test_lens_code_in_the_working_directory_is_refused_before_it_is_imported(
    tmp_path, monkeypatch, unique, entry, settings
):
    work = tmp_path / "downloads"
    name = unique("evil_local")
    marker = tmp_path / "MARKER"
    marker_module(work, name, marker)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work) if entry == "absolute" else "")
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor(EXECUTORS[settings]).load(reference(f"{name}.py:get"))
    message = str(caught.value)
    assert "current working directory" in message and "Nothing was imported" in message
    assert "allow_working_directory" in message
    assert not marker.exists() and name not in sys.modules


@pytest.mark.parametrize("form", ["file", "dotted"])
def test_nested_packages_in_the_working_directory_run_nothing(tmp_path, monkeypatch, unique, form):
    work = tmp_path / "work"
    top = unique("evilpkg")
    markers = marker_package(work, f"{top}.sub.mod", tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")
    path = f"{top}/sub/mod.py:get" if form == "file" else f"{top}.sub.mod:get"
    with pytest.raises(LensExecutionRefused, match="current working directory"):
        PythonLensExecutor(PythonExecutorSettings(require_verified_commit=True)).load(reference(path))
    assert [m for m in markers if m.exists()] == []
    assert top not in sys.modules


def test_an_installed_package_is_not_imported_for_a_reference_it_cannot_satisfy(tmp_path, monkeypatch, unique):
    """Looking a submodule up used to import its parent packages; nothing runs before the decision now."""
    site = tmp_path / "site"
    top = unique("installed_pkg")
    markers = marker_package(site, f"{top}.inner.lenses", tmp_path)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    refusals = {
        f"{top}/inner/missing.py:get": "not installed",
        f"{top}/nowhere/lenses.py:get": "not installed",
        f"{top}/inner/lenses.py:absent": "has no absent; it defines get",
        f"{top}.inner.lenses.deeper:get": "not a package",
    }
    for path, expected in refusals.items():
        with pytest.raises(LensExecutionRefused, match=expected):
            PythonLensExecutor().load(reference(path))
    # installed and defining the function, but its commit cannot be checked: refused when verification is required
    with pytest.raises(LensExecutionRefused, match="require_verified_commit is true"):
        PythonLensExecutor(PythonExecutorSettings(require_verified_commit=True)).load(
            reference(f"{top}/inner/lenses.py:get")
        )
    assert [m for m in markers if m.exists()] == [] and top not in sys.modules
    # the same reference, allowed: now (and only now) the package runs
    assert PythonLensExecutor().load(reference(f"{top}/inner/lenses.py:get"), explicit=True)(7) == 7
    assert all(m.exists() for m in markers)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("this.py:get", "standard library"),
        ("antigravity.py:geohash", "standard library"),
        ("json/__init__.py:loads", "standard library"),
        ("os.py:getcwd", "standard library"),
        ("sys.py:exit", "no file|built into Python"),
        ("__hello__.py:main", "dunder module"),
        ("__main__.py:main", "dunder module"),
        ("pkg/__main__.py:main", "dunder module"),
    ],
)
def test_the_standard_library_and_dunder_modules_are_never_lens_code(path, expected, capsys):
    before = set(sys.modules)
    with pytest.raises(LensExecutionRefused, match=expected):
        PythonLensExecutor().load(reference(path))
    assert {"this", "antigravity", "__hello__"} & (set(sys.modules) - before) == set()
    assert "Zen of Python" not in capsys.readouterr().out


def test_a_working_directory_copy_shadowing_an_installed_module_is_refused(tmp_path, monkeypatch, unique):
    name = unique("shadowed")
    site, work = tmp_path / "site", tmp_path / "work"
    installed_marker, shadow_marker = tmp_path / "MARKER-installed", tmp_path / "MARKER-shadow"
    marker_module(site, name, installed_marker)
    marker_module(work, name, shadow_marker)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend("")  # the working directory first: an import would take its copy
    with pytest.raises(LensExecutionRefused, match="current working directory"):
        PythonLensExecutor().load(reference(f"{name}.py:get"))
    assert not shadow_marker.exists() and not installed_marker.exists()


def test_the_working_directory_is_a_code_source_only_when_the_user_opts_in(tmp_path, monkeypatch, unique):
    from atdata_core.plugins import lens_executor, reset_plugins

    work = tmp_path / "project"
    name = unique("my_lenses")
    marker = tmp_path / "MARKER"
    marker_module(work, name, marker)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")
    monkeypatch.setenv("ATDATA_LENS_ALLOW_WORKING_DIRECTORY", "true")
    reset_plugins()
    try:
        executor = lens_executor(language="python")
    finally:
        reset_plugins()
    assert executor.settings.allow_working_directory
    assert executor.load(reference(f"{name}.py:get"), explicit=True)("x") == "x"
    assert marker.exists()


# ====================================================================== hostile schema records -> generated code


def schema_value(**changes) -> dict:
    """A valid schema record with one string field (``label``) and one optional array (``image``)."""
    record = {
        "$type": "science.alt.dataset.schema",
        "name": "com.example.hostile",
        "version": "1.0.0",
        "schemaType": "jsonSchema",
        "schema": {
            "$type": "science.alt.dataset.schema#jsonSchemaFormat",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "label": {"type": "string", "description": "what it is"},
                "image": {
                    "$ref": "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray",
                    "dtype": "uint8",
                    "shape": [None, 3],
                },
            },
            "required": ["label"],
        },
        "createdAt": "2025-01-01T00:00:00.000Z",
    }
    record.update(changes)
    return record


def with_field(name: str = "label", **spec) -> dict:
    record = schema_value()
    record["schema"]["properties"][name] = dict(record["schema"]["properties"].pop("label", {}), **spec) | spec
    record["schema"]["required"] = [name] if "default" not in spec else []
    return record


def import_generated(source: str, folder: Path):
    """Write generated source to a file and import it as a module, the way a user would."""
    import importlib.util

    name = f"generated_{uuid.uuid4().hex[:10]}"
    file = folder / f"{name}.py"
    file.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def payloads(marker: Path) -> dict[str, str]:
    """Text that runs code (creating ``marker``) if it ever lands unescaped in Python source."""
    run = f"open({str(marker)!r}, 'w').write('ran')"
    return {
        "triple quotes": f'x"""\n{run}\n"""',
        "single triple quotes": f"x'''\n{run}\n'''",
        "trailing backslash": "ends with a backslash\\",
        "backslash quote": f'\\"""\n{run}\n#',
        "carriage return": f'x"""\r{run}\r"""',
        "repr breaker": f"x'\n)\n{run}#",
        "controls and bidi": "\x1b[2J\x00\x07\u202eevil\u2066\u2028\x85\x9b",
        "lone surrogate": "\ud800 x",
    }


@pytest.mark.parametrize("where", ["name", "version", "description", "schemaType", "field description", "default"])
@pytest.mark.parametrize("payload", list(payloads(Path("m"))))
def test_generated_modules_from_hostile_schemas_run_nothing_when_imported(tmp_path, where, payload):
    from atdata_core.errors import SchemaError
    from atdata_core.schema import generate_python

    marker = tmp_path / "MARKER"
    text = payloads(marker)[payload]
    if where == "field description":
        record = with_field(description=text)
    elif where == "default":
        record = with_field(default=text)
    else:
        record = schema_value(**{where: text})
    try:
        source = generate_python(record)
    except SchemaError:
        assert where == "schemaType"  # an unknown schema format is refused, which is also safe
        return
    module = import_generated(source, tmp_path)
    assert not marker.exists()
    cls = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__)
    # Escaped, not altered: the record's text comes back exactly.
    if where == "description":
        import inspect

        # Indented under the class (cleandoc gives the text back); a lone surrogate, which CPython refuses
        # in a class docstring, becomes U+FFFD.
        wanted = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
        assert inspect.cleandoc(cls.__doc__) == inspect.cleandoc(wanted)
    if where == "field description":
        from atdata_core import sample_fields

        assert sample_fields(cls)[0].description == text
    if where == "default":
        assert cls().label == text
    if where in ("name", "version"):
        assert module.__doc__.count("\n") == 3  # the header stays one line of text plus the note


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a: int = 1\n    b", "not a Python identifier"),
        ("class", "not a Python identifier"),
        ("__init__", "'_'|'__'"),
        ("__secret", "'_'|'__'"),
        ("\ufb01eld", "NFKC|normaliz"),
    ],
)
def test_field_names_that_are_not_safe_identifiers_are_refused(tmp_path, name, expected):
    from atdata_core.errors import SchemaError
    from atdata_core.schema import generate_python

    with pytest.raises(SchemaError, match=expected):
        generate_python(with_field(name))


@pytest.mark.parametrize("name", ["str", "np", "NDArray"])
def test_a_field_whose_default_would_shadow_a_name_the_module_uses_is_refused(name):
    from atdata_core.errors import SchemaError
    from atdata_core.schema import generate_python

    record = schema_value()
    record["schema"]["properties"] = {
        name: {"type": "integer", "default": 3},
        "caption": {"type": "string"},
        "scores": {"$ref": "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray", "dtype": "float32"},
    }
    record["schema"]["required"] = []
    with pytest.raises(SchemaError, match=f"the field '{name}' has a default"):
        generate_python(record)


def test_generated_source_is_checked_before_it_is_returned():
    from atdata_core.errors import SchemaError
    from atdata_core.schema._codegen import check_generated_source

    for injected in (
        '"""doc"""\nimport os\n',
        "from atdata_core import packable\n\n@packable\nclass X:\n    a: int = __import__('os').getpid()\n",
        "from atdata_core import packable\n\n@packable\nclass X:\n    a: int\n    print('hi')\n",
        "from atdata_core import packable\n\n@packable\nclass X:\n    a: int\n\nX()\n",
        '"""doc\n',
    ):
        with pytest.raises(SchemaError, match="not returned"):
            check_generated_source(injected)


# ====================================================================== hostile records on the local PDS

ENTRY = "science.alt.dataset.entry"
SCHEMA = "science.alt.dataset.schema"
LENS = "science.alt.dataset.lens"
LABEL = "science.alt.dataset.label"
DIGEST = "ab" * 32


@pytest.fixture
def victim(tmp_path, monkeypatch, pds_sandbox):
    """This process is the victim's machine: its config folder, the sandbox's PLC directory, a folder to work in."""
    from atdata_core.atproto import clear_identity_cache
    from atdata_core.plugins import reset_plugins

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "victim-config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    monkeypatch.delenv("ATDATA_ATPROTO_RESOLVER", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    work = tmp_path / "victim-work"
    work.mkdir()
    monkeypatch.chdir(work)
    clear_identity_cache()
    reset_plugins()
    yield work
    clear_identity_cache()
    reset_plugins()


@pytest.fixture
def mallory(make_account, tmp_path, victim):
    """The stranger: another account on the PDS, writing records with her own client (validation bypassed at will)."""
    from atdata_core.atproto import Client, SessionStore

    account = make_account("mallory")
    client = Client.login(
        account.did, account.password, pds_url=account.pds_url, store=SessionStore(tmp_path / "mallory-sessions")
    )
    return account, client


def cli(*args: str):
    from click.testing import CliRunner

    from atdata_core.cli import cli as atdata

    return CliRunner().invoke(atdata, list(args))


def entry_value(name: str, schema_uri: str, **extra) -> dict:
    return {
        "$type": ENTRY,
        "name": name,
        "schemaRef": schema_uri,
        "storage": {
            "$type": "science.alt.dataset.storageHttp",
            "shards": [{"url": "https://data.example.com/a.tar", "checksum": {"algorithm": "sha256", "digest": DIGEST}}],
        },
        "createdAt": "2025-06-01T00:00:00.000Z",
        **extra,
    }


def no_raw_controls(text: str) -> bool:
    """True when text holds nothing a terminal would act on: only printable characters and line breaks."""
    import unicodedata

    return all(ch == "\n" or unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"} for ch in text)


HOSTILE_NAME = "evil\x1b[2J\x1b]0;owned\x07\rfine\b\u202etxt.exe\x9b31m"


def test_a_strangers_lens_record_naming_code_in_the_working_directory_runs_nothing(mallory, victim, monkeypatch):
    import atdata_core

    account, client = mallory
    name = f"evil_local_{uuid.uuid4().hex[:8]}"
    marker = victim.parent / "MARKER"
    marker_module(victim, name, marker)
    monkeypatch.syspath_prepend("")  # as under `python -m` or `python -c`: the folder you are in is importable
    schema = f"at://{account.did}/{SCHEMA}/com.example.any:1.0.0"
    code = {"repository": REPOSITORY, "commit": COMMIT, "path": f"{name}.py:get", "language": "python"}
    uri, _ = client.create_record(LENS, {
        "$type": LENS, "name": "helpful", "sourceSchema": schema, "targetSchema": schema,
        "getterCode": code, "putterCode": code, "createdAt": "2025-06-01T00:00:00.000Z",
    })
    with pytest.raises(LensExecutionRefused, match="current working directory"):
        atdata_core.load_lens(uri)
    assert not marker.exists() and name not in sys.modules


def test_atdata_schema_show_python_of_a_strangers_schema_writes_a_module_that_runs_nothing(mallory, victim):
    account, client = mallory
    marker = victim.parent / "MARKER"
    payload = payloads(marker)
    record = schema_value(
        name=payload["triple quotes"], version=payload["backslash quote"], description=payload["repr breaker"],
    )
    record["schema"]["properties"]["label"]["description"] = payload["triple quotes"]
    record["schema"]["properties"]["label"]["default"] = payload["carriage return"]
    record["schema"]["required"] = []
    uri, _ = client.create_record(SCHEMA, record, validate=False)

    shown = cli("schema", "show", uri, "--python")
    assert shown.exit_code == 0, shown.output
    module = import_generated(shown.output, victim)
    assert not marker.exists()
    cls = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__)
    assert cls().label == payload["carriage return"]
    as_json = cli("schema", "show", uri)
    assert as_json.exit_code == 0 and no_raw_controls(as_json.output)


def test_list_and_load_escape_terminal_controls_in_record_text(mallory, victim, shard_server):
    import json

    import numpy as np

    from atdata_core import ShardWriter, packable
    from atdata_core.publish import publish_schema

    account, client = mallory
    folder, base = shard_server

    @packable
    class Note:
        text: str

    with ShardWriter(str(folder / "notes-%06d.tar"), maxcount=10) as sink:
        sink.write(Note(text="\x1b[31mred\x1b[0m"))
    schema = publish_schema(client, Note, schema_id="com.example.note", version="1.0.0", description=HOSTILE_NAME)
    # a schema record of another client whose name and version carry escapes too
    loose_schema = schema_value(name="com.example.x" + HOSTILE_NAME, version="1.0.0\x1b[8m")
    client.create_record(SCHEMA, loose_schema, validate=False)
    (info,) = sink.shards
    entry = entry_value(HOSTILE_NAME, schema.uri, description=HOSTILE_NAME, tags=["notes\x1b[5m"])
    entry["storage"]["shards"] = [{"url": f"{base}/{Path(info.url).name}", "checksum": {"algorithm": "sha256", "digest": info.sha256}}]
    entry_uri, _ = client.create_record(ENTRY, entry)
    client.create_record(LABEL, {"$type": LABEL, "name": HOSTILE_NAME, "datasetUri": entry_uri, "version": "v1\r",
                                 "createdAt": "2025-06-01T00:00:00.000Z"})

    for kind in ("datasets", "schemas", "labels"):
        listed = cli("list", account.did, "--kind", kind)
        assert listed.exit_code == 0, listed.output
        assert no_raw_controls(listed.output), repr(listed.output)
        assert "\\x1b[2J" in listed.output or "\\x1b[8m" in listed.output or "\\r" in listed.output
    assert "evil\\x1b[2J\\x1b]0;owned\\x07\\rfine\\x08\\u202etxt.exe\\x9b31m" in cli("list", account.did).output
    # JSON stays exact: json.dumps escapes controls, and reading it back gives the record's text
    as_json = cli("list", account.did, "--json")
    assert no_raw_controls(as_json.output)
    assert json.loads(as_json.output)[0]["value"]["name"] == HOSTILE_NAME

    loaded = cli("load", entry_uri, "-n", "1")
    assert loaded.exit_code == 0, loaded.output
    assert no_raw_controls(loaded.output), repr(loaded.output)
    assert "dataset  evil\\x1b[2J" in loaded.output
    assert "\\x1b[31mred" in loaded.output


def test_error_messages_quoting_record_text_are_escaped_too():
    import click

    from atdata_core.cli import cli as atdata
    from atdata_core.errors import RecordError

    @click.command("explode")
    def explode():
        raise RecordError(f"record {HOSTILE_NAME} is broken\nsecond line")

    atdata.add_command(explode)
    try:
        result = cli("explode")
    finally:
        atdata.commands.pop("explode", None)
    assert result.exit_code == 1
    assert no_raw_controls(result.output)
    assert "evil\\x1b[2J" in result.output and "\nsecond line" in result.output


def test_one_malformed_record_does_not_hide_an_accounts_other_records(mallory, victim, caplog):
    import json
    import logging

    from atdata_core.discover import list_datasets, list_schemas
    from atdata_core.publish import publish_schema
    from tests.lens_example import RGBImage

    account, client = mallory
    schema = publish_schema(client, RGBImage, schema_id="com.example.rgb", version="1.0.0", tags=["vision"])
    good, _ = client.create_record(ENTRY, entry_value("good", schema.uri, tags=["vision"]))
    bad = [
        client.create_record(ENTRY, entry_value(f"bad-{i}", schema.uri, tags=tags), validate=False)[0]
        for i, tags in enumerate(([{"tag": "vision"}], 5, True, "vision", [["vision"]]))
    ]
    for metadata in ("not a map", 5, ["vision"]):
        client.create_record(
            SCHEMA, schema_value(name="com.example.odd", version="1.0.0", metadata=metadata), validate=False
        )
    bad.append(client.create_record(ENTRY, entry_value("no-schema-ref", "not a uri"), validate=False)[0])

    with caplog.at_level(logging.WARNING, logger="atdata_core"):
        assert [r.uri for r in list_datasets(account.did)] == [good]
        assert [r.uri for r in list_datasets(account.did, tags=["vision"])] == [good]
        assert [r.uri for r in list_schemas(account.did, tags=["vision"])] == [schema.uri]
        assert len(list_schemas(account.did)) == 1
    skipped = [r.getMessage() for r in caplog.records if r.name.startswith("atdata_core") and "skipped" in r.getMessage()]
    assert all(any(uri in message for message in skipped) for uri in bad)

    text = cli("list", account.did)
    assert text.exit_code == 0, text.output
    assert "good" in text.output and "bad-" not in text.output
    as_json = cli("list", account.did, "--json")
    assert as_json.exit_code == 0 and [r["uri"] for r in json.loads(as_json.output)] == [good]
    tagged = cli("list", account.did, "--kind", "schemas", "--tag", "vision")
    assert tagged.exit_code == 0 and schema.uri in tagged.output


def test_records_written_with_a_lowercase_t_or_z_are_read_with_a_warning(mallory, victim, caplog):
    import logging

    import atdata_core
    from atdata_core.discover import list_datasets
    from atdata_core.lexicon import validate_record
    from atdata_core.errors import ValidationError
    from atdata_core.publish import publish_schema
    from tests.lens_example import RGBImage

    account, client = mallory
    schema = publish_schema(client, RGBImage, schema_id="com.example.rgb", version="1.0.0")
    loose = entry_value("loose", schema.uri, createdAt="2025-01-01t00:00:00z")
    with pytest.raises(ValidationError, match="createdAt"):
        validate_record(loose)  # writers stay strict
    uri, _ = client.create_record(ENTRY, loose, validate=False)
    with caplog.at_level(logging.WARNING, logger="atdata_core"):
        assert [r.uri for r in list_datasets(account.did)] == [uri]
        dataset = atdata_core.load(uri)
    assert dataset is not None
    assert any("lowercase" in r.getMessage() and uri in r.getMessage() for r in caplog.records)
    from atdata_core.records import EntryRecord, read_record

    model, warnings = read_record(loose, EntryRecord)
    assert model.created_at.isoformat() == "2025-01-01T00:00:00+00:00"
    assert [w.rule for w in warnings] == ["format:datetime"]


# ====================================================================== `atdata schema show` of files that are not schemas


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is not JSON"),  # /etc/passwd
        (b"\x80\x81\xff\x00binary", "not UTF-8"),
        (b"{not json", "is not JSON"),
        (b"[1, 2, 3]", "expected a JSON object, got list"),
        (b'{"$type": "science.alt.dataset.entry", "name": "x"}', "is a 'science.alt.dataset.entry' record"),
        (b'{"$type": "science.alt.dataset.schema", "name": 5}', "not a valid schema record"),
        (b"[" * 100000 + b"]" * 100000, "nests JSON too deeply|is not JSON"),
        (b" " * 1_000_001, "larger than a record can be"),
    ],
)
@pytest.mark.parametrize("python", [False, True])
def test_schema_show_of_a_file_that_is_not_a_schema_record_is_a_one_line_error(tmp_path, content, expected, python):
    if content is None:
        path = "/etc/passwd"
        if not Path(path).is_file():
            pytest.skip("no /etc/passwd here")
    else:
        path = str(tmp_path / "record.json")
        Path(path).write_bytes(content)
    result = cli("schema", "show", path, *(["--python"] if python else []))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert re.search(expected, lines[0])
    assert "root:" not in result.output  # nothing of the file is quoted


def test_schema_show_of_a_folder_is_a_one_line_usage_error(tmp_path):
    result = cli("schema", "show", str(tmp_path))  # a folder: neither a file nor a reference
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if "Error" in line]) == 1


@pytest.mark.parametrize(
    "function", ["__builtins__.eval", "__loader__.exec_module", "get.__globals__", "os.system", "subprocess.run"]
)
def test_a_reference_cannot_reach_past_the_function_its_file_defines(tmp_path, monkeypatch, unique, function):
    site = tmp_path / "site"
    name = unique("reaching")
    marker = tmp_path / "MARKER"
    marker_module(site, name, marker, body="import os\nimport subprocess\n\ndef get(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LensExecutionRefused, match="dunder|not a function|defined in"):
        PythonLensExecutor().load(reference(f"{name}.py:{function}"), explicit=True)  # even when you ask


def test_preview_and_inspect_escape_keys_and_values_of_a_strangers_shard(tmp_path):
    import io
    import tarfile

    import msgpack

    shard = tmp_path / "stranger.tar"
    payload = msgpack.packb({"name\x1b[2J\u202e": "value\x1b]0;owned\x07", "label": "x\r\b"})
    with tarfile.open(shard, "w", format=tarfile.USTAR_FORMAT) as tar:
        member = tarfile.TarInfo("000000.msgpack")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    for command in ("preview", "inspect"):
        result = cli(command, str(shard))
        assert result.exit_code == 0, result.output
        assert no_raw_controls(result.output), repr(result.output)
        assert "name\\x1b[2J\\u202e" in result.output
