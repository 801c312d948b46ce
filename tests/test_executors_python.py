"""The built-in Python lens executor: it runs installed code whose reference matches, and refuses the rest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from atdata_core.config import Config
from atdata_core.errors import ConfigError, LensExecutionRefused
from atdata_core.executors import PythonExecutorSettings, PythonLensExecutor, TrustPolicy
from atdata_core.lenses import Lens, LensGraph, _git, check_lens_laws
from atdata_core.plugins.conformance import LensExecutorConformance
from tests.lens_repo import ORIGIN, forget_modules, git, make_lens_repo

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the git command is needed")


@pytest.fixture
def lens_repo(tmp_path, monkeypatch):
    repo = make_lens_repo(tmp_path / "checkout")
    monkeypatch.syspath_prepend(str(repo.root))
    yield repo
    forget_modules(repo.package)


@pytest.fixture
def plain_install(tmp_path, monkeypatch):
    """The same package in a folder that is not a git checkout (like a wheel install)."""
    repo = make_lens_repo(tmp_path / "site", use_git=False)
    if _git.checkout_root(repo.root) is not None:
        pytest.skip("the temporary folder is inside a git checkout here")
    monkeypatch.syspath_prepend(str(repo.root))
    yield repo
    forget_modules(repo.package)


# ---------------------------------------------------------------------- loading


def test_loads_a_lens_record_whose_code_is_installed_at_the_pinned_commit(lens_repo):
    module = lens_repo.module()
    loaded = PythonLensExecutor().load_lens(lens_repo.record(), source_type=module.Meters, view_type=module.Feet, explicit=True)
    assert isinstance(loaded, Lens)
    assert (loaded.source, loaded.view, loaded.name) == (module.Meters, module.Feet, "meters_to_feet")
    assert loaded.get(module.Meters(1.0)).value == pytest.approx(3.28084)
    assert loaded.put(module.Feet(3.28084), module.Meters(0.0)).value == pytest.approx(1.0)
    assert "identical to commit" in loaded.provenance[0]
    assert loaded.provenance[1].startswith("putter:")


def test_loaded_lens_takes_its_types_from_the_installed_lens_when_not_given(lens_repo):
    module = lens_repo.module()
    loaded = PythonLensExecutor().load_lens(lens_repo.record(), explicit=True)
    assert (loaded.source, loaded.view) == (module.Meters, module.Feet)
    graph = LensGraph([loaded])
    assert graph.find_lens(module.Meters, module.Feet) is loaded


def test_a_later_commit_that_leaves_the_file_alone_still_matches(lens_repo):
    first = lens_repo.commit
    (lens_repo.root / "README.md").write_text("more\n")
    git(lens_repo.root, "add", "README.md")
    git(lens_repo.root, "commit", "-q", "-m", "docs")
    loaded = PythonLensExecutor().load_lens(lens_repo.record(commit=first), explicit=True)
    assert loaded.get(lens_repo.module().Meters(2.0)).value == pytest.approx(6.56168)


def test_an_abbreviated_commit_is_accepted(lens_repo):
    loaded = PythonLensExecutor().load_lens(lens_repo.record(commit=lens_repo.commit[:10]), explicit=True)
    assert "identical to commit" in loaded.provenance[0]


def test_a_single_reference_loads_the_named_function(lens_repo):
    executor = PythonLensExecutor()
    double = executor.load(lens_repo.ref("double"), explicit=True)
    assert double(21) == 42
    module = lens_repo.module()
    # a name bound to a @lens object: the getter, or the putter when the name is the putter's
    assert executor.load(lens_repo.ref("to_feet"), explicit=True) is module.to_feet.getter
    assert executor.load(lens_repo.ref("to_feet_put"), explicit=True) is module.to_feet.putter_function


def test_dotted_module_form_of_other_clients_is_read(lens_repo):
    ref = dict(lens_repo.ref("double"), path=f"{lens_repo.package}.lenses:double")
    assert PythonLensExecutor().load(ref, explicit=True)(4) == 8


def test_src_layout_paths_find_the_module_by_its_file(tmp_path, monkeypatch):
    repo = make_lens_repo(tmp_path / "proj" / "src")
    # make the repository's top one level up, as in a src/ layout
    shutil.move(str(repo.root / ".git"), str(tmp_path / "proj" / ".git"))
    git(tmp_path / "proj", "add", "-A")
    git(tmp_path / "proj", "commit", "-q", "-m", "src layout")
    commit = git(tmp_path / "proj", "rev-parse", "HEAD")
    monkeypatch.syspath_prepend(str(repo.root))
    try:
        ref = {"repository": ORIGIN, "commit": commit, "path": f"src/{repo.package}/lenses.py:double"}
        assert PythonLensExecutor().load(ref, explicit=True)(5) == 10
    finally:
        forget_modules(repo.package)


def test_loads_the_example_lens_of_this_repository_at_its_last_commit(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    # The repository is on sys.path (pytest's pythonpath); run from elsewhere, it is not the working directory.
    monkeypatch.chdir(tmp_path)
    relpath = "tests/lens_example.py"
    if _git.checkout_root(root) is None or _git.is_dirty(root, relpath):
        pytest.skip("needs tests/lens_example.py committed in a git checkout")
    commit = _git.git(root, "log", "-1", "--format=%H", "--", relpath)
    from tests import lens_example

    record = {
        "name": "red_channel",
        "getterCode": {"repository": ORIGIN, "commit": commit, "path": f"{relpath}:red_channel"},
        "putterCode": {"repository": ORIGIN, "commit": commit, "path": f"{relpath}:red_channel_put"},
    }
    loaded = PythonLensExecutor().load_lens(
        record, source_type=lens_example.RGBImage, view_type=lens_example.RedChannel, explicit=True,
    )
    rng = np.random.default_rng(1)
    images = [lens_example.RGBImage(rng.integers(0, 255, (3, 3, 3), dtype=np.uint8), f"img{i}") for i in range(3)]
    assert check_lens_laws(loaded, images).put_get == 3
    plain = {
        "name": "label",
        "getterCode": {"repository": ORIGIN, "commit": commit, "path": f"{relpath}:label_of"},
        "putterCode": {"repository": ORIGIN, "commit": commit, "path": f"{relpath}:label_put"},
    }
    label = PythonLensExecutor().load_lens(plain, source_type=lens_example.RGBImage, view_type=str, explicit=True)
    assert label.get(images[0]) == "img0"


# ---------------------------------------------------------------------- refusals


def test_refuses_a_module_that_is_not_installed_and_says_how_to_install_it(lens_repo):
    ref = {"repository": ORIGIN, "commit": "a" * 40, "path": "nowhere_pkg/lenses.py:convert"}
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor().load(ref)
    message = str(caught.value)
    assert "nowhere_pkg/lenses.py:convert" in message
    assert "module nowhere_pkg.lenses (not installed)" in message
    assert f"pip install 'git+{ORIGIN}@{'a' * 40}'" in message
    assert "never downloads code" in message and "[lens] trusted_dids" in message


def test_trusted_and_pinned_remote_code_is_still_refused_because_fetching_is_not_implemented():
    commit = "b" * 40
    settings = PythonExecutorSettings(trusted_dids={"did:plc:author"}, pinned_commits={f"{ORIGIN}@{commit}"})
    ref = {"repository": ORIGIN, "commit": commit, "path": "nowhere_pkg/lenses.py:convert"}
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor(settings).load(ref, author="did:plc:author")
    assert "trust policy would allow this code" in str(caught.value)
    assert "not implemented" in str(caught.value)
    with pytest.raises(LensExecutionRefused, match="author did:plc:stranger is not in trusted_dids"):
        PythonLensExecutor(settings).load(ref, author="did:plc:stranger")


def test_trust_policy_compares_repositories_and_commits_loosely():
    policy = TrustPolicy(trusted_dids={"did:plc:a"}, pinned_commits={"https://x.org/r@abcdef1"})
    assert policy.is_trusted("did:plc:a")
    assert policy.is_pinned("https://x.org/r.git", "ABCDEF1")
    assert not policy.allows_remote("did:plc:b", "https://x.org/r", "abcdef1")


def test_the_lens_section_of_the_configuration_reaches_the_registry_built_executor(monkeypatch):
    from atdata_core.plugins import lens_executor, reset_plugins

    monkeypatch.setenv("ATDATA_LENS_TRUSTED_DIDS", "did:plc:a, did:web:lenses.example")
    monkeypatch.setenv("ATDATA_LENS_PINNED_COMMITS", "https://x.org/r@abcdef1")
    monkeypatch.setenv("ATDATA_LENS_REQUIRE_VERIFIED_COMMIT", "true")
    reset_plugins()
    try:
        executor = lens_executor(language="python")
        assert executor.settings == PythonExecutorSettings(
            trusted_dids={"did:plc:a", "did:web:lenses.example"},
            pinned_commits={"https://x.org/r@abcdef1"},
            require_verified_commit=True,
        )
        assert executor.policy.allows_remote("did:plc:a", "https://x.org/r", "abcdef1")
    finally:
        reset_plugins()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"trusted_dids": ["alice.example.com"]}, "trusted_dids lists 'alice.example.com', which is not a DID"),
        ({"pinned_commits": ["https://x.org/r@main"]}, "pinned_commits lists 'https://x.org/r@main'"),
        ({"require_verified_commit": "yes"}, "require_verified_commit"),
    ],
)
def test_settings_refuse_values_that_cannot_be_meant(settings, expected):
    with pytest.raises((ConfigError, TypeError), match=expected):
        PythonExecutorSettings(**settings)


def test_the_executor_takes_settings_not_configuration():
    with pytest.raises(TypeError, match="takes PythonExecutorSettings"):
        PythonLensExecutor(Config({"lens": {"require_verified_commit": True}}))


def test_refuses_a_function_the_installed_module_does_not_have(lens_repo):
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor().load(lens_repo.ref("to_meters"))
    message = str(caught.value)
    assert f"{lens_repo.package}.lenses is installed" in message
    assert "has no to_meters; it defines double, to_feet" in message


def test_refuses_a_function_defined_in_another_file(lens_repo):
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor().load(lens_repo.ref("borrowed"), explicit=True)
    assert "defined in" in str(caught.value) and "helpers.py" in str(caught.value)


def test_refuses_a_name_that_is_not_a_function(lens_repo):
    with pytest.raises(LensExecutionRefused, match="is a type, not a function"):
        PythonLensExecutor().load(lens_repo.ref("Meters"), explicit=True)


def test_refuses_a_file_changed_since_the_pinned_commit(lens_repo):
    lens_repo.lenses_file.write_text(lens_repo.lenses_file.read_text() + "\n# local edit\n")
    with pytest.raises(LensExecutionRefused) as caught:
        PythonLensExecutor().load_lens(lens_repo.record())
    message = str(caught.value)
    assert "differs from that file at commit" in message
    assert lens_repo.commit[:12] in message


def test_refuses_a_commit_the_checkout_does_not_have(lens_repo):
    with pytest.raises(LensExecutionRefused, match="which does not have commit 1234567"):
        PythonLensExecutor().load(lens_repo.ref("double", commit="1234567" + "0" * 33))


def test_refuses_when_the_commit_has_no_such_file(lens_repo):
    first = lens_repo.commit
    extra = lens_repo.root / lens_repo.package / "extra.py"
    extra.write_text("def late(x):\n    return x\n")
    git(lens_repo.root, "add", ".")
    git(lens_repo.root, "commit", "-q", "-m", "extra")
    ref = {"repository": ORIGIN, "commit": first, "path": f"{lens_repo.package}/extra.py:late"}
    with pytest.raises(LensExecutionRefused, match="has no file"):
        PythonLensExecutor().load(ref)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"language": "rust"}, "runs Python only"),
        ({"commit": "--output=/tmp/x"}, "not a hexadecimal commit hash"),
        ({"path": "../../etc/lenses.py:f"}, "not a path of importable module names"),
        ({"path": "pkg/lenses.py"}, "should look like 'module/file.py:function'"),
    ],
)
def test_refuses_malformed_or_foreign_references(lens_repo, change, expected):
    with pytest.raises(LensExecutionRefused, match=expected):
        PythonLensExecutor().load(dict(lens_repo.ref("double"), **change))


def test_a_record_level_language_is_honoured(lens_repo):
    record = lens_repo.record()
    record["language"] = "javascript"
    for code in (record["getterCode"], record["putterCode"]):
        del code["language"]
    with pytest.raises(LensExecutionRefused, match="'javascript'"):
        PythonLensExecutor().load_lens(record)


def test_unverifiable_install_runs_by_default_and_is_refused_when_verification_is_required(plain_install):
    ref = plain_install.ref("double", commit="c" * 40)
    assert PythonLensExecutor().load(ref, explicit=True)(3) == 6
    loaded = PythonLensExecutor().load_lens(plain_install.record(commit="c" * 40), explicit=True)
    assert "not verifiable" in loaded.provenance[0]
    with pytest.raises(LensExecutionRefused, match="require_verified_commit is true"):
        PythonLensExecutor(PythonExecutorSettings(require_verified_commit=True)).load(ref)


# ---------------------------------------------------------------------- the conformance suite


class TestPythonLensExecutorConformance(LensExecutorConformance):
    @pytest.fixture
    def lens_executor(self, trusted_author):
        return PythonLensExecutor(PythonExecutorSettings(trusted_dids={trusted_author}))

    @pytest.fixture
    def trusted_author(self):
        return "did:plc:conformance-trusted"

    @pytest.fixture
    def runnable_code(self, lens_repo):
        return lens_repo.ref("double"), (21,), 42

    @pytest.fixture
    def refused_code(self, lens_repo):
        # installed, but its file changed after the pinned commit (lenses.py, which runs, is untouched)
        helpers = lens_repo.root / lens_repo.package / "helpers.py"
        helpers.write_text(helpers.read_text() + "\n# edited\n")
        return lens_repo.ref("borrowed", file="helpers.py")

    @pytest.fixture
    def runnable_lens(self, lens_repo):
        module = lens_repo.module()
        return lens_repo.record(), module.Meters(1.0), module.Feet(1.0 * 3.28084)


# ---------------------------------------------------------------------- through the plugin registry


def test_the_executor_is_built_by_the_registry_from_its_descriptor(lens_repo):
    from atdata_core.plugins import LensExecutorSpec, hookimpl, lens_executor, plugin_registered

    def strict_executor(config):
        # a factory turns configuration into the executor's settings
        return PythonLensExecutor(PythonExecutorSettings(require_verified_commit=True))

    class ExecutorPlugin:
        @hookimpl
        def atdata_lens_executors(self):
            return [LensExecutorSpec(name="python-under-test", factory=strict_executor)]

    with plugin_registered(ExecutorPlugin(), name="python-executor-test"):
        executor = lens_executor("python-under-test")
    assert isinstance(executor, PythonLensExecutor) and executor.require_verified_commit
    assert executor.load(lens_repo.ref("double"), explicit=True)(2) == 4
    with pytest.raises(LensExecutionRefused, match="pins no commit and \\[lens\\] require_verified_commit is true"):
        executor.load(lens_repo.ref("double", commit=None) | {"commit": ""})


def test_the_builtin_plugin_provides_it_for_python_code(lens_repo):
    from atdata_core.plugins import lens_executor

    executor = lens_executor(language="python")
    assert isinstance(executor, PythonLensExecutor)
    assert executor.load_lens(lens_repo.record(), explicit=True).get(lens_repo.module().Meters(1.0)).value == pytest.approx(3.28084)


# ---------------------------------------------------------------------- deciding before importing


def test_a_package_init_changed_since_the_commit_is_refused_before_it_runs(lens_repo, tmp_path):
    marker = tmp_path / "MARKER"
    init = lens_repo.root / lens_repo.package / "__init__.py"
    init.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(LensExecutionRefused, match="differs from that file at commit"):
        PythonLensExecutor().load_lens(lens_repo.record())
    assert not marker.exists()


def _vcs_install(site: Path, package: str, commit: str) -> None:
    """Record ``package`` (already written under ``site``) as installed by pip from a VCS URL at ``commit``."""
    import json

    dist_info = site / f"{package}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    files = [p.relative_to(site).as_posix() for p in (site / package).rglob("*.py")]
    files += [f"{dist_info.name}/{name}" for name in ("METADATA", "RECORD", "direct_url.json")]
    (dist_info / "RECORD").write_text("".join(f"{name},,\n" for name in files))
    (dist_info / "direct_url.json").write_text(
        json.dumps({"url": ORIGIN, "vcs_info": {"vcs": "git", "commit_id": commit}})
    )


def test_a_vcs_install_is_verified_by_the_distribution_that_installed_the_file(tmp_path, monkeypatch):
    commit = "d" * 40
    repo = make_lens_repo(tmp_path / "site", use_git=False)
    if _git.checkout_root(repo.root) is not None:
        pytest.skip("the temporary folder is inside a git checkout here")
    _vcs_install(repo.root, repo.package, commit)
    monkeypatch.syspath_prepend(str(repo.root))
    strict = PythonExecutorSettings(require_verified_commit=True)
    try:
        loaded = PythonLensExecutor(strict).load_lens(repo.record(commit=commit), explicit=True)
        assert f"installed from {ORIGIN} at commit {commit[:12]}" in loaded.provenance[0]
        with pytest.raises(LensExecutionRefused, match=f"at commit {commit[:12]}, not eeeeeeeeeeee"):
            PythonLensExecutor(strict).load(repo.ref("double", commit="e" * 40))
    finally:
        forget_modules(repo.package)

    # A plain copy of the same package earlier on sys.path is not the distribution's code, whatever its name.
    copy_root = tmp_path / "copy"
    shutil.copytree(repo.root / repo.package, copy_root / repo.package)
    monkeypatch.syspath_prepend(str(copy_root))
    try:
        with pytest.raises(LensExecutionRefused, match="whose commit cannot be checked"):
            PythonLensExecutor(strict).load(repo.ref("double", commit=commit))
    finally:
        forget_modules(repo.package)
