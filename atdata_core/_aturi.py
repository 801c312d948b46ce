"""The AT-URI type: ``at://<authority>[/<collection>[/<record key>]]``.

One parser for every AT-URI the core and its plugins meet, with one error::

    >>> uri = AtUri.parse("at://did:plc:abc/science.alt.dataset.entry/3kabc")
    >>> uri.authority, uri.collection, uri.rkey
    ('did:plc:abc', 'science.alt.dataset.entry', '3kabc')
    >>> str(uri.with_authority("did:plc:xyz"))
    'at://did:plc:xyz/science.alt.dataset.entry/3kabc'
    >>> AtUri.record("did:plc:abc", "science.alt.dataset.label", "3k2")
    AtUri('at://did:plc:abc/science.alt.dataset.label/3k2')

The authority is a DID or a handle; the collection an NSID; the record key
follows the ATProto record-key syntax. A URI that breaks any of these raises
:class:`~atdata_core.errors.ValidationError` with rule ``format:at-uri``.
"""

from __future__ import annotations

from typing import Any

import attrs

from atdata_core.errors import ValidationError

__all__ = ["AtUri"]

_PREFIX = "at://"
# URIs parsed lately (an ingested record's is checked where it is read and again where it is
# stored). Only valid ones; bounded, since strangers write them.
_parsed: dict[str, AtUri] = {}
_MAX_PARSED = 16384


@attrs.frozen(repr=False)
class AtUri:
    """A parsed AT-URI. ``collection`` and ``rkey`` are None for a URI naming less than a record."""

    authority: str
    collection: str | None = None
    rkey: str | None = None

    @classmethod
    def parse(cls, text: Any, *, record: bool = True) -> AtUri:
        """Parse and validate ``text``. With ``record`` (the default) it must name one record."""
        if isinstance(text, AtUri):
            uri = text
        else:
            memo = cls is AtUri and text.__class__ is str
            uri = _parsed.get(text) if memo else None
            if uri is None:
                uri = cls._from_text(text)
                if memo and len(text) <= 1024:
                    if len(_parsed) >= _MAX_PARSED:
                        _parsed.clear()
                    _parsed[text] = uri
        if record and uri.rkey is None:
            raise ValidationError(
                f"{_shorten(str(uri))} must name a record: at://<did or handle>/<collection>/<record key>",
                rule="format:at-uri",
            )
        return uri

    @classmethod
    def _from_text(cls, text: Any) -> AtUri:
        from atdata_core.lexicon._formats import check_at_uri

        if not isinstance(text, str):
            raise ValidationError(f"expected an AT-URI string, got {type(text).__name__}", rule="format:at-uri")
        stripped = text.strip()
        problem = check_at_uri(stripped)
        if problem is not None:
            raise ValidationError(f"{_shorten(text)} is not an AT-URI: {problem}", rule="format:at-uri")
        parts = stripped[len(_PREFIX):].split("/")
        parts += [None] * (3 - len(parts))  # type: ignore[list-item]
        return cls(parts[0], parts[1], parts[2])

    @classmethod
    def record(cls, authority: str, collection: str, rkey: str) -> AtUri:
        """Build (and validate) the URI of one record."""
        return cls.parse(f"{_PREFIX}{authority}/{collection}/{rkey}")

    @staticmethod
    def is_at_uri(text: Any) -> bool:
        """Whether ``text`` is a well-formed AT-URI naming a record."""
        try:
            AtUri.parse(text)
        except ValidationError:
            return False
        return True

    @property
    def did(self) -> str | None:
        """The authority when it is a DID, else None (a handle still needs resolving)."""
        return self.authority if self.authority.startswith("did:") else None

    def with_authority(self, authority: str) -> AtUri:
        """The same path under another authority (a handle replaced by its DID)."""
        return attrs.evolve(self, authority=authority)

    def __str__(self) -> str:
        return _PREFIX + "/".join(part for part in (self.authority, self.collection, self.rkey) if part is not None)

    def __repr__(self) -> str:
        return f"AtUri({str(self)!r})"


def _shorten(text: str, limit: int = 200) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
