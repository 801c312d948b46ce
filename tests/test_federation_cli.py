"""``atdata login / publish / list / schema / load`` against the sandbox PDS, shards served over loopback HTTP."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from atdata_core import ShardWriter
from atdata_core.atproto import SessionStore, clear_identity_cache
from atdata_core.cli import cli
from atdata_core.plugins import reset_plugins
from tests.lens_example import RGBImage

REPOSITORY = "https://example.com/atdata-core-lenses"


@pytest.fixture(autouse=True)
def config(tmp_path, monkeypatch, pds_sandbox):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ATDATA_CONFIG", raising=False)
    monkeypatch.delenv("ATDATA_PASSWORD", raising=False)
    monkeypatch.delenv("ATDATA_ATPROTO_RESOLVER", raising=False)
    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "1")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    # The repository root stays importable for MODULE:CLASS arguments.
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    clear_identity_cache()
    reset_plugins()
    yield
    clear_identity_cache()
    reset_plugins()


def run(*args: str, input: str | None = None, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), input=input)
    if ok:
        assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def alice(make_account, monkeypatch):
    account = make_account("alice")
    monkeypatch.setenv("ATDATA_PASSWORD", account.password)
    run("login", account.handle, "--pds", account.pds_url)
    monkeypatch.delenv("ATDATA_PASSWORD")
    return account


def test_login_saves_a_private_session(make_account, tmp_path, monkeypatch):
    account = make_account("carol")
    monkeypatch.setenv("ATDATA_PASSWORD", account.password)
    result = run("login", account.handle, "--pds", account.pds_url)
    assert account.did in result.output
    saved = SessionStore().path_for(account.did)
    assert saved.is_file() and str(tmp_path / "config") in str(saved)
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    assert SessionStore().load().did == account.did
    assert "logged out" in run("logout").output
    assert not saved.exists()
    assert "no saved session" in run("logout").output


def test_login_asks_for_the_password_and_fails_cleanly_on_a_wrong_one(make_account):
    account = make_account("dave")
    # found through the PLC directory, no --pds; the password typed at the prompt
    assert account.did in run("login", account.did, input=account.password + "\n").output
    wrong = run("login", account.handle, "--pds", account.pds_url, "--password", "not-it", ok=False)
    assert wrong.exit_code == 1
    assert "error:" in wrong.output and "failed" in wrong.output


def test_publish_list_show_and_load(alice, shard_server):
    folder, base = shard_server
    rng = np.random.default_rng(3)
    with ShardWriter(str(folder / "rgb-%06d.tar"), maxcount=2) as sink:
        for i in range(5):
            sink.write(RGBImage(pixels=rng.integers(0, 255, (2, 3, 3), dtype=np.uint8), label=f"img-{i}"))

    schema_uri = run("publish", "schema", "tests.lens_example:RGBImage", "--id", "com.example.rgb",
                     "--version", "1.0.0", "--tag", "vision").output.strip().splitlines()[-1]
    assert schema_uri == f"at://{alice.did}/science.alt.dataset.schema/com.example.rgb:1.0.0"
    red_uri = run("publish", "schema", "tests.lens_example:RedChannel", "--id", "com.example.red",
                  "--version", "1.0.0").output.strip().splitlines()[-1]

    out = run("publish", "dataset", "tiny", f"{base}/rgb-{{000000..000002}}.tar", "--schema", schema_uri,
              "--tag", "vision", "--description", "five tiny images").output
    assert "3 shard(s), 5 samples" in out
    entry_uri = out.strip().splitlines()[-1]
    assert entry_uri.startswith(f"at://{alice.did}/science.alt.dataset.entry/")

    listed = json.loads(run("list", alice.handle, "--json").output)
    assert [r["uri"] for r in listed] == [entry_uri]
    storage = listed[0]["value"]["storage"]["shards"]
    assert [s["checksum"]["digest"] for s in storage] == [info.sha256 for info in sink.shards]
    assert listed[0]["value"]["size"] == {"samples": 5, "bytes": sum(i.size for i in sink.shards), "shards": 3}
    assert "tiny  5 samples, 3 shards" in run("list", alice.handle, "--tag", "vision").output

    lens_uri = run("publish", "lens", "tests.lens_example:red_channel", "--source", schema_uri, "--target", red_uri,
                   "--repository", REPOSITORY).output.strip()
    assert "/science.alt.dataset.lens/" in lens_uri
    label_uri = run("publish", "label", "tiny", entry_uri, "--version", "v1").output.strip()
    assert f"v1 -> {entry_uri}  {label_uri}" in run("list", alice.did, "--kind", "labels").output

    shown = run("schema", "show", schema_uri).output
    record = json.loads(shown.split("\n", 1)[1])
    assert record["name"] == "com.example.rgb" and set(record["schema"]["properties"]) == {"pixels", "label"}
    python = run("schema", "show", f"@{alice.handle}/com.example.rgb", "--python").output
    namespace: dict = {}
    # dont_inherit: this file's `from __future__ import annotations` must not reach the generated module
    # (string annotations in a namespace that is no module hide its ClassVar from dataclasses).
    exec(compile(python, "generated.py", "exec", dont_inherit=True), namespace)
    assert "Rgb" in namespace

    for ref in (entry_uri, f"@{alice.handle}/tiny", f"@{alice.handle}/tiny@v1"):
        loaded = run("load", ref, "-n", "2").output
        assert f"dataset  tiny  {entry_uri}" in loaded
        assert f"schema   com.example.rgb 1.0.0  {schema_uri}" in loaded
        assert "samples  5" in loaded
        assert "sample 2" in loaded and "sample 3" not in loaded
        assert "label: 'img-1'" in loaded
    preview = run("preview", f"@{alice.handle}/tiny", "-n", "1").output
    assert "label: 'img-0'" in preview

    # a shard changed after publishing: load fails with exit 1, naming the shard
    victim = folder / "rgb-000000.tar"
    data = bytearray(victim.read_bytes())
    data[-1500] ^= 0x01
    victim.write_bytes(bytes(data))
    failed = run("load", entry_uri, "-n", "5", ok=False)
    assert failed.exit_code == 1
    assert f"{base}/rgb-000000.tar" in failed.output and "sha256 mismatch" in failed.output


def test_schema_diff_classifies_the_change(alice, tmp_path, monkeypatch):
    module = tmp_path / "cli_schemas.py"
    module.write_text(
        "from atdata_core import packable\n\n"
        "@packable\nclass V1:\n    label: str\n\n"
        "@packable\nclass V2:\n    label: str\n    caption: str | None = None\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    old = run("publish", "schema", "cli_schemas:V1", "--id", "com.example.cap", "--version", "1.0.0").output.strip()
    new = run("publish", "schema", "cli_schemas:V2", "--id", "com.example.cap", "--version", "1.1.0").output.strip()
    diff = run("schema", "diff", old, new).output
    assert diff.splitlines()[0] == "1.0.0 -> 1.1.0: minor change"
    assert "caption" in diff
    refused = run("publish", "schema", "cli_schemas:V1", "--id", "com.example.cap", "--version", "1.1.0", ok=False)
    assert refused.exit_code == 1 and "already published" in refused.output


def test_publishing_without_a_login_says_so(tmp_path):
    result = run("publish", "label", "tiny", "at://did:plc:abcdefghijklmnopqrstuvwx/science.alt.dataset.entry/3kabc",
                 ok=False)
    assert result.exit_code == 1
    assert "log in" in result.output


def test_bad_references_are_usage_errors():
    result = run("load", "not-a-reference", ok=False)
    assert result.exit_code == 1
    assert "@<handle>/<dataset name>" in result.output
