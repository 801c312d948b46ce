"""What the stores keep beside each record, and the keys they page by.

A record is kept twice: as published (its DAG-CBOR block, and its JSON form as
ingestion produced it, served as it is) and as a handful of derived columns
the queries filter, match and rank on. The derived columns are computed here,
once, for both stores, so that SQLite and PostgreSQL agree on what matches.

Text is compared *folded* (:meth:`str.casefold`), so matching ignores case in
every script, not just ASCII. NUL characters are dropped from derived text
(PostgreSQL text cannot hold them; the record itself keeps them).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from atdata_core.plugins import (
    ENTRY_NSID,
    LABEL_NSID,
    LENS_NSID,
    LENS_VERIFICATION_NSID,
    SCHEMA_NSID,
    AtUri,
    IndexedRecord,
    record_tags,
)

__all__ = [
    "Derived",
    "MAX_FIELD_CHARS",
    "MAX_WORDS",
    "Page",
    "PageKey",
    "StoredRecord",
    "decode_cursor",
    "derive",
    "encode_cursor",
    "fold",
    "is_plain_word",
    "normalize_time",
    "padded_words",
    "record_json",
    "schema_name_of",
    "schema_rkey_id",
    "search_words",
]

#: Derived text longer than this is cut for matching (the record itself is kept whole).
MAX_FIELD_CHARS = 10_000
#: A search query may hold at most this many distinct words.
MAX_WORDS = 32
#: A tag longer than this is not indexed for filtering (the lexicon allows 150 characters).
MAX_TAG_CHARS = 640
#: At most this many tags of one record are indexed (the lexicon allows 30).
MAX_TAGS = 100

_WORD = re.compile(r"\w+")


def fold(text: Any, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` case-folded, without NUL characters, cut at ``limit``; ``""`` for anything but a string."""
    if not isinstance(text, str):
        return ""
    return text[:limit].replace("\x00", "").casefold()[:limit]


def search_words(query: str) -> list[str]:
    """The distinct folded words of a search query (split at white space), in order.

    Each must occur in a dataset's searchable text for it to match. Raises
    ``ValueError`` past :data:`MAX_WORDS` words.
    """
    words: list[str] = []
    for word in fold(query, 4 * MAX_FIELD_CHARS).split():
        if word not in words:
            words.append(word)
    if len(words) > MAX_WORDS:
        raise ValueError(f"a search takes at most {MAX_WORDS} different words, not {len(words)}")
    return words


def is_plain_word(word: str) -> bool:
    """Whether ``word`` is one word of letters, digits and ``_`` (it can then match a whole word)."""
    return _WORD.fullmatch(word) is not None


def padded_words(folded: str) -> str:
    """``" w1 w2 ... "``: the words of folded text, each between spaces, for whole-word tests."""
    return " " + " ".join(_WORD.findall(folded)) + " "


def normalize_time(value: Any) -> str:
    """An RFC 3339 datetime as a sortable UTC string (``2025-01-02T03:04:05.000000Z``); ``""`` if unusable."""
    if not isinstance(value, str) or not 10 <= len(value) <= 64:
        return ""
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        return ""  # RFC 3339 requires a zone; a local time has no place in a global order
    try:
        moment = moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")


def schema_rkey_id(rkey: str) -> str | None:
    """The schema id of a ``{schemaId}:{version}`` record key, else None."""
    if ":" not in rkey:
        return None
    schema_id, _, version = rkey.rpartition(":")
    return schema_id if schema_id and version else None


def record_json(record: Mapping[str, Any]) -> str:
    """The JSON text a record is stored and served as: compact, keys in the record's order.

    Raises ``ValueError`` for a value JSON cannot hold (a float NaN, a non-string key...).
    """
    try:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError as err:
        raise ValueError(f"the record cannot be written as JSON: {err}") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: keep it as an escape
        text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text


@attrs.frozen
class Derived:
    """The columns a store keeps beside one record."""

    name: str
    name_f: str
    name_words: str
    description_f: str
    tags: tuple[str, ...]
    tags_f: str
    ref_a: str | None
    ref_b: str | None
    version: str | None
    schema_id: str | None
    sort_time: str

    def search_text(self, schema_f: str) -> str:
        """What a text search matches against: name, tags, schema name and description, one per line."""
        return "\n".join((self.name_f, self.tags_f.strip("\n"), schema_f, self.description_f))


def _str(value: Any, limit: int = 2000) -> str | None:
    return value[:limit].replace("\x00", "") if isinstance(value, str) else None


