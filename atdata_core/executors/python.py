"""The built-in lens executor: runs Python lens code that is installed here, and nothing else.

A lens record names its getter and putter by reference (DESIGN D3)::

    "getterCode": {"repository": "https://github.com/me/lenses", "commit": "3f2a...",
                   "path": "imaging/lenses.py:to_gray", "language": "python"}

:class:`PythonLensExecutor` turns such a record into a :class:`~atdata_core.lens.Lens`
only when

1. the language is Python (or not given);
2. an importable module is the file the path names (``imaging/lenses.py`` ->
   ``imaging.lenses``; ``src/`` layouts and the ``package.module:function``
   form other clients write are understood), and it defines that function
   itself (a name imported from elsewhere is refused);
3. the code is the pinned commit's code, checked the strongest way available:

   - the module's file lives in a git checkout: the file on disk must be
     byte-identical to that file at the pinned commit (the commit must be in
     the local clone; HEAD may have moved on if the file did not change);
   - the module was installed by pip from a VCS URL (PEP 610
     ``direct_url.json``): the recorded commit must be the pinned one;
   - otherwise (a wheel from an index, a copied folder) the commit cannot be
     checked. The code is run, because you installed it, and the lens's
     ``provenance`` says it was unverified. Set ``[lens]
     require_verified_commit = true`` to refuse these instead.

   Only the file that defines the function is checked, not the modules it imports.
   Looking a module up imports its parent packages, which are installed code too.

Everything else raises :class:`~atdata_core.errors.LensExecutionRefused` saying
what was asked for, what is installed, and what to do. Nothing is downloaded:
fetching remote lens code is not implemented. When it is, it will run only for
records whose author you trust (``[lens] trusted_dids``) at a commit you
pinned (``[lens] pinned_commits = ["<repository>@<commit>"]``); the policy
check exists already and is reported in the refusal.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from atdata_core.errors import LensError, LensExecutionRefused
from atdata_core.lenses import Lens
from atdata_core.lenses import _git
from atdata_core.lenses._code import CodePath, reference_from_mapping

__all__ = ["PythonLensExecutor", "TrustPolicy"]

_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")
_PYTHON_NAMES = {"python", "python3", "py"}


@attrs.frozen
class TrustPolicy:
    """Who may have lens code fetched from the network and run: nobody, unless configured.

    ``trusted_dids``: DIDs of record authors you trust. ``pinned_commits``:
    ``"<repository>@<commit>"`` strings (or a bare commit) you reviewed.
    Remote code needs both: a trusted author *and* a pinned commit.
    """

    trusted_dids: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    pinned_commits: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)

    @classmethod
    def from_config(cls, config: Any) -> TrustPolicy:
        if config is None:
            return cls()
        return cls(_config_list(config, "lens.trusted_dids"), _config_list(config, "lens.pinned_commits"))

    def is_trusted(self, author: str | None) -> bool:
        return author is not None and author in self.trusted_dids

    def is_pinned(self, repository: str, commit: str) -> bool:
        commit = commit.lower()
        for entry in self.pinned_commits:
            repo, sep, pinned = entry.rpartition("@")
            if not sep:
                repo, pinned = "", entry
            if pinned.lower() == commit and (not repo or _same_repository(repo, repository)):
                return True
        return False

    def allows_remote(self, author: str | None, repository: str, commit: str) -> bool:
        return self.is_trusted(author) and self.is_pinned(repository, commit)


class PythonLensExecutor:
    """Loads lens records whose Python code is installed locally and matches its reference.

    >>> executor = PythonLensExecutor()
    >>> to_gray = executor.load(lens_record, RGBImage, GrayImage)
    >>> to_gray.provenance
    ['getter: imaging/lenses.py in the git checkout ... is identical to commit 3f2a9c1d0b7e']

    ``config`` is the merged :class:`~atdata_core.config.Config` (the plugin
    registry passes it) or None; ``policy`` and ``require_verified_commit``
    override what it says.
    """

    name = "python"
    languages = ("python",)

    def __init__(
        self,
        config: Any = None,
        *,
        policy: TrustPolicy | None = None,
        require_verified_commit: bool | None = None,
    ):
        self.policy = policy if policy is not None else TrustPolicy.from_config(config)
        if require_verified_commit is None:
            require_verified_commit = bool(_config_bool(config, "lens.require_verified_commit", False))
        self.require_verified_commit = require_verified_commit

    def __repr__(self) -> str:
        return f"PythonLensExecutor(require_verified_commit={self.require_verified_commit})"

    # ------------------------------------------------------------------ entry points

    def load(
        self,
        record: Mapping[str, Any],
        source_type: Any = None,
        view_type: Any = None,
        *,
        author: str | None = None,
        role: str = "get",
    ) -> Any:
        """A :class:`Lens` from a lens record, or the function one code reference names.

        Given a lens record (a mapping with ``getterCode`` / ``putterCode``),
        returns a Lens from ``source_type`` to ``view_type`` (default: the
        types the installed lens declares). Given one code reference (a
        mapping with ``path``), returns that function; ``role`` ("get" or
        "put") picks the half of a lens when the name points at a ``@lens``
        object. ``author`` is the DID of the repository the record came from,
        used by the trust policy.
        """
        if isinstance(record, Mapping) and ("getterCode" in record or "putterCode" in record):
            return self.load_lens(record, source_type, view_type, author=author)
        if isinstance(record, Mapping) and "path" in record:
            function, _, _ = self._resolve(record, role, "code reference", author)
            return function
        if attrs.has(type(record)) and hasattr(record, "getter_code"):
            return self.load_lens(_lens_record_mapping(record), source_type, view_type, author=author)
        if attrs.has(type(record)) and hasattr(record, "path"):
            function, _, _ = self._resolve(record, role, "code reference", author)
            return function
        raise LensExecutionRefused(
            f"expected a science.alt.dataset.lens record (with getterCode and putterCode) or one code "
            f"reference (with repository, commit and path), got {_short(record)}"
        )

    def load_lens(
        self,
        record: Mapping[str, Any],
        source_type: Any = None,
        view_type: Any = None,
        *,
        author: str | None = None,
    ) -> Lens:
        """The lens a record describes, with getter and putter from installed code."""
        name = str(record.get("name") or "lens")
        record_language = record.get("language")
        getter_ref = record.get("getterCode")
        if getter_ref is None:
            raise LensExecutionRefused(f"lens record {name!r} has no getterCode, so there is nothing to run")
        getter, getter_owner, getter_note = self._resolve(
            getter_ref, "get", f"lens {name!r} getterCode", author, record_language
        )
        putter = None
        putter_note = None
        putter_ref = record.get("putterCode")
        if putter_ref is not None:
            putter, _, putter_note = self._resolve(
                putter_ref, "put", f"lens {name!r} putterCode", author, record_language
            )
        source = source_type if source_type is not None else (getter_owner.source if getter_owner else Any)
        view = view_type if view_type is not None else (getter_owner.view if getter_owner else Any)
        qualified = (
            getter_owner.qualified_name if getter_owner is not None
            else f"{getter.__module__}:{getter.__qualname__}"
        )
        loaded = Lens(getter, putter, source=source, view=view, name=name, qualified_name=qualified)
        loaded.record = dict(record)
        loaded.provenance = [f"getter: {getter_note}"] + ([f"putter: {putter_note}"] if putter_note else [])
        return loaded

    # ------------------------------------------------------------------ resolution

    def _resolve(
        self,
        data: Any,
        role: str,
        what: str,
        author: str | None,
        record_language: Any = None,
    ) -> tuple[Callable[..., Any], Lens | None, str]:
        """(function, the @lens object it belongs to if any, provenance note) or LensExecutionRefused."""
        try:
            ref = reference_from_mapping(data if not attrs.has(type(data)) else attrs.asdict(data))
        except LensError as err:
            raise LensExecutionRefused(f"{what}: {err}") from None
        language = (ref.language or record_language or "python")
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

        module_name, origin, tried = _find_module(code_path)
        if module_name is None:
            raise LensExecutionRefused(self._not_installed_message(asked, ref, code_path, tried, author))
        try:
            module = importlib.import_module(module_name)
        except Exception as err:  # the module's own import failed: report it, do not run more
            raise LensExecutionRefused(
                f"{asked}. Module {module_name} is installed ({origin}) but importing it failed: "
                f"{type(err).__name__}: {err}"
            ) from err

        target: Any = module
        for part in code_path.function.split("."):
            target = getattr(target, part, _MISSING)
            if target is _MISSING:
                raise LensExecutionRefused(
                    f"{asked}. Module {module_name} is installed ({origin}) but has no {code_path.function}; "
                    f"it defines {_public_callables(module)}. The installed version may differ from the one the "
                    f"record references: install the package at commit {commit[:12] or '(unpinned)'}"
                )
        function, owner = _pick_function(target, role, code_path.function)
        if function is None:
            raise LensExecutionRefused(
                f"{asked}. {module_name}.{code_path.function} is "
                + ("a lens without a putter" if isinstance(target, Lens) else f"a {type(target).__name__}, not a function")
            )
        defined_in = _source_file(function)
        if defined_in is None or defined_in != Path(origin).resolve():
            raise LensExecutionRefused(
                f"{asked}. {module_name}.{code_path.function} is installed, but it is defined in "
                f"{defined_in or 'no Python source file'}, not in {origin}; a reference must name the file that "
                "defines the function, whose code its commit pins"
            )
        note = self._verify_commit(asked, Path(origin).resolve(), module_name, ref.repository, commit)
        return function, owner, note

    def _verify_commit(self, asked: str, file: Path, module_name: str, repository: str, commit: str) -> str:
        if not commit:
            if self.require_verified_commit:
                raise LensExecutionRefused(
                    f"{asked}. The reference pins no commit and [lens] require_verified_commit is true"
                )
            return f"{file.name}: no commit pinned in the reference; the installed code was used"
        root = _git.checkout_root(file)
        if root is not None:
            relpath = file.relative_to(root.resolve()).as_posix()
            try:
                full = _git.resolve_commit(root, commit)
                if full is None:
                    head = _safe_head(root)
                    raise LensExecutionRefused(
                        f"{asked}. The installed module is {relpath} in the git checkout {root} (HEAD {head}), "
                        f"which does not have commit {commit}. Fetch it (git -C {root} fetch) and retry, or "
                        f"install the package at that commit"
                    )
                wanted = _git.blob_at(root, full, relpath)
                if wanted is None:
                    raise LensExecutionRefused(
                        f"{asked}. The installed module is {relpath} in the git checkout {root}, but commit "
                        f"{full[:12]} has no file {relpath}: the reference and the installed code disagree"
                    )
                have = _git.blob_of_file(root, file)
            except _git.GitUnavailable as err:
                raise LensExecutionRefused(
                    f"{asked}. The installed module is in the git checkout {root}, but git could not check its "
                    f"commit: {err}"
                ) from None
            if have != wanted:
                head = _safe_head(root)
                raise LensExecutionRefused(
                    f"{asked}. The installed {relpath} (git checkout {root}, HEAD {head}) differs from that file at "
                    f"commit {full[:12]}, so it is not the referenced code. Check out {full[:12]} there, or install "
                    "the package at that commit. To run the installed version anyway, import the function "
                    "yourself and build the lens with @lens"
                )
            return f"{relpath} in the git checkout {root} is identical to commit {full[:12]}"

        dist_name, version, vcs_commit, vcs_url = _installed_distribution(module_name)
        if vcs_commit:
            if not _same_commit(vcs_commit, commit):
                raise LensExecutionRefused(
                    f"{asked}. Installed is {dist_name} {version} from {vcs_url} at commit {vcs_commit[:12]}, "
                    f"not {commit[:12]}. Install the referenced commit: pip install 'git+{repository}@{commit}'"
                )
            return f"{dist_name} {version} was installed from {vcs_url} at commit {vcs_commit[:12]}"
        installed = f"{dist_name} {version}" if dist_name else f"module {module_name} ({file})"
        if self.require_verified_commit:
            raise LensExecutionRefused(
                f"{asked}. Installed is {installed}, whose commit cannot be checked (not a git checkout, not "
                f"installed from a VCS URL), and [lens] require_verified_commit is true. Install it with "
                f"pip install 'git+{repository}@{commit}' so the commit is recorded"
            )
        return f"{installed}: commit {commit[:12]} not verifiable (no git checkout, no VCS install record); used as installed"

    def _not_installed_message(
        self, asked: str, ref: Any, code_path: CodePath, tried: list[str], author: str | None
    ) -> str:
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


# ---------------------------------------------------------------------- helpers

_MISSING = object()


def _find_module(code_path: CodePath) -> tuple[str | None, str | None, list[str]]:
    """(module name, its file) of the installed module a code path names, and what was tried."""
    tried: list[str] = []
    for candidate in code_path.module_candidates:
        try:
            spec = importlib.util.find_spec(candidate)
        except (ImportError, ValueError, AttributeError):
            spec = None
        except Exception as err:  # a parent package's __init__ failed
            tried.append(f"{candidate} (importing its package failed: {type(err).__name__}: {err})")
            continue
        if spec is None or not spec.origin or not spec.has_location:
            tried.append(f"module {candidate} (not installed)")
            continue
        origin = Path(spec.origin).resolve()
        if code_path.file is not None and not _path_ends_with(origin, code_path.file):
            tried.append(f"module {candidate} (installed, but its file is {origin}, not .../{code_path.file})")
            continue
        return candidate, str(origin), tried
    return None, None, tried


def _path_ends_with(path: Path, suffix: str) -> bool:
    want = [part for part in suffix.split("/") if part not in ("", ".")]
    have = path.as_posix().split("/")
    return have[-len(want):] == want


def _pick_function(target: Any, role: str, function_name: str) -> tuple[Callable[..., Any] | None, Lens | None]:
    if isinstance(target, Lens):
        short = function_name.rsplit(".", 1)[-1]
        getter_name = getattr(target.getter, "__name__", None)
        putter_name = getattr(target.putter_function, "__name__", None)
        if putter_name == short and getter_name != short:
            return target.putter_function, target
        if getter_name == short and putter_name != short:
            return target.getter, target
        return (target.getter if role == "get" else target.putter_function), target
    if inspect.isfunction(target) or inspect.ismethod(target):
        return target, None
    return None, None


def _source_file(function: Callable[..., Any]) -> Path | None:
    try:
        found = inspect.getsourcefile(inspect.unwrap(function))
    except TypeError:
        return None
    return Path(found).resolve() if found else None


def _public_callables(module: Any) -> str:
    names = sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_") and (isinstance(value, Lens) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == module.__name__
    )
    if not names:
        return "no public functions"
    shown = ", ".join(names[:12])
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def _installed_distribution(module_name: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(distribution, version, VCS commit, VCS URL) of the distribution providing a module."""
    import importlib.metadata as metadata

    top = module_name.split(".")[0]
    try:
        names = metadata.packages_distributions().get(top, [])
    except Exception:
        names = []
    for dist_name in names:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        version = dist.version
        try:
            raw = dist.read_text("direct_url.json")
            info = json.loads(raw) if raw else {}
        except (OSError, ValueError):
            info = {}
        vcs = info.get("vcs_info") or {}
        return dist_name, version, vcs.get("commit_id"), info.get("url")
    return None, None, None, None


