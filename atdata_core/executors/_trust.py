"""The trust decision for lens code (DESIGN D3, D8): whose code may run, decided before anything is imported.

A lens's code runs only when the executor found it installed locally, at the
commit its record pins, *and* this policy allows it, for one of these reasons:

1. the user passed the lens explicitly (``load_lens(uri, trust=True)``,
   ``load(..., lenses=[uri])``, or the executor called with ``explicit=True``);
2. the record's author is in ``[lens] trusted_dids``;
3. every commit its code references is in ``[lens] pinned_commits`` (code you reviewed);
4. a ``science.alt.dataset.lensVerification`` record written by a DID in
   ``[lens] trusted_dids`` covers it: its ``lens`` is the lens record's URI,
   its ``lensCommit`` the lens record's CID (the version of the record
   verified; the git commit its code references is accepted too), and its
   ``codeHash`` the sha256 of the installed getter and putter source
   (:func:`lens_code_hash`).

The decision compares strings only: it never imports, fetches or runs
anything. Fetching lens code from the network is not implemented; when it is,
it will need a trusted author *and* a pinned commit (:meth:`TrustPolicy.allows_remote`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["TrustDecision", "TrustPolicy", "lens_code_hash", "same_repository"]


def lens_code_hash(getter_source: str, putter_source: str | None) -> str:
    """The hex sha256 a ``lensVerification`` records of a lens's code.

    Over ``getter <n>\\n`` + the getter's source + ``putter <m>\\n`` + the
    putter's source (``n`` and ``m`` their lengths in UTF-8 bytes; an absent
    putter is empty). A function's source is its definition as written in its
    file, decorators included, dedented, with ``\\n`` line ends: what the
    Python executor reads from the installed file without importing it.
    """
    digest = hashlib.sha256()
    for label, text in (("getter", getter_source), ("putter", putter_source or "")):
        data = text.encode("utf-8")
        digest.update(f"{label} {len(data)}\n".encode("ascii"))
        digest.update(data)
    return digest.hexdigest()


@attrs.frozen
class TrustDecision:
    """Whether lens code may run, and the sentence that says why (or why not)."""

    allowed: bool
    reason: str
    #: The URI of the verification record that allowed it, when one did.
    verification: str | None = None


@attrs.frozen
class TrustPolicy:
    """Whose lens code may run.

    ``trusted_dids``: DIDs of record authors (and verifiers) you trust.
    ``pinned_commits``: ``"<repository>@<commit>"`` strings (or a bare commit)
    you reviewed. Code fetched from the network, when that exists, will need
    both a trusted author *and* a pinned commit.
    """

    trusted_dids: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    pinned_commits: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)

    def is_trusted(self, author: str | None) -> bool:
        return author is not None and author in self.trusted_dids

    def is_pinned(self, repository: str, commit: str) -> bool:
        commit = commit.lower()
        if not commit:
            return False
        for entry in self.pinned_commits:
            repo, sep, pinned = entry.rpartition("@")
            if not sep:
                repo, pinned = "", entry
            # The exact commit: a prefix could be ground to match another commit.
            if pinned.lower() == commit and (not repo or same_repository(repo, repository)):
                return True
        return False

    def allows_remote(self, author: str | None, repository: str, commit: str) -> bool:
        return self.is_trusted(author) and self.is_pinned(repository, commit)

    def decide(
        self,
        *,
        author: str | None,
        explicit: bool = False,
        code: Sequence[tuple[str, str]] = (),
        lens_uri: str | None = None,
        lens_cid: str | None = None,
        code_hash: str | None = None,
        verifications: Iterable[Any] = (),
    ) -> TrustDecision:
        """Decide whether the code may run.

        ``code``: the ``(repository, commit)`` of each reference (getter,
        putter). ``lens_uri`` / ``lens_cid``: the lens record's URI and CID.
        ``code_hash``: :func:`lens_code_hash` of the installed source, None
        when it could not be computed. ``verifications``: lensVerification
        records as ``(uri, value)`` pairs, mappings with ``uri`` and
        ``value``, or objects with those attributes (``IndexedRecord``).
        """
        if explicit:
            return TrustDecision(True, "you passed this lens explicitly")
        if self.is_trusted(author):
            return TrustDecision(True, f"its author {author} is in [lens] trusted_dids")
        if code and all(self.is_pinned(repository, commit) for repository, commit in code):
            return TrustDecision(True, "its commit is in [lens] pinned_commits")
        misses: list[str] = []
        for uri, value in _verification_pairs(verifications):
            covered, why = self._covers(uri, value, code, lens_uri, lens_cid, code_hash)
            if covered:
                return TrustDecision(True, why, verification=uri)
            misses.append(f"{uri}: {why}")
        reasons = [
            f"its author {author} is not in [lens] trusted_dids" if author else "the record's author is not known"
        ]
        if lens_uri is None:
            pass  # one code reference, not a lens record: no verification can name it
        elif not self.trusted_dids:
            reasons.append("you trust no DID, so no lensVerification can vouch for it")
        elif not misses:
            reasons.append("no lensVerification from a DID you trust names this lens")
        else:
            shown = "; ".join(misses[:3]) + (f"; and {len(misses) - 3} more" if len(misses) > 3 else "")
            reasons.append(f"no lensVerification from a DID you trust covers it ({shown})")
        if code_hash is None and lens_uri is not None:
            reasons.append("the hash of its code could not be computed")
        return TrustDecision(False, "; ".join(reasons))

    def _covers(
        self, uri: str, value: Mapping[str, Any], code: Sequence[tuple[str, str]], lens_uri: str | None,
        lens_cid: str | None, code_hash: str | None,
    ) -> tuple[bool, str]:
        verifier = _authority(uri)
        if verifier is None or verifier not in self.trusted_dids:
            return False, f"its author {verifier or '(unknown)'} is not in [lens] trusted_dids"
        method = value.get("verificationMethod")
        if lens_uri is None or _lens_key(value.get("lens")) != _lens_key(lens_uri):
            return False, "it verifies another lens"
        commit = value.get("lensCommit")
        commits = {c.lower() for _, c in code if c}
        record_match = isinstance(commit, str) and lens_cid is not None and commit == lens_cid
        code_match = isinstance(commit, str) and len(commits) == 1 and commit.lower() == next(iter(commits))
        if not (record_match or code_match):
            return False, (
                f"it verified lens version {_short(commit)}, not this one (record {_short(lens_cid)}"
                + (f", commit {_short(next(iter(commits)))}" if len(commits) == 1 else "") + ")"
            )
        recorded = value.get("codeHash")
        if not isinstance(recorded, Mapping):
            return False, "it records no codeHash, so it cannot vouch for the installed code"
        algorithm, digest = recorded.get("algorithm"), recorded.get("digest")
        if not isinstance(algorithm, str) or algorithm.lower() != "sha256" or not isinstance(digest, str):
            return False, f"its codeHash uses {_short(algorithm)}, not sha256"
        if code_hash is None:
            return False, "the installed code's hash could not be computed"
        if digest.lower() != code_hash.lower():
            return False, (
                f"its code hash sha256:{_short(digest)} is not the installed code's sha256:{code_hash[:12]}"
                " (the installed getter or putter differs from the verified code)"
            )
        how = method if isinstance(method, str) else "an unnamed method"
        return True, (
            f"a lensVerification by {verifier} ({how}, {uri}) covers this lens version and its code "
            f"(sha256:{code_hash[:12]})"
        )


def _verification_pairs(items: Iterable[Any]) -> list[tuple[str, Mapping[str, Any]]]:
    pairs = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            uri, value = item
        elif isinstance(item, Mapping):
            uri, value = item.get("uri"), item.get("value")
        else:
            uri, value = getattr(item, "uri", None), getattr(item, "value", None)
        if isinstance(uri, str) and isinstance(value, Mapping):
            pairs.append((uri, value))
    return pairs


def _authority(uri: str) -> str | None:
    if not uri.startswith("at://"):
        return None
    authority = uri[len("at://"):].split("/", 1)[0]
    return authority if authority.startswith("did:") else None


def _lens_key(uri: Any) -> tuple[str, ...] | None:
    if not isinstance(uri, str) or not uri.startswith("at://"):
        return None
    parts = uri[len("at://"):].split("/")
    return tuple(parts[:3]) if len(parts) >= 3 else None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:16] + ("..." if len(text) > 16 else "")


def same_repository(a: str, b: str) -> bool:
    """Whether two repository URLs name the same repository (``git+``, scheme, ``.git`` and case aside)."""

    def norm(url: str) -> str:
        url = url.strip().lower().rstrip("/")
        for prefix in ("git+", "https://", "http://", "ssh://", "git://", "git@"):
            if url.startswith(prefix):
                url = url[len(prefix):]
        url = url.replace(":", "/")
        return url[:-4] if url.endswith(".git") else url

    return norm(a) == norm(b)
