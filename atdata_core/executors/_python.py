"""The built-in lens executor: runs Python lens code that is installed here and trusted, and nothing else.

A lens record names its getter and putter by reference (DESIGN D3)::

    "getterCode": {"repository": "https://github.com/me/lenses", "commit": "3f2a...",
                   "path": "imaging/lenses.py:to_gray", "language": "python"}

:class:`PythonLensExecutor` runs such a reference only when

1. the language is Python (or not given);
2. an installed module is the file the path names (``imaging/lenses.py`` ->
   ``imaging.lenses``; ``src/`` layouts and the ``package.module:function``
   form other clients write are understood). It is found by reading the
   filesystem, never by importing (:mod:`atdata_core.executors._locate`), and
   never in the current working directory (unless ``allow_working_directory``),
   the standard library, built-in, frozen or dunder modules;
3. its source, read with ``ast``, binds the function's name at module level;
4. the installed file (and, in a git checkout, its packages' ``__init__.py``)
   is the pinned commit's, checked the strongest way available
   (:mod:`atdata_core.executors._verify`); code whose commit cannot be checked
   runs with a provenance note saying so, unless ``require_verified_commit``
   is set;
5. the trust policy allows it (:class:`~atdata_core.executors.TrustPolicy`):
   you passed the lens explicitly (``explicit=True``), or its author is in
   ``[lens] trusted_dids``, or its commits are in ``[lens] pinned_commits``,
   or a ``lensVerification`` by a DID you trust covers this version of the
   record and the sha256 of the installed getter and putter source (read from
   the files, not imported).

Only then is the module imported; after the import, the function must be
defined in that very file (a name imported from elsewhere is refused). Steps
1-5 decide before anything named by the record runs.

Everything else raises :class:`~atdata_core.errors.LensExecutionRefused` saying
what was asked for, what is installed or trusted, and what to do. Nothing is
downloaded: fetching remote lens code is not implemented.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from atdata_core.errors import LensError, LensExecutionRefused
from atdata_core.executors._locate import (
    function_source,
    locate_module,
    pick_function,
    public_callables,
    read_bindings,
    source_file,
)
from atdata_core.executors._settings import PythonExecutorSettings
from atdata_core.executors._trust import TrustDecision, TrustPolicy, lens_code_hash
from atdata_core.executors._verify import verify_commit
from atdata_core.lenses import Lens
from atdata_core.lenses._code import CodePath, reference_from_mapping

__all__ = ["PythonLensExecutor"]

_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")
_PYTHON_NAMES = {"python", "python3", "py"}
_MISSING = object()


@attrs.frozen
class _Located:
    """One code reference, found installed and checked against its commit; nothing of it imported yet."""

    asked: str
    role: str
    code_path: CodePath
    module: str
    file: Path
    note: str
    repository: str
    commit: str
    source: str | None  # the function's source as written in the file, for the code hash


class PythonLensExecutor:
    """Loads lens code that is installed locally, matches its reference, and is trusted.

    >>> executor = PythonLensExecutor(PythonExecutorSettings(trusted_dids={"did:plc:alice"}))
    >>> to_gray = executor.load_lens(lens_record, author="did:plc:alice")
    >>> to_gray.provenance
    ['getter: imaging/lenses.py in the git checkout ... is identical to commit 3f2a9c1d0b7e', 'putter: ...',
     'trust: its author did:plc:alice is in [lens] trusted_dids']

    The plugin registry builds it from the ``[lens]`` configuration section
    (see :class:`~atdata_core.executors.PythonExecutorSettings`).
    """

    name = "python"
    languages = ("python",)

    def __init__(self, settings: PythonExecutorSettings | None = None):
        if settings is not None and not isinstance(settings, PythonExecutorSettings):
            raise TypeError(
                f"PythonLensExecutor takes PythonExecutorSettings, got {type(settings).__name__}; build the "
                "settings from configuration first"
            )
        self.settings = settings if settings is not None else PythonExecutorSettings()
        self.policy = TrustPolicy(self.settings.trusted_dids, self.settings.pinned_commits)

    @property
    def require_verified_commit(self) -> bool:
        return self.settings.require_verified_commit

    def __repr__(self) -> str:
        return f"PythonLensExecutor(require_verified_commit={self.require_verified_commit})"

    # ------------------------------------------------------------------ the LensExecutor contract

    def load(self, code: Mapping[str, Any], *, author: str | None = None, explicit: bool = False) -> Callable[..., Any]:
        """The installed function one code reference names (a lens record's ``getterCode`` or ``putterCode``).

        A name bound to a ``@lens`` object gives its getter, or its putter when
        the name is the putter's. It runs only if trusted: ``explicit=True``
        (you pass this reference yourself), ``author`` (the DID of the account
        that published it) in ``[lens] trusted_dids``, or its commit in
        ``[lens] pinned_commits``.
        """
        located = self._locate(code, "get", "code reference", author)
        decision = self.policy.decide(author=author, explicit=explicit, code=[(located.repository, located.commit)])
        if not decision.allowed:
            raise LensExecutionRefused(self._untrusted_message(located.asked, decision, author, lens=False))
        function, _ = self._import(located)
        return function

    def load_lens(
        self,
        record: Mapping[str, Any],
        *,
        source_type: Any = None,
        view_type: Any = None,
        author: str | None = None,
        uri: str | None = None,
        cid: str | None = None,
        verifications: Iterable[Any] = (),
        explicit: bool = False,
    ) -> Lens:
        """The lens a ``science.alt.dataset.lens`` record describes, its getter and putter from installed code.

        ``source_type`` / ``view_type`` default to the types the installed
        ``@lens`` declares (``Any`` for plain functions). For the trust
        decision: ``author`` (the DID that published the record), ``uri`` and
        ``cid`` (the record's), ``verifications`` (``lensVerification``
        records, as ``IndexedRecord`` or ``(uri, value)``; only those by DIDs
        in ``[lens] trusted_dids`` count) and ``explicit`` (you pass this lens
        yourself). The lens's ``provenance`` says how each function was
        checked and why it was trusted; ``record`` is a copy of the record.
        """
        getter, putter = self._locate_lens(record, author)
        decision = self._decide(getter, putter, author, uri, cid, verifications, explicit)
        name = str(record.get("name") or "lens")
        if not decision.allowed:
            raise LensExecutionRefused(self._untrusted_message(
                f"lens {name!r}" + (f" ({uri})" if uri else "") + f" asks for {getter.code_path.raw}"
                + (f" and {putter.code_path.raw}" if putter else "") + f" at commit {getter.commit[:12] or '(none)'}",
                decision, author, lens=True,
            ))
        getter_function, getter_owner = self._import(getter)
        putter_function = self._import(putter)[0] if putter is not None else None
        source = source_type if source_type is not None else (getter_owner.source if getter_owner else Any)
        view = view_type if view_type is not None else (getter_owner.view if getter_owner else Any)
        qualified = (
            getter_owner.qualified_name if getter_owner is not None
            else f"{getter_function.__module__}:{getter_function.__qualname__}"
        )
        loaded = Lens(getter_function, putter_function, source=source, view=view, name=name, qualified_name=qualified)
        loaded.record = dict(record)
        loaded.provenance = (
            [f"getter: {getter.note}"] + ([f"putter: {putter.note}"] if putter else []) + [f"trust: {decision.reason}"]
        )
        return loaded

    # ------------------------------------------------------------------ deciding without importing

    def decide(
        self,
        record: Mapping[str, Any],
        *,
        author: str | None = None,
        uri: str | None = None,
        cid: str | None = None,
        verifications: Iterable[Any] = (),
        explicit: bool = False,
    ) -> TrustDecision:
        """Whether :meth:`load_lens` would run the record's code, and why: nothing is imported.

        Raises :class:`~atdata_core.errors.LensExecutionRefused` when the code
        is not installed here or not the pinned commit's (the checks before
        trust).
        """
        getter, putter = self._locate_lens(record, author)
        return self._decide(getter, putter, author, uri, cid, verifications, explicit)

    def code_hash(self, record: Mapping[str, Any]) -> str:
        """The sha256 of the installed getter and putter source a ``lensVerification`` records (no import).

        Raises :class:`~atdata_core.errors.LensExecutionRefused` when the code
        is not installed or a function has no ``def`` to hash.
        """
        getter, putter = self._locate_lens(record, None)
        digest = self._code_hash(getter, putter)
        if digest is None:
            missing = [c.code_path.raw for c in (getter, putter) if c is not None and c.source is None]
            raise LensExecutionRefused(
                f"no code hash for {', '.join(missing)}: the installed file binds the name, but not with a def "
                "whose source could be read"
            )
        return digest

    def _decide(
        self, getter: _Located, putter: _Located | None, author: str | None, uri: str | None, cid: str | None,
        verifications: Iterable[Any], explicit: bool,
    ) -> TrustDecision:
        code = [(c.repository, c.commit) for c in (getter, putter) if c is not None]
        return self.policy.decide(
            author=author, explicit=explicit, code=code, lens_uri=uri, lens_cid=cid,
            code_hash=self._code_hash(getter, putter), verifications=verifications,
        )

    @staticmethod
    def _code_hash(getter: _Located, putter: _Located | None) -> str | None:
        if getter.source is None or (putter is not None and putter.source is None):
            return None
        return lens_code_hash(getter.source, putter.source if putter is not None else None)

    def _locate_lens(self, record: Any, author: str | None) -> tuple[_Located, _Located | None]:
        if not isinstance(record, Mapping):
            raise LensExecutionRefused(
                f"a lens record is a mapping (the record's JSON value), got {type(record).__name__}; "
                "turn a record model into one with atdata_core.records.to_record"
            )
        name = str(record.get("name") or "lens")
        record_language = record.get("language")
        getter_ref = record.get("getterCode")
        if getter_ref is None:
            raise LensExecutionRefused(f"lens record {name!r} has no getterCode, so there is nothing to run")
        getter = self._locate(getter_ref, "get", f"lens {name!r} getterCode", author, record_language)
        putter_ref = record.get("putterCode")
        putter = None
        if putter_ref is not None:
            putter = self._locate(putter_ref, "put", f"lens {name!r} putterCode", author, record_language)
        return getter, putter

    def _untrusted_message(self, asked: str, decision: TrustDecision, author: str | None, *, lens: bool) -> str:
        ways = [
            "pass it explicitly (atdata_core.load_lens(uri, trust=True), or load(..., lenses=[uri]))" if lens
            else "pass it explicitly (load(code, explicit=True))"
        ]
        if author:
            ways.append(f"trust its author (atdata lens trust {author}, which adds it to [lens] trusted_dids)")
        ways.append("pin its commit in [lens] pinned_commits after reviewing the code")
        if lens:
            ways.append("have a DID you trust publish a lensVerification of it (atdata lens verify --publish)")
        return (
            f"{asked}. It is installed here, but the trust policy does not allow running it, so nothing of it was "
            f"imported: {decision.reason}. To run it: {'; or '.join(ways)}"
        )

    # ------------------------------------------------------------------ resolution

    def _locate(
        self,
        data: Any,
        role: str,
        what: str,
        author: str | None,
        record_language: Any = None,
    ) -> _Located:
        """The installed file a code reference names, checked against its commit, or LensExecutionRefused.

        Reads files and metadata only (DESIGN D3, D8): a refusal here means none
        of the code ran, parent packages included.
        """
        if not isinstance(data, Mapping):
            raise LensExecutionRefused(
                f"{what}: a code reference is a mapping with repository, commit and path, got {_short(data)}"
            )
        if "getterCode" in data or "putterCode" in data:
            raise LensExecutionRefused(
                f"{what}: this is a lens record, not one code reference; load it with load_lens()"
            )
        try:
            ref = reference_from_mapping(data)
        except LensError as err:
            raise LensExecutionRefused(f"{what}: {err}") from None
        language = ref.language or record_language or "python"
        if str(language).strip().lower() not in _PYTHON_NAMES:
            raise LensExecutionRefused(
                f"{what} is written in {language!r}; the built-in executor runs Python only. Install a lens "
                f"executor plugin for {language!r} (see `atdata plugins`)"
            )
        try:
            code_path = CodePath.parse(ref.path)
        except LensError as err:
            raise LensExecutionRefused(f"{what}: {err}") from None
        commit = (ref.commit or "").strip()
        if commit and not _HEX.match(commit):
            raise LensExecutionRefused(f"{what}: commit {commit!r} is not a hexadecimal commit hash")
        asked = (
            f"{what} asks for {ref.path} (function {code_path.function}) at commit {commit[:12] or '(none)'}"
            f" of {ref.repository or '(no repository)'}"
        )
        located, tried, refused = locate_module(
            code_path, allow_working_directory=self.settings.allow_working_directory
        )
        if located is None:
            if refused:
                raise LensExecutionRefused(f"{asked}. Nothing was imported: {'; '.join(tried)}")
            raise LensExecutionRefused(self._not_installed_message(asked, ref, tried, author))
        module_name, origin = located.module, located.file
        try:
            bindings = read_bindings(origin)
        except (OSError, SyntaxError, ValueError) as err:
            raise LensExecutionRefused(
                f"{asked}. Module {module_name} is installed ({origin}) but its source could not be read as "
                f"Python: {type(err).__name__}: {err}"
            ) from None
        top_name = code_path.function.split(".")[0]
        if top_name not in bindings.names:
            raise LensExecutionRefused(
                f"{asked}. Module {module_name} is installed ({origin}) but has no {code_path.function}; "
                f"it defines {bindings.describe()}. The installed version may differ from the one the "
                f"record references: install the package at commit {commit[:12] or '(unpinned)'}"
            )
        note = verify_commit(
            asked, origin, module_name, ref.repository, commit,
            require_verified=self.require_verified_commit,
            parents=tuple(file for file in located.runs if file != origin),
        )
        return _Located(
            asked=asked, role=role, code_path=code_path, module=module_name, file=origin, note=note,
            repository=ref.repository or "", commit=commit, source=function_source(origin, code_path.function, role),
        )

    def _import(self, located: _Located) -> tuple[Callable[..., Any], Lens | None]:
        """Import an approved module and return (function, the @lens object it belongs to if any)."""
        asked, module_name, origin, code_path = located.asked, located.module, located.file, located.code_path
        commit = located.commit
        # Approved: import it, which runs its packages' __init__.py and the module itself.
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # the module's own import failed: report it, do not run more
            raise LensExecutionRefused(
                f"{asked}. Module {module_name} is installed ({origin}) but importing it failed: "
                f"{type(err).__name__}: {err}"
            ) from err
        imported_file = getattr(module, "__file__", None)
        if not isinstance(imported_file, str) or Path(imported_file).resolve() != origin:
            raise LensExecutionRefused(
                f"{asked}. Importing {module_name} loaded {imported_file or 'a module without a file'}, not the "
                f"approved {origin} (its package changed its search path); nothing from it is run"
            )

        target: Any = module
        for part in code_path.function.split("."):
            target = getattr(target, part, _MISSING)
            if target is _MISSING:
                raise LensExecutionRefused(
                    f"{asked}. Module {module_name} is installed ({origin}) but has no {code_path.function}; "
                    f"it defines {public_callables(module)}. The installed version may differ from the one the "
                    f"record references: install the package at commit {commit[:12] or '(unpinned)'}"
                )
        function, owner = pick_function(target, located.role, code_path.function)
        if function is None:
            raise LensExecutionRefused(
                f"{asked}. {module_name}.{code_path.function} is "
                + ("a lens without a putter" if isinstance(target, Lens) else f"a {type(target).__name__}, not a function")
            )
        defined_in = source_file(function)
        if defined_in is None or defined_in != origin:
            raise LensExecutionRefused(
                f"{asked}. {module_name}.{code_path.function} is installed, but it is defined in "
                f"{defined_in or 'no Python source file'}, not in {origin}; a reference must name the file that "
                "defines the function, whose code its commit pins"
            )
        return function, owner

    def _not_installed_message(self, asked: str, ref: Any, tried: list[str], author: str | None) -> str:
        install = (
            f"pip install 'git+{ref.repository}@{ref.commit}'" if ref.repository and ref.commit
            else "install the package that provides it"
        )
        trusted = self.policy.is_trusted(author)
        pinned = self.policy.is_pinned(ref.repository or "", ref.commit or "")
        if trusted and pinned:
            policy = (
                f"Your trust policy would allow this code (author {author} is in [lens] trusted_dids and the commit "
                "is in [lens] pinned_commits), but fetching remote lens code is not implemented by this executor"
            )
        else:
            if trusted:
                reasons = [f"author {author} is trusted"]
            elif author:
                reasons = [f"author {author} is not in trusted_dids"]
            else:
                reasons = ["the record's author was not given"]
            reasons.append("the commit is pinned" if pinned else "the commit is not pinned")
            policy = (
                "This executor never downloads code (fetching remote lens code is not implemented, and would "
                "need the record's author in [lens] trusted_dids and '<repository>@<commit>' in [lens] "
                f"pinned_commits; here {'; '.join(reasons)})"
            )
        return (
            f"{asked}, which is not installed here (looked for {', '.join(tried)}). "
            f"If you trust it, install it yourself: {install}, then retry. {policy}"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