def _same_commit(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    shortest = min(len(a), len(b))
    return shortest >= 7 and a[:shortest] == b[:shortest]


def _same_repository(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        url = url.strip().lower().rstrip("/")
        for prefix in ("git+", "https://", "http://", "ssh://", "git://", "git@"):
            if url.startswith(prefix):
                url = url[len(prefix):]
        url = url.replace(":", "/")
        return url[:-4] if url.endswith(".git") else url

    return norm(a) == norm(b)


def _safe_head(root: Path) -> str:
    try:
        return _git.head_commit(root)[:12]
    except _git.GitUnavailable:
        return "unknown"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _lens_record_mapping(record: Any) -> dict[str, Any]:
    def ref(code: Any) -> Any:
        return attrs.asdict(code) if code is not None and attrs.has(type(code)) else code

    return {
        "name": getattr(record, "name", None),
        "getterCode": ref(getattr(record, "getter_code", None)),
        "putterCode": ref(getattr(record, "putter_code", None)),
    }


def _config_list(config: Any, key: str) -> list[str]:
    getter = getattr(config, "get_list", None)
    if callable(getter):
        return getter(key)
    value = _mapping_get(config, key)
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return list(value)


def _config_bool(config: Any, key: str, default: bool) -> bool:
    if config is None:
        return default
    getter = getattr(config, "get_bool", None)
    if callable(getter):
        value = getter(key, default)
        return default if value is None else value
    value = _mapping_get(config, key)
    return default if value is None else bool(value)


def _mapping_get(config: Any, key: str) -> Any:
    node = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