def derive(collection: str, rkey: str, value: Mapping[str, Any]) -> Derived:
    """The derived columns of a record of ``collection`` with key ``rkey``. Never raises on odd values."""
    if not isinstance(value, Mapping):
        value = {}
    name = _str(value.get("name"), MAX_FIELD_CHARS) or ""
    name_f = fold(name)
    tags = tuple(sorted(tag.replace("\x00", "") for tag in record_tags(value) if len(tag) <= MAX_TAG_CHARS))[:MAX_TAGS]
    tags_f = "\n" + "\n".join(fold(tag) for tag in tags) + "\n" if tags else ""
    ref_a = ref_b = version = schema_id = None
    if collection == ENTRY_NSID:
        ref_a = _str(value.get("schemaRef"))
    elif collection == LENS_NSID:
        ref_a, ref_b = _str(value.get("sourceSchema")), _str(value.get("targetSchema"))
    elif collection == LABEL_NSID:
        ref_a, version = _str(value.get("datasetUri")), _str(value.get("version"), 200)
    elif collection == LENS_VERIFICATION_NSID:
        ref_a = _str(value.get("lens"))
    elif collection == SCHEMA_NSID:
        version = _str(value.get("version"), 200)
        schema_id = schema_rkey_id(rkey) or _str(value.get("name"), 500)
    return Derived(
        name=name,
        name_f=name_f,
        name_words=padded_words(name_f),
        description_f=fold(value.get("description")),
        tags=tags,
        tags_f=tags_f,
        ref_a=ref_a,
        ref_b=ref_b,
        version=version,
        schema_id=schema_id,
        sort_time=normalize_time(value.get("createdAt")),
    )


def schema_name_of(uri: str | None, stored_name: str | None) -> str:
    """The folded schema name an entry is searched by: the schema record's name, else its key's id."""
    if stored_name:
        return fold(stored_name)
    if not uri:
        return ""
    try:
        rkey = AtUri.parse(uri).rkey or ""
    except Exception:  # noqa: BLE001 - a stranger's malformed reference names no schema
        return ""
    return fold(schema_rkey_id(rkey) or "")


@attrs.frozen
class StoredRecord:
    """One indexed record: where it is, what it is, and its JSON text as published."""

    uri: str
    did: str
    collection: str
    rkey: str
    cid: str | None
    json: str
    indexed_at: str
    sort_time: str
    score: int = 0

    @property
    def value(self) -> dict[str, Any]:
        """The record, parsed."""
        return json.loads(self.json)

    def indexed(self) -> IndexedRecord:
        """The record as the core's index rules take it."""
        return IndexedRecord(uri=self.uri, value=self.value, cid=self.cid)

    def key(self, ranked: bool = False) -> PageKey:
        return PageKey(score=self.score if ranked else None, sort_time=self.sort_time, uri=self.uri)


@attrs.frozen
class PageKey:
    """Where a page ends, in the order of the listing: (score,) newest ``createdAt``, then URI, all descending."""

    sort_time: str
    uri: str
    score: int | None = None


@attrs.frozen
class Page:
    """Records of one page and the key to continue after (None on the last page)."""

    records: tuple[StoredRecord, ...]
    next: PageKey | None


_CURSOR_VERSION = 1
_MAX_CURSOR_CHARS = 12_000


def encode_cursor(key: PageKey) -> str:
    """An opaque cursor for ``key``."""
    body = [_CURSOR_VERSION, key.score, key.sort_time, key.uri]
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *, ranked: bool) -> PageKey:
    """The key a cursor holds. Raises ``ValueError`` with a reason for anything this service did not make."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise ValueError("the cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("the cursor is not one this service gave out") from None
    if not (isinstance(body, list) and len(body) == 4 and body[0] == _CURSOR_VERSION):
        raise ValueError("the cursor is not one this service gave out")
    _, score, sort_time, uri = body
    if not isinstance(sort_time, str) or not isinstance(uri, str) or len(sort_time) > 64:
        raise ValueError("the cursor is not one this service gave out")
    if "\x00" in sort_time or "\x00" in uri:
        raise ValueError("the cursor is not one this service gave out")
    if ranked:
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score < 1 << 31:
            raise ValueError("the cursor does not belong to a search")
    elif score is not None:
        raise ValueError("the cursor belongs to a search, not a listing")
    return PageKey(score=score, sort_time=sort_time, uri=uri)
