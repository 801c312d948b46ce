"""Lens trust: installed lens code runs only when the trust policy allows it, decided before any import.

The lens package here stands for one someone published and you installed: a
real git checkout on ``sys.path`` whose ``lenses.py`` leaves a marker file when
it is imported, so a test can prove that a refusal imported nothing.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest

from atdata_core.errors import LensExecutionRefused
from atdata_core.executors import PythonExecutorSettings, PythonLensExecutor, TrustPolicy, lens_code_hash
from atdata_core.executors._locate import function_source
from tests.lens_repo import ORIGIN, forget_modules, git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the git command is needed")

ALICE = "did:plc:alicealicealicealice"
BOB = "did:plc:bobbobbobbobbobbobbob"
MALLORY = "did:plc:mallorymallorymallory"

LENSES = '''\
import dataclasses
import pathlib

from atdata_core import lens

pathlib.Path({marker!r}).write_text("imported")


@dataclasses.dataclass
class Celsius:
    value: float


@dataclasses.dataclass
class Fahrenheit:
    value: float


@lens(register=False)
def to_fahrenheit(c: Celsius) -> Fahrenheit:
    return Fahrenheit(c.value * 9 / 5 + 32)


@to_fahrenheit.putter
def to_fahrenheit_put(f: Fahrenheit, c: Celsius) -> Celsius:
    return Celsius((f.value - 32) * 5 / 9)
'''


class MarkedRepo:
    def __init__(self, root: Path, package: str, marker: Path, commit: str | None):
        self.root, self.package, self.marker, self.commit = root, package, marker, commit

    @property
    def lenses_file(self) -> Path:
        return self.root / self.package / "lenses.py"

    def record(self, commit: str | None = None) -> dict:
        ref = {"repository": ORIGIN, "commit": commit or self.commit or "c" * 40, "language": "python"}
        return {
            "$type": "science.alt.dataset.lens",
            "name": "celsius_to_fahrenheit",
            "sourceSchema": f"at://{ALICE}/science.alt.dataset.schema/com.example.temp:1.0.0",
            "targetSchema": f"at://{ALICE}/science.alt.dataset.schema/com.example.temp:2.0.0",
            "getterCode": dict(ref, path=f"{self.package}/lenses.py:to_fahrenheit"),
            "putterCode": dict(ref, path=f"{self.package}/lenses.py:to_fahrenheit_put"),
            "createdAt": "2026-01-01T00:00:00.000Z",
        }

    @property
    def imported(self) -> bool:
        return self.marker.exists() or f"{self.package}.lenses" in sys.modules


def make_marked_repo(base: Path, marker: Path, *, use_git: bool = True) -> MarkedRepo:
    package = f"templens_{uuid.uuid4().hex[:10]}"
    (base / package).mkdir(parents=True)
    (base / package / "__init__.py").write_text("")
    (base / package / "lenses.py").write_text(LENSES.format(marker=str(marker)))
    commit = None
    if use_git:
        git(base, "init", "-q", "-b", "main")
        git(base, "add", ".")
        git(base, "commit", "-q", "-m", "lenses")
        commit = git(base, "rev-parse", "HEAD")
    return MarkedRepo(base, package, marker, commit)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    made = make_marked_repo(tmp_path / "checkout", tmp_path / "IMPORTED")
    monkeypatch.syspath_prepend(str(made.root))
    yield made
    forget_modules(made.package)


LENS_URI = f"at://{ALICE}/science.alt.dataset.lens/3lensrecord22"
LENS_CID = "bafyreilensrecordversionone"


def verification(repo: MarkedRepo, *, by: str = BOB, digest: str | None = None, lens: str = LENS_URI,
                 commit: str = LENS_CID, method: str = "automatedTest") -> tuple[str, dict]:
    executor = PythonLensExecutor()
    value = {
        "$type": "science.alt.dataset.lensVerification",
        "lens": lens,
        "lensCommit": commit,
        "verificationMethod": method,
        "codeHash": {"algorithm": "sha256", "digest": digest or executor.code_hash(repo.record())},
        "createdAt": "2026-01-02T00:00:00.000Z",
    }
    return f"at://{by}/science.alt.dataset.lensVerification/3verif{uuid.uuid4().hex[:6]}", value


def load(executor: PythonLensExecutor, repo: MarkedRepo, **kwargs):
    return executor.load_lens(repo.record(), uri=LENS_URI, cid=LENS_CID, **kwargs)


# ====================================================================== refusals come before any import


def test_an_untrusted_authors_installed_lens_is_refused_with_the_reason_and_nothing_is_imported(repo):
    executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={BOB}))
    with pytest.raises(LensExecutionRefused) as caught:
        load(executor, repo, author=MALLORY)
    message = str(caught.value)
    assert f"its author {MALLORY} is not in [lens] trusted_dids" in message
    assert "no lensVerification from a DID you trust names this lens" in message
    assert "nothing of it was imported" in message
    assert f"atdata lens trust {MALLORY}" in message and "trust=True" in message
    assert not repo.imported


def test_deciding_and_hashing_import_nothing(repo):
    executor = PythonLensExecutor()
    decision = executor.decide(repo.record(), author=MALLORY, uri=LENS_URI, cid=LENS_CID)
    assert not decision.allowed and "not in [lens] trusted_dids" in decision.reason
    assert len(executor.code_hash(repo.record())) == 64
    assert not repo.imported


def test_without_an_author_or_explicit_pass_nothing_runs(repo):
    with pytest.raises(LensExecutionRefused, match="the record's author is not known"):
        PythonLensExecutor().load_lens(repo.record())
    with pytest.raises(LensExecutionRefused, match="the record's author is not known"):
        PythonLensExecutor().load(repo.record()["getterCode"])
    assert not repo.imported


# ====================================================================== what allows it


def test_a_trusted_author_runs(repo):
    loaded = load(PythonLensExecutor(PythonExecutorSettings(trusted_dids={ALICE})), repo, author=ALICE)
    module = sys.modules[f"{repo.package}.lenses"]
    assert loaded.get(module.Celsius(100.0)).value == pytest.approx(212.0)
    assert loaded.provenance[-1] == f"trust: its author {ALICE} is in [lens] trusted_dids"
    assert repo.imported


def test_passing_the_lens_explicitly_runs_it(repo):
    loaded = load(PythonLensExecutor(), repo, author=MALLORY, explicit=True)
    assert loaded.provenance[-1] == "trust: you passed this lens explicitly"


def test_a_pinned_commit_runs_and_only_the_exact_commit(repo):
    pinned = PythonLensExecutor(PythonExecutorSettings(pinned_commits={f"{ORIGIN}@{repo.commit}"}))
    assert load(pinned, repo, author=MALLORY).provenance[-1] == "trust: its commit is in [lens] pinned_commits"
    forget_modules(repo.package)
    prefix = PythonLensExecutor(PythonExecutorSettings(pinned_commits={repo.commit[:10]}))
    with pytest.raises(LensExecutionRefused):
        load(prefix, repo, author=MALLORY)  # a prefix could be ground to match another commit


def test_a_verification_by_a_trusted_did_covering_the_record_version_and_code_runs_it(repo):
    executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={BOB}))
    uri, value = verification(repo)
    loaded = load(executor, repo, author=MALLORY, verifications=[(uri, value)])
    assert loaded.provenance[-1].startswith(f"trust: a lensVerification by {BOB} (automatedTest, {uri})")


def test_a_verification_naming_the_code_commit_instead_of_the_record_cid_counts(repo):
    executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={BOB}))
    uri, value = verification(repo, commit=repo.commit)
    assert load(executor, repo, author=MALLORY, verifications=[(uri, value)]).provenance[-1].startswith("trust: a lens")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"by": MALLORY}, f"its author {MALLORY} is not in [lens] trusted_dids"),
        ({"digest": "0" * 64}, "is not the installed code's sha256"),
        ({"lens": f"at://{ALICE}/science.alt.dataset.lens/3otherlens22"}, "it verifies another lens"),
        ({"commit": "bafyreianeditedversion"}, "it verified lens version bafyreianeditedv"),
    ],
    ids=["untrusted-verifier", "other-code", "other-lens", "other-version"],
)
def test_a_verification_that_does_not_cover_the_lens_is_refused_saying_why(repo, change, reason):
    executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={BOB}))
    uri, value = verification(repo, **change)
    with pytest.raises(LensExecutionRefused) as caught:
        load(executor, repo, author=MALLORY, verifications=[(uri, value)])
    assert reason in str(caught.value)
    assert not repo.imported


def test_a_verification_without_a_code_hash_vouches_for_nothing(repo):
    executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={BOB}))
    uri, value = verification(repo)
    del value["codeHash"]
    with pytest.raises(LensExecutionRefused, match="records no codeHash"):
        load(executor, repo, author=MALLORY, verifications=[(uri, value)])


def test_installed_code_that_changed_since_the_verification_is_refused(tmp_path, monkeypatch):
    """Outside a git checkout the commit cannot be checked; the code hash still catches an edited file."""
    marker = tmp_path / "IMPORTED"
    site = make_marked_repo(tmp_path / "site", marker, use_git=False)
    from atdata_core.lenses import _git

    if _git.checkout_root(site.root) is not None:
        pytest.skip("the temporary folder is inside a git checkout here")
    monkeypatch.syspath_prepend(str(site.root))
    try:
        executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={BOB}))
        uri, value = verification(site)
        site.lenses_file.write_text(site.lenses_file.read_text().replace("* 9 / 5 + 32", "* 9 / 5 + 33"))
        with pytest.raises(LensExecutionRefused, match="the installed getter or putter differs from the verified"):
            load(executor, site, author=MALLORY, verifications=[(uri, value)])
        assert not marker.exists()
    finally:
        forget_modules(site.package)


# ====================================================================== the code hash


def test_the_code_hash_covers_getter_and_putter_source_with_their_decorators(repo):
    getter = function_source(repo.lenses_file, "to_fahrenheit", "get")
    putter = function_source(repo.lenses_file, "to_fahrenheit_put", "put")
    assert getter.startswith("@lens(register=False)\ndef to_fahrenheit(c: Celsius)")
    assert putter.startswith("@to_fahrenheit.putter\ndef to_fahrenheit_put(")
    assert PythonLensExecutor().code_hash(repo.record()) == lens_code_hash(getter, putter)
    # the two halves are told apart: swapping them changes the hash
    assert lens_code_hash(getter, putter) != lens_code_hash(putter, getter)
    assert lens_code_hash("ab", "c") != lens_code_hash("a", "bc")


def test_function_source_reads_methods_and_same_named_putters(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "class Tools:\n    @staticmethod\n    def f(x):\n        return x\n\n"
        "@lens\ndef g(x):\n    return x\n\n@g.putter\ndef g(v, s):\n    return v\n\ng2 = g\n"
    )
    assert function_source(source, "Tools.f", "get") == "@staticmethod\ndef f(x):\n    return x\n"
    assert function_source(source, "g", "get").startswith("@lens\ndef g(x)")
    assert function_source(source, "g", "put").startswith("@g.putter\ndef g(v, s)")
    assert function_source(source, "g2", "get") is None  # bound by assignment: no source of its own


def test_trust_policy_decisions_compare_strings_only():
    policy = TrustPolicy(trusted_dids={BOB}, pinned_commits={f"{ORIGIN}@{'a' * 40}"})
    assert policy.decide(author=None, explicit=True).allowed
    assert policy.decide(author=BOB).allowed
    assert policy.decide(author=MALLORY, code=[(ORIGIN, "a" * 40), (ORIGIN.removesuffix(".git"), "A" * 40)]).allowed
    refused = policy.decide(author=MALLORY, code=[(ORIGIN, "a" * 40), (ORIGIN, "b" * 40)])
    assert not refused.allowed and MALLORY in refused.reason


# ====================================================================== atdata lens trust edits the user file


def test_lens_trust_edits_only_its_key_of_the_user_configuration(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from atdata_core.cli import cli
    from atdata_core.plugins import reset_plugins

    config = tmp_path / "config.toml"
    config.write_text(
        "# my settings\n[index]\ndefault = \"pds\"\n\n[lens]\n# reviewed by hand\ntrusted_dids = [\n"
        f"    \"{BOB}\",  # bob\n]\nrequire_verified_commit = true\n\n[http]\nretries = 3\n"
    )
    monkeypatch.setenv("ATDATA_CONFIG", str(config))
    monkeypatch.delenv("ATDATA_LENS_TRUSTED_DIDS", raising=False)
    reset_plugins()
    try:
        result = CliRunner().invoke(cli, ["lens", "trust", ALICE])
        assert result.exit_code == 0, result.output
        text = config.read_text()
        assert f'trusted_dids = ["{BOB}", "{ALICE}"]\n' in text
        for kept in ("# my settings", "[index]", "# reviewed by hand", "require_verified_commit = true", "retries = 3"):
            assert kept in text
        reset_plugins()
        listed = CliRunner().invoke(cli, ["lens", "trust"]).output
        assert ALICE in listed and BOB in listed and str(config) in listed
        assert CliRunner().invoke(cli, ["lens", "trust", "--remove", BOB]).exit_code == 0
        assert f'trusted_dids = ["{ALICE}"]' in config.read_text()
        missing = CliRunner().invoke(cli, ["lens", "trust", "--remove", BOB])
        assert missing.exit_code == 1 and "is not in [lens] trusted_dids" in missing.output
    finally:
        reset_plugins()


def test_lens_trust_adds_a_lens_section_to_a_file_without_one(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from atdata_core.cli import cli
    from atdata_core.plugins import reset_plugins

    config = tmp_path / "fresh" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "fresh-home"))
    monkeypatch.setenv("ATDATA_CONFIG", str(config))
    config.parent.mkdir()
    config.write_text('[index]\ndefault = "pds"')
    reset_plugins()
    try:
        assert CliRunner().invoke(cli, ["lens", "trust", ALICE]).exit_code == 0
        assert config.read_text() == f'[index]\ndefault = "pds"\n\n[lens]\ntrusted_dids = ["{ALICE}"]\n'
    finally:
        reset_plugins()
