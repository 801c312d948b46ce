"""Semantic versions (semver 2.0.0): parsing, precedence and "latest".

Schema versions are semvers (DESIGN D5). "Latest" means the highest version
by semver precedence, never string order: ``1.10.0`` is above ``1.9.0``, and a
prerelease ranks below its release (``2.0.0-rc.1 < 2.0.0``).
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

import attrs

from atdata_core.errors import ValidationError

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@functools.total_ordering
@attrs.frozen(eq=False)
class Version:
    """A parsed semver. Compares by precedence; build metadata is ignored."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""

    def _key(self) -> tuple:
        # A release sorts after all of its prereleases; numeric identifiers
        # sort before alphanumeric ones.
        pre = tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: "Version") -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(part) for part in self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def parse_version(text: str) -> Version:
    """Parse ``"1.2.3"``, ``"2.0.0-rc.1"``, ``"1.0.0+build.5"``.

    Raises :class:`~atdata_core.errors.ValidationError` (rule ``semver``) for
    anything else, including a leading ``v`` or leading zeros.
    """
    match = _SEMVER.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(
            f"{text!r} is not a semantic version; expected MAJOR.MINOR.PATCH such as 1.2.0 or 2.0.0-rc.1",
            path="$.version",
            rule="semver",
        )
    major, minor, patch, pre, build = match.groups()
    prerelease = tuple(int(part) if part.isdigit() else part for part in pre.split(".")) if pre else ()
    return Version(int(major), int(minor), int(patch), prerelease, build or "")


def is_version(text: str) -> bool:
    """True when ``text`` is a semantic version."""
    return isinstance(text, str) and _SEMVER.match(text) is not None


def latest_version(versions: Iterable[str], *, include_prereleases: bool = True) -> str | None:
    """The highest of ``versions`` by semver precedence, as given; None if none parse.

    Strings that are not semvers are skipped: records from other clients may
    carry free-form versions, and they must not hide the real latest one.
    """
    best: tuple[Version, str] | None = None
    for text in versions:
        if not is_version(text):
            continue
        version = parse_version(text)
        if version.is_prerelease and not include_prereleases:
            continue
        if best is None or version > best[0]:
            best = (version, text)
    return best[1] if best else None


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Semvers from lowest to highest precedence; non-semvers are dropped."""
    return sorted((v for v in versions if is_version(v)), key=parse_version)


def version_bump(old: str, new: str) -> str | None:
    """Which part went up from ``old`` to ``new``: ``"major"``, ``"minor"``, ``"patch"``,
    ``"prerelease"``, or None when ``new`` is not above ``old``.

    ``version_bump("1.2.3", "1.3.0") == "minor"``.
    """
    a, b = parse_version(old), parse_version(new)
    if not b > a:
        return None
    if b.major != a.major:
        return "major"
    if b.minor != a.minor:
        return "minor"
    if b.patch != a.patch:
        return "patch"
    return "prerelease"
