"""Blob CIDs: what a PDS names a blob by, and the sha256 inside it.

A blob's CID is a CIDv1 with the raw codec (0x55) and a sha-256 multihash,
written in base32 (lower case, no padding) behind the multibase prefix ``b``::

    b + base32( 01 55 12 20 + sha256(bytes) )

so the CID *is* the shard's sha256, and a reader checks it while streaming.

>>> blob_cid(bytes(32))
'bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
>>> cid_digest(blob_cid(bytes(32))) == bytes(32)
True
"""

from __future__ import annotations

import base64
import re

__all__ = ["BLOB_CID_PREFIX", "blob_cid", "cid_digest", "is_blob_cid"]

#: CIDv1, raw codec, sha2-256 multihash of 32 bytes.
BLOB_CID_PREFIX = bytes([0x01, 0x55, 0x12, 0x20])
_CID_RE = re.compile(r"^b[a-z2-7]{58}$")


def blob_cid(sha256_digest: bytes) -> str:
    """The blob CID of bytes whose sha256 is ``sha256_digest`` (32 raw bytes)."""
    if len(sha256_digest) != 32:
        raise ValueError(f"a sha256 digest is 32 bytes, not {len(sha256_digest)}")
    return "b" + base64.b32encode(BLOB_CID_PREFIX + sha256_digest).decode("ascii").lower().rstrip("=")


def cid_digest(cid: str) -> bytes:
    """The sha256 a blob CID pins (32 raw bytes).

    Raises ``ValueError`` for anything but a CIDv1 / raw / sha-256 CID in
    base32, the only kind a PDS gives blobs.
    """
    if not isinstance(cid, str) or not _CID_RE.match(cid):
        raise ValueError(f"{cid!r} is not a blob CID (CIDv1, raw codec, sha-256, base32: 'bafkrei' + 52 characters)")
    raw = base64.b32decode(cid[1:].upper() + "=" * (-(len(cid) - 1) % 8))
    if raw[:4] != BLOB_CID_PREFIX or len(raw) != 36:
        raise ValueError(f"{cid!r} is not a raw sha-256 CIDv1, so its bytes cannot be checked against it")
    return raw[4:]


def is_blob_cid(text: str) -> bool:
    """Whether ``text`` is a blob CID (and so, as a URL path, names a blob rather than a shard path)."""
    try:
        cid_digest(text)
    except ValueError:
        return False
    return True
