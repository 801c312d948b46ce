"""The trust decision for lens code fetched from the network: nobody's, unless configured (DESIGN D3, D8).

The decision only compares strings; it never imports or fetches anything.
"""

from __future__ import annotations

import attrs

__all__ = ["TrustPolicy", "same_repository"]


@attrs.frozen
class TrustPolicy:
    """Who may have lens code fetched from the network and run.

    ``trusted_dids``: DIDs of record authors you trust. ``pinned_commits``:
    ``"<repository>@<commit>"`` strings (or a bare commit) you reviewed.
    Remote code needs both: a trusted author *and* a pinned commit.
    """

    trusted_dids: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    pinned_commits: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)

    def is_trusted(self, author: str | None) -> bool:
        return author is not None and author in self.trusted_dids

    def is_pinned(self, repository: str, commit: str) -> bool:
        commit = commit.lower()
        for entry in self.pinned_commits:
            repo, sep, pinned = entry.rpartition("@")
            if not sep:
                repo, pinned = "", entry
            if pinned.lower() == commit and (not repo or same_repository(repo, repository)):
                return True
        return False

    def allows_remote(self, author: str | None, repository: str, commit: str) -> bool:
        return self.is_trusted(author) and self.is_pinned(repository, commit)


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
