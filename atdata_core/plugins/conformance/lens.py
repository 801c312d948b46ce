"""The lens executor conformance suite."""

from __future__ import annotations

from typing import Any

import pytest

from atdata_core.errors import LensExecutionRefused


def _lens_class() -> type:
    from atdata_core import Lens

    return Lens


class LensExecutorConformance:
    """Checks a :class:`~atdata_core.plugins.LensExecutor` against its contract.

    Fixtures to provide:

    ``lens_executor``
        The executor under test.
    ``runnable_code``
        ``(code_reference, args, expected)``: a reference the executor must run,
        and a call of the loaded function with ``args`` that returns ``expected``.
    ``refused_code``
        A well-formed reference the executor must refuse (not available locally,
        not trusted, or a commit that does not match).
    ``runnable_lens`` (optional)
        ``(lens_record, source, expected_view)``: a lens record whose getter
        maps ``source`` to ``expected_view``. Defaults to a record whose
        ``getterCode`` is ``runnable_code`` (which must then take one argument).
    ``trusted_author`` (optional)
        A DID the ``lens_executor``'s trust policy trusts: code it published
        runs without being passed explicitly. Without it, that check is skipped.

    Runnable code runs when passed explicitly (``explicit=True``); the same
    code published by an author nobody trusts is refused (DESIGN D3).

    Class attribute: ``language`` (default ``"python"``), a language it runs.
    """

    language: str = "python"

    @pytest.fixture
    def lens_executor(self) -> Any:
        pytest.fail("provide a `lens_executor` fixture returning the executor under test")

    @pytest.fixture
    def runnable_code(self) -> tuple[dict[str, Any], tuple[Any, ...], Any]:
        pytest.fail("provide a `runnable_code` fixture: (code reference, args, expected result)")

    @pytest.fixture
    def refused_code(self) -> dict[str, Any]:
        pytest.fail("provide a `refused_code` fixture: a reference the executor must refuse")

    @pytest.fixture
    def runnable_lens(self, runnable_code) -> tuple[dict[str, Any], Any, Any]:
        code, args, expected = runnable_code
        if len(args) != 1:
            pytest.fail("runnable_code takes several arguments: provide a `runnable_lens` fixture")
        return {"name": "conformance_lens", "getterCode": dict(code)}, args[0], expected

    # ------------------------------------------------------------------ load(code)

    @pytest.fixture
    def trusted_author(self) -> str | None:
        return None

    def test_runs_a_runnable_reference_passed_explicitly(self, lens_executor, runnable_code):
        code, args, expected = runnable_code
        function = lens_executor.load(code, explicit=True)
        assert callable(function)
        assert function(*args) == expected

    def test_load_takes_the_author(self, lens_executor, runnable_code):
        code, args, expected = runnable_code
        assert lens_executor.load(dict(code), author=None, explicit=True)(*args) == expected

    def test_refuses_runnable_code_of_an_untrusted_author(self, lens_executor, runnable_code):
        code, _, _ = runnable_code
        with pytest.raises(LensExecutionRefused) as caught:
            lens_executor.load(dict(code), author="did:plc:conformance-untrusted")
        assert code["path"] in str(caught.value)
        with pytest.raises(LensExecutionRefused):
            lens_executor.load(dict(code))  # no author known, not passed explicitly

    def test_runs_code_of_a_trusted_author(self, lens_executor, runnable_code, trusted_author):
        if trusted_author is None:
            pytest.skip("no trusted_author fixture: the executor under test trusts no DID")
        code, args, expected = runnable_code
        assert lens_executor.load(dict(code), author=trusted_author)(*args) == expected

    def test_loading_twice_gives_the_same_behaviour(self, lens_executor, runnable_code):
        code, args, expected = runnable_code
        first = lens_executor.load(dict(code), explicit=True)
        assert first(*args) == lens_executor.load(dict(code), explicit=True)(*args) == expected

    def test_refuses_and_names_the_reference(self, lens_executor, refused_code):
        with pytest.raises(LensExecutionRefused) as caught:
            lens_executor.load(refused_code, explicit=True)
        assert refused_code["path"] in str(caught.value)

    @pytest.mark.parametrize(
        "broken",
        [
            {},
            {"repository": "https://example.com/repo", "commit": "0" * 40},
            {"repository": "https://example.com/repo", "commit": "0" * 40, "path": "lenses/convert.py"},
        ],
        ids=["empty", "no-path", "path-without-function"],
    )
    def test_refuses_malformed_references(self, lens_executor, runnable_code, broken):
        with pytest.raises(LensExecutionRefused):
            lens_executor.load(broken, explicit=True)

    def test_refuses_another_language(self, lens_executor, runnable_code):
        code = dict(runnable_code[0], language="cobol-conformance-check")
        with pytest.raises(LensExecutionRefused):
            lens_executor.load(code, explicit=True)

    # ------------------------------------------------------------------ load_lens(record)

    def test_load_lens_gives_a_lens_between_the_types_asked_for(self, lens_executor, runnable_lens):
        record, source, expected = runnable_lens
        loaded = lens_executor.load_lens(
            record, source_type=type(source), view_type=type(expected), author="did:plc:conformance", explicit=True
        )
        assert isinstance(loaded, _lens_class())
        assert (loaded.source, loaded.view) == (type(source), type(expected))
        assert loaded.get(source) == expected
        assert loaded(source) == expected

    def test_load_lens_refuses_a_record_of_an_untrusted_author(self, lens_executor, runnable_lens):
        record, source, expected = runnable_lens
        with pytest.raises(LensExecutionRefused):
            lens_executor.load_lens(record, author="did:plc:conformance-untrusted", verifications=())

    def test_load_lens_refuses_a_record_whose_getter_is_refused(self, lens_executor, runnable_lens, refused_code):
        record = dict(runnable_lens[0], getterCode=refused_code)
        with pytest.raises(LensExecutionRefused) as caught:
            lens_executor.load_lens(record, explicit=True)
        assert refused_code["path"] in str(caught.value)

    def test_load_lens_refuses_a_record_whose_putter_is_refused(self, lens_executor, runnable_lens, refused_code):
        record = dict(runnable_lens[0], putterCode=refused_code)
        with pytest.raises(LensExecutionRefused) as caught:
            lens_executor.load_lens(record, explicit=True)
        assert refused_code["path"] in str(caught.value)

    def test_load_lens_refuses_a_record_without_a_getter(self, lens_executor):
        with pytest.raises(LensExecutionRefused):
            lens_executor.load_lens({"name": "no_getter"}, explicit=True)

    def test_load_lens_honours_the_record_language(self, lens_executor, runnable_lens):
        record = dict(runnable_lens[0], language="cobol-conformance-check")
        record["getterCode"] = {k: v for k, v in record["getterCode"].items() if k != "language"}
        if "putterCode" in record:
            record["putterCode"] = {k: v for k, v in record["putterCode"].items() if k != "language"}
        with pytest.raises(LensExecutionRefused):
            lens_executor.load_lens(record, explicit=True)
