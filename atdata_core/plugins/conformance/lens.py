"""The lens executor conformance suite."""

from __future__ import annotations

from typing import Any

import pytest

from atdata_core.errors import LensExecutionRefused


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

    def test_runs_a_runnable_reference(self, lens_executor, runnable_code):
        code, args, expected = runnable_code
        function = lens_executor.load(code)
        assert callable(function)
        assert function(*args) == expected

    def test_loading_twice_gives_the_same_behaviour(self, lens_executor, runnable_code):
        code, args, expected = runnable_code
        assert lens_executor.load(dict(code))(*args) == lens_executor.load(dict(code))(*args) == expected

    def test_refuses_and_names_the_reference(self, lens_executor, refused_code):
        with pytest.raises(LensExecutionRefused) as caught:
            lens_executor.load(refused_code)
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
            lens_executor.load(broken)

    def test_refuses_another_language(self, lens_executor, runnable_code):
        code = dict(runnable_code[0], language="cobol-conformance-check")
        with pytest.raises(LensExecutionRefused):
            lens_executor.load(code)
