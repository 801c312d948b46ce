"""String formats of the ATProto lexicon language, and grapheme counting.

Each checker takes a string and returns ``None`` when it is valid, or a short
reason when it is not. The rules follow the AT Protocol specifications for
each identifier (DIDs, handles, NSIDs, AT-URIs, TIDs, record keys, CIDs) and
RFC 3339 for datetimes.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Callable

_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_HANDLE = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_NSID = re.compile(
    r"^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}$"
)
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_RECORD_KEY = re.compile(r"^[a-zA-Z0-9._:~-]{1,512}$")
# Loose CID syntax, as the lexicon spec asks: full multiformat parsing is not required.
_CID = re.compile(r"^[a-zA-Z0-9+=]{8,256}$")
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+$")
_LANGUAGE = re.compile(r"^(i|[a-zA-Z]{2,3})(-[a-zA-Z0-9]+)*$")
# RFC 3339 internet date-time: uppercase T, a zone that is Z or +hh:mm / -hh:mm.
_DATETIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,20})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)


def check_did(value: str) -> str | None:
    if len(value) > 2048:
        return "a DID is at most 2048 characters"
    if not _DID.match(value):
        return "expected a DID like did:plc:abc123 or did:web:example.com"
    return None


def check_handle(value: str) -> str | None:
    if len(value) > 253:
        return "a handle is at most 253 characters"
    if not _HANDLE.match(value):
        return "expected a handle like alice.example.com"
    return None


def check_at_identifier(value: str) -> str | None:
    if value.startswith("did:"):
        return check_did(value)
    return None if check_handle(value) is None else "expected a handle or a DID"


def check_nsid(value: str) -> str | None:
    if len(value) > 317:
        return "an NSID is at most 317 characters"
    if not _NSID.match(value):
        return "expected an NSID like com.example.fooBar (at least three segments)"
    return None


def check_tid(value: str) -> str | None:
    if not _TID.match(value):
        return "expected a TID: 13 characters of base32-sortable"
    return None


def check_record_key(value: str) -> str | None:
    if value in (".", ".."):
        return "'.' and '..' are not record keys"
    if not _RECORD_KEY.match(value):
        return "a record key is 1 to 512 characters of A-Z a-z 0-9 . _ : ~ -"
    return None


def check_cid(value: str) -> str | None:
    if not _CID.match(value):
        return "expected a CID string like bafyrei..."
    return None


def check_uri(value: str) -> str | None:
    if len(value) > 8192:
        return "a URI is at most 8 KiB"
    if not _URI.match(value):
        return "expected an absolute URI with a scheme, like https://example.com/x"
    return None


def check_language(value: str) -> str | None:
    if not _LANGUAGE.match(value):
        return "expected a BCP 47 language tag like en or pt-BR"
    return None


def check_datetime(value: str) -> str | None:
    if not _DATETIME.match(value):
        return "expected an RFC 3339 datetime with a zone, like 2025-01-31T12:00:00.000Z"
    if value.endswith("-00:00"):
        return "the zone -00:00 is not allowed; use Z"
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return "not a real date and time"
    return None


def strict_datetime(value: str) -> str | None:
    """The strict spelling of a datetime another client wrote loosely, or None when there is none.

    RFC 3339 allows a lowercase ``t`` separator and ``z`` zone; the ATProto
    datetime format does not, but the instant is the same. Readers accept it
    with a warning (DESIGN D6); writers never produce it.

    >>> strict_datetime("2025-01-01t00:00:00z")
    '2025-01-01T00:00:00Z'
    """
    if not isinstance(value, str) or len(value) < 20:
        return None
    fixed = value
    if fixed[10] == "t":
        fixed = fixed[:10] + "T" + fixed[11:]
    if fixed.endswith("z"):
        fixed = fixed[:-1] + "Z"
    if fixed == value or check_datetime(fixed) is not None:
        return None
    return fixed


def check_at_uri(value: str) -> str | None:
    if len(value) > 8192:
        return "an AT-URI is at most 8 KiB"
    if not value.startswith("at://"):
        return "expected an AT-URI like at://did:plc:abc/collection.nsid/rkey"
    rest = value[5:]
    if "#" in rest or "?" in rest:
        return "an AT-URI in a record has no query or fragment"
    parts = rest.split("/")
    if len(parts) > 3 or any(p == "" for p in parts):
        return "expected at://authority[/collection[/rkey]]"
    if check_at_identifier(parts[0]) is not None:
        return f"authority {parts[0]!r} is neither a DID nor a handle"
    if len(parts) >= 2 and check_nsid(parts[1]) is not None:
        return f"collection {parts[1]!r} is not an NSID"
    if len(parts) == 3 and check_record_key(parts[2]) is not None:
        return f"record key {parts[2]!r} is not valid"
    return None


FORMATS: dict[str, Callable[[str], str | None]] = {
    "at-identifier": check_at_identifier,
    "at-uri": check_at_uri,
    "cid": check_cid,
    "datetime": check_datetime,
    "did": check_did,
    "handle": check_handle,
    "language": check_language,
    "nsid": check_nsid,
    "record-key": check_record_key,
    "tid": check_tid,
    "uri": check_uri,
}


# --- graphemes -------------------------------------------------------------

_ZWJ = "\u200d"


def _extends(ch: str) -> bool:
    """True for a code point that attaches to the one before it."""
    cp = ord(ch)
    if unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return True
    return (
        0xFE00 <= cp <= 0xFE0F  # variation selectors
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences (subdivision flags)
        or 0xE0100 <= cp <= 0xE01EF  # variation selectors supplement
    )


def _regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def count_graphemes(text: str) -> int:
    """Count user-perceived characters, approximately.

    This is a dependency-free approximation of Unicode extended grapheme
    clusters (UAX #29). It joins combining marks, variation selectors,
    skin-tone modifiers and emoji tags to their base, keeps ZWJ emoji sequences
    (👨‍👩‍👧) as one, pairs regional indicators into flags, and treats CR LF as
    one. It does not implement Hangul syllable composition from conjoining
    jamo or Indic conjunct rules: such text may count a little high, which only
    makes a ``maxGraphemes`` check stricter than the specification.
    """
    count = 0
    previous = ""
    pending_ri = False  # an unpaired regional indicator started the current cluster
    after_zwj = False
    for ch in text:
        if count and (_extends(ch) or ch == _ZWJ):
            after_zwj = ch == _ZWJ
            previous = ch
            continue
        if count and after_zwj:
            after_zwj = False
            previous = ch
            continue
        if count and ch == "\n" and previous == "\r":
            previous = ch
            continue
        if _regional_indicator(ch):
            if pending_ri:
                pending_ri = False
                previous = ch
                continue
            pending_ri = True
        else:
            pending_ri = False
        count += 1
        previous = ch
    return count
