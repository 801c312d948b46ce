"""Code references for lenses: derived from local functions, parsed back, and loaded by the executor."""

from __future__ import annotations

import shutil

import pytest

from atdata_core.errors import LensError
from atdata_core.executors import PythonLensExecutor
from atdata_core import lens
from atdata_core.lenses import CodeReference, code_reference, lens_code_references, parse_code_path
from atdata_core.records import LensRecord, to_record
from tests.lens_repo import ORIGIN, forget_modules, make_lens_repo

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="the git command is needed")


@pytest.fixture
def lens_repo(tmp_path, monkeypatch):
    repo = make_lens_repo(tmp_path / "checkout")
    monkeypatch.syspath_prepend(str(repo.root))
    yield repo
    forget_modules(repo.package)


def test_parse_code_path_reads_both_forms():
    parsed = parse_code_path("src/imaging/lenses.py:to_gray")
    assert parsed.module_candidates == ("src.imaging.lenses", "imaging.lenses", "lenses")
    assert parsed.function == "to_gray"
    assert parse_code_path("imaging/__init__.py:Lenses.gray").module_candidates == ("imaging",)
    assert parse_code_path("imaging/__init__.py:Lenses.gray").function == "Lenses.gray"
    dotted = parse_code_path("imaging.lenses:to_gray")
    assert (dotted.file, dotted.module_candidates) == (None, ("imaging.lenses",))
    for bad in ("imaging/lenses.py", "../x.py:f", "/abs/x.py:f", "my-pkg/x.py:f", "x.py:1f"):
        with pytest.raises(LensError):
            parse_code_path(bad)


@needs_git
def test_reference_of_a_lens_in_a_git_checkout(lens_repo):
    module = lens_repo.module()
    getter, putter = lens_code_references(module.to_feet)
    assert isinstance(getter, CodeReference)
    assert getter == CodeReference(
        repository=ORIGIN, commit=lens_repo.commit, path=f"{lens_repo.package}/lenses.py:to_feet",
        branch="main", language="python",
    )
    assert putter.path == f"{lens_repo.package}/lenses.py:to_feet_put"
    assert code_reference(module.double, repository="https://mirror.example/x").repository == "https://mirror.example/x"


@needs_git
def test_published_references_load_back_through_the_executor(lens_repo):
    module = lens_repo.module()
    getter, putter = lens_code_references(module.to_feet)
    record_object = LensRecord(
        name="to_feet",
        source_schema="at://did:plc:author/science.alt.dataset.schema/com.example.meters:1.0.0",
        target_schema="at://did:plc:author/science.alt.dataset.schema/com.example.feet:1.0.0",
        getter_code=getter,
        putter_code=putter,
    )
    record = to_record(record_object)
    assert record["getterCode"]["path"] == f"{lens_repo.package}/lenses.py:to_feet"
    loaded = PythonLensExecutor().load_lens(record, source_type=module.Meters, view_type=module.Feet, explicit=True)
    assert loaded.get(module.Meters(10.0)).value == pytest.approx(32.8084)
    assert loaded.put(module.Feet(32.8084), module.Meters(0.0)).value == pytest.approx(10.0)
    assert PythonLensExecutor().load(record["getterCode"], explicit=True) is module.to_feet.getter


@needs_git
def test_uncommitted_changes_are_refused_unless_allowed(lens_repo):
    module = lens_repo.module()
    lens_repo.lenses_file.write_text(lens_repo.lenses_file.read_text() + "\n# work in progress\n")
    with pytest.raises(LensError, match="has uncommitted changes"):
        code_reference(module.double)
    assert code_reference(module.double, allow_dirty=True).commit == lens_repo.commit


def test_outside_a_checkout_repository_and_commit_must_be_given(tmp_path, monkeypatch):
    repo = make_lens_repo(tmp_path / "plain", use_git=False)
    monkeypatch.syspath_prepend(str(repo.root))
    try:
        module = repo.module()
        from atdata_core.lenses import _git

        if _git.checkout_root(repo.root) is not None:
            pytest.skip("the temporary folder is inside a git checkout here")
        with pytest.raises(LensError, match="pass repository="):
            code_reference(module.double)
        with pytest.raises(LensError, match="pass commit="):
            code_reference(module.double, repository=ORIGIN)
        ref = code_reference(module.double, repository=ORIGIN, commit="d" * 40)
        assert ref.path == f"{repo.package}/lenses.py:double"
    finally:
        forget_modules(repo.package)


def test_local_functions_and_lambdas_cannot_be_referenced():
    @lens(register=False, source=int, view=str)
    def local(x):
        return str(x)

    with pytest.raises(LensError, match="module-level function"):
        code_reference(local)
    with pytest.raises(LensError, match="module-level function"):
        code_reference(lambda x: x)


def test_a_lens_without_putter_cannot_be_published():
    @lens(register=False, source=int, view=str)
    def one_way(x):
        return str(x)

    with pytest.raises(LensError, match="needs both getterCode and putterCode"):
        lens_code_references(one_way)
