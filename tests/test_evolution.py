"""Schema evolution and trusted lens execution on the local federation, with nothing mocked.

Alice publishes versions 1.0.0 and 2.0.0 of ``com.example.reading``, a dataset
written with 1.0.0, a migration lens from 1.0.0 to 2.0.0 whose code lives in
a git checkout "installed" on this machine (on ``sys.path``), and a
``lensVerification`` of it. Bob, on this machine, loads the 1.0.0 dataset
into his class for 2.0.0 (generated with ``atdata codegen``). Trusting alice,
he gets migrated samples; not trusting her, the lens is refused with the
reason, and a marker file proves its module was never imported.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.atproto import Client, SessionStore, clear_identity_cache
from atdata_core.cli import cli
from atdata_core.errors import IncompatibleSchema, LensExecutionRefused, NoLensPath, NoMigrationPath
from atdata_core.plugins import reset_plugins
from atdata_core.publish import publish_dataset, publish_lens_verification, publish_schema
from atdata_core.records import CodeReference, LensRecord, write_record
from tests.lens_repo import forget_modules, git

SCHEMA_ID = "com.example.reading"
LENS = "science.alt.dataset.lens"
ORIGIN = "https://example.com/alice/reading-lenses.git"


@packable
class ReadingV1:
    """One thermometer reading."""

    celsius: float
    station: str


@packable
class ReadingV2:
    """One thermometer reading, in kelvin, with where the number came from."""

    kelvin: float
    station: str
    source: str = "measured"


@packable
class ReadingV3:
    kelvin: float
    station: str
    source: str
    quality: int


MIGRATE = '''\
"""Migrations of com.example.reading."""

import pathlib

from atdata_core import lens, packable

pathlib.Path({marker!r}).write_text("imported")


@packable
class Reading:
    celsius: float
    station: str


@packable
class ReadingK:
    kelvin: float
    station: str
    source: str = "measured"


@lens(register=False)
def celsius_to_kelvin(r: Reading) -> ReadingK:
    return ReadingK(kelvin=r.celsius + 273.0, station=r.station, source="migrated from 1.0.0")


@celsius_to_kelvin.putter
def celsius_to_kelvin_put(k: ReadingK, r: Reading) -> Reading:
    return Reading(celsius=k.kelvin - 273.0, station=k.station)
'''

READINGS = [ReadingV1(celsius=c, station=s) for c, s in ((20.5, "oslo"), (-3.25, "tromso"), (31.0, "rome"), (0.0, "x"))]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def bob_config(tmp_path, monkeypatch, pds_sandbox):
    """This process is bob's machine: his config folder, the sandbox's PLC directory, trusting nobody yet."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "bob-config"))
    for name in ("ATDATA_CONFIG", "ATDATA_ATPROTO_RESOLVER", "ATDATA_LENS_TRUSTED_DIDS", "ATDATA_LENS_PINNED_COMMITS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    work = tmp_path / "bob-work"
    work.mkdir()
    monkeypatch.chdir(work)
    clear_identity_cache()
    reset_plugins()
    yield
    clear_identity_cache()
    reset_plugins()


def login(make_account, name: str, tmp_path: Path):
    account = make_account(name)
    client = Client.login(account.handle, account.password, pds_url=account.pds_url,
                          store=SessionStore(tmp_path / f"{name}-sessions"))
    return account, client


def trust(monkeypatch, *dids: str) -> None:
    monkeypatch.setenv("ATDATA_LENS_TRUSTED_DIDS", ",".join(dids))
    reset_plugins()


class LensCheckout:
    """Alice's lens code: a git checkout on sys.path whose module leaves a marker file when imported."""

    def __init__(self, root: Path, marker: Path):
        self.package = f"reading_lenses_{uuid.uuid4().hex[:10]}"
        self.root, self.marker = root, marker
        (root / self.package).mkdir(parents=True)
        (root / self.package / "__init__.py").write_text("")
        (root / self.package / "migrate.py").write_text(MIGRATE.format(marker=str(marker)))
        git(root, "init", "-q", "-b", "main")
        git(root, "add", ".")
        git(root, "commit", "-q", "-m", "migrations")
        self.commit = git(root, "rev-parse", "HEAD")

    def ref(self, function: str) -> CodeReference:
        return CodeReference(repository=ORIGIN, commit=self.commit, path=f"{self.package}/migrate.py:{function}",
                             language="python")

    @property
    def imported(self) -> bool:
        return self.marker.exists() or f"{self.package}.migrate" in sys.modules


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    made = LensCheckout(tmp_path / "site", tmp_path / "IMPORTED")
    monkeypatch.syspath_prepend(str(made.root))
    yield made
    forget_modules(made.package)


def publish_migration_lens(client, checkout: LensCheckout, v1, v2) -> str:
    """A lens record naming the checkout's code (written as publish_lens would, without importing the code here)."""
    record = write_record(LensRecord(
        name="celsius_to_kelvin", source_schema=v1.uri, target_schema=v2.uri,
        getter_code=checkout.ref("celsius_to_kelvin"), putter_code=checkout.ref("celsius_to_kelvin_put"),
        description="1.0.0 -> 2.0.0: celsius becomes kelvin", source_schema_version="1.0.0",
        target_schema_version="2.0.0",
    ))
    uri, _ = client.create_record(LENS, record)
    return uri


@pytest.fixture
def story(make_account, tmp_path, shard_server, checkout):
    """Alice's schemas, dataset and migration lens (no verification yet: each test adds the one it needs)."""
    account, client = login(make_account, "alice", tmp_path)
    folder, base_url = shard_server
    v1 = publish_schema(client, ReadingV1, schema_id=SCHEMA_ID, version="1.0.0", description="Readings in celsius.")
    v2 = publish_schema(client, ReadingV2, schema_id=SCHEMA_ID, version="2.0.0", description="Readings in kelvin.")
    with ShardWriter(str(folder / "readings-%06d.tar"), maxcount=3) as sink:
        for reading in READINGS:
            sink.write(reading)
    shards = [(f"{base_url}/{Path(i.url).name}", i.sha256, i.count, i.size) for i in sink.shards]
    entry = publish_dataset(client, "readings", shards, schema=v1, description="written with 1.0.0")
    lens_uri = publish_migration_lens(client, checkout, v1, v2)
    return {"account": account, "client": client, "v1": v1, "v2": v2, "entry": entry, "lens": lens_uri,
            "ref": f"@{account.handle}/readings"}


@pytest.fixture
def bob(make_account, story):
    account = make_account("bob")
    Client.login(account.handle, account.password, pds_url=account.pds_url)  # saved in bob's config folder
    return account


@pytest.fixture
def bobs_v2_class(story, bob, tmp_path, monkeypatch):
    """Bob's class for 2.0.0: generated from alice's published record with `atdata codegen`, then imported."""
    folder = tmp_path / "bob-code"
    folder.mkdir()
    module = f"reading_v2_{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(
        cli, ["codegen", f"@{story['account'].handle}/{SCHEMA_ID}@2.0.0", "-o", str(folder / f"{module}.py")]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.syspath_prepend(str(folder))
    try:
        yield importlib.import_module(module).Reading
    finally:
        sys.modules.pop(module, None)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


# --------------------------------------------------------------------------- the story


def test_bob_trusting_alice_loads_her_1_0_0_dataset_as_2_0_0_samples(story, bob, bobs_v2_class, checkout, monkeypatch):
    publish_lens_verification(story["client"], story["lens"], samples=READINGS)  # alice vouches for her lens
    assert bobs_v2_class.__atdata_schema__ == {"id": SCHEMA_ID, "version": "2.0.0", "uri": story["v2"].uri}
    trust(monkeypatch, story["account"].did)

    readings = list(atdata_core.load(story["ref"], bobs_v2_class))
    assert all(type(r) is bobs_v2_class for r in readings)
    assert [(r.kelvin, r.station, r.source) for r in readings] == [
        (c.celsius + 273.0, c.station, "migrated from 1.0.0") for c in READINGS
    ]
    resolved = atdata_core.resolve(story["ref"], bobs_v2_class)
    assert resolved.migration.name == f"migrate {SCHEMA_ID} 1.0.0 -> 2.0.0"
    assert any(f"its author {story['account'].did} is in [lens] trusted_dids" in line
               for line in resolved.migration.provenance)


def test_with_alice_untrusted_the_lens_is_refused_with_the_reason_and_never_imported(
    story, bob, bobs_v2_class, checkout
):
    # Alice's verification, written without running anything on this machine (a code review).
    publish_lens_verification(story["client"], story["lens"], method="codeReview")
    assert not checkout.imported
    with pytest.raises(LensExecutionRefused) as caught:
        atdata_core.load(story["ref"], bobs_v2_class)
    message = str(caught.value)
    assert f"migrating {SCHEMA_ID} 1.0.0 -> 2.0.0 needs 1.0.0 -> 2.0.0" in message
    assert f"its author {story['account'].did} is not in [lens] trusted_dids" in message
    assert "you trust no DID" in message
    assert "nothing of it was imported" in message
    with pytest.raises(LensExecutionRefused, match="not in \\[lens\\] trusted_dids"):
        atdata_core.load_lens(story["lens"])
    assert not checkout.imported  # the module's import side effect never happened


def test_passing_the_lens_explicitly_runs_it_without_trusting_alice(story, bob, bobs_v2_class, checkout):
    readings = list(atdata_core.load(story["ref"], bobs_v2_class, lenses=[story["lens"]]))
    assert readings[0].kelvin == READINGS[0].celsius + 273.0
    assert checkout.imported


def test_a_verification_by_a_trusted_did_runs_a_lens_someone_else_published(
    story, bob, bobs_v2_class, checkout, make_account, tmp_path, monkeypatch
):
    carol, carols_client = login(make_account, "carol", tmp_path)
    carols_lens = publish_migration_lens(carols_client, checkout, story["v1"], story["v2"])
    publish_lens_verification(story["client"], carols_lens, samples=READINGS)  # alice ran the lens laws
    forget_modules(checkout.package)
    trust(monkeypatch, story["account"].did)  # bob trusts alice, not carol

    lens = atdata_core.load_lens(carols_lens)
    assert lens.provenance[-1].startswith(f"trust: a lensVerification by {story['account'].did} (automatedTest")
    verification = next(line for line in lens.provenance if line.startswith("trust:"))
    assert "covers this lens version and its code" in verification

    # Alice's own lens: she wrote it, bob trusts her. Carol's: alice verified it. A verification
    # by a DID bob does not trust counts for nothing.
    trust(monkeypatch, bob.did)
    forget_modules(checkout.package)
    with pytest.raises(LensExecutionRefused, match="no lensVerification from a DID you trust names this lens"):
        atdata_core.load_lens(carols_lens)


def test_a_missing_migration_path_names_both_versions(story, bob, monkeypatch):
    v3 = publish_schema(story["client"], ReadingV3, schema_id=SCHEMA_ID, version="3.0.0")
    from atdata_core.schema import generate_python

    namespace: dict = {}
    # dont_inherit: this file's `from __future__ import annotations` must not reach the generated module.
    exec(compile(generate_python(v3.record, uri=v3.uri), "<reading_v3>", "exec", dont_inherit=True), namespace)
    reading_v3 = namespace["Reading"]
    trust(monkeypatch, story["account"].did)
    with pytest.raises(NoMigrationPath) as caught:
        atdata_core.load(story["ref"], reading_v3)
    message = str(caught.value)
    assert f"no migration path from {SCHEMA_ID} 1.0.0 (the dataset's version) to 3.0.0 (the class's version)" in message
    assert "1.0.0 -> 2.0.0" in message  # the lens that exists is listed
    assert isinstance(caught.value, IncompatibleSchema) and isinstance(caught.value, NoLensPath)


def test_a_class_that_names_no_version_is_migrated_to_the_version_it_reads(story, bob, monkeypatch, checkout):
    trust(monkeypatch, story["account"].did)
    readings = list(atdata_core.load(story["ref"], ReadingV2))  # ReadingV2 carries no __atdata_schema__
    assert [r.kelvin for r in readings] == [c.celsius + 273.0 for c in READINGS]
    assert all(type(r) is ReadingV2 for r in readings)


def test_a_lens_of_your_own_between_generated_classes_migrates_without_any_trust(story, bob, tmp_path, monkeypatch):
    out = tmp_path / "readings_pkg"
    result = run("codegen", f"@{story['account'].handle}/{SCHEMA_ID}", "--all-versions", "-o", str(out))
    assert result.exit_code == 0, result.output
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        package = importlib.import_module("readings_pkg")
        old, new = package.ReadingV1_0_0, package.ReadingV2_0_0
        from atdata_core import LensGraph, lens

        graph = LensGraph()

        @lens(graph=graph)
        def upgrade(r: old) -> new:  # type: ignore[valid-type]
            return new(kelvin=r.celsius + 273.0, station=r.station, source="local")

        readings = list(atdata_core.load(story["ref"], new, lenses=[upgrade]))
        assert {r.source for r in readings} == {"local"} and readings[1].kelvin == 269.75
    finally:
        for name in [n for n in sys.modules if n == "readings_pkg" or n.startswith("readings_pkg.")]:
            del sys.modules[name]


# --------------------------------------------------------------------------- the command line


def test_schema_versions_lists_change_classes(story, bob):
    result = run("schema", "versions", f"@{story['account'].handle}/{SCHEMA_ID}")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(SCHEMA_ID)
    assert "1.0.0" in lines[1] and "first version" in lines[1]
    assert "2.0.0" in lines[2] and "major change" in lines[2]
    as_json = json.loads(run("schema", "versions", story["v2"].uri, "--json").output)
    assert [(v["version"], v["change"]) for v in as_json] == [("1.0.0", None), ("2.0.0", "major")]


def test_lens_commands_show_verify_and_trust(story, bob, checkout):
    handle, did = story["account"].handle, story["account"].did
    listed = run("lens", "list", handle)
    assert listed.exit_code == 0 and f"{SCHEMA_ID}@1.0.0 -> {SCHEMA_ID}@2.0.0" in listed.output

    shown = run("lens", "show", story["lens"])
    assert shown.exit_code == 0, shown.output
    assert f"would not run: its author {did} is not in [lens] trusted_dids" in shown.output
    assert run("lens", "verify", story["lens"]).exit_code == 1

    assert run("lens", "trust", f"@{handle}").exit_code == 0
    config = Path(bob_config_file()).read_text()
    assert f'trusted_dids = ["{did}"]' in config
    reset_plugins()
    assert "would run: its author" in run("lens", "show", story["lens"]).output
    verified = run("lens", "verify", story["lens"])
    assert verified.exit_code == 0 and "verified: its author" in verified.output
    assert did in run("lens", "trust").output
    assert not checkout.imported  # show and verify decide without importing

    assert run("lens", "trust", "--remove", did).exit_code == 0
    assert "trusted_dids = []" in Path(bob_config_file()).read_text()
    pinned = run("lens", "trust", story["lens"])
    assert pinned.exit_code == 0 and f"{ORIGIN}@{checkout.commit}" in Path(bob_config_file()).read_text()


def test_lens_verify_publish_runs_the_lens_laws_and_publishes(story, make_account, tmp_path, checkout, monkeypatch):
    # Bob's saved session publishes; the samples come from alice's dataset, loaded without a class.
    account = make_account("bob")
    Client.login(account.handle, account.password, pds_url=account.pds_url)
    result = run("lens", "verify", story["lens"], "--publish", "--samples", story["ref"], "-n", "3")
    assert result.exit_code == 0, result.output
    assert "obeys GetPut on 3 sample(s)" in result.output
    trust(monkeypatch, account.did)
    forget_modules(checkout.package)
    lens = atdata_core.load_lens(story["lens"])  # alice is not trusted: bob's own verification vouches
    assert lens.provenance[-1].startswith(f"trust: a lensVerification by {account.did}")


def bob_config_file() -> str:
    from atdata_core.config import user_config_path

    return str(user_config_path())


def test_codegen_takes_published_references(story, bob, tmp_path):
    out = tmp_path / "v1.py"
    assert run("codegen", story["v1"].uri, "-o", str(out)).exit_code == 0
    assert f"'uri': '{story['v1'].uri}'" in out.read_text()
    protos = tmp_path / "protos"
    assert run("codegen", f"@{story['account'].handle}/{SCHEMA_ID}", "--all-versions", "--lang", "proto",
               "-o", str(protos)).exit_code == 0
    assert sorted(p.name for p in (protos / "com" / "example" / "reading").iterdir()) == ["v1_0_0.proto", "v2_0_0.proto"]
