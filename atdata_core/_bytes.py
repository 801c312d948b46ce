"""Bytes in ATProto JSON: ``{"$bytes": base64}``, read in one place.

The data model writes bytes as standard base64 *without* ``=`` padding, and a
PDS serves them back that way; other writers pad. Every reader in the core
goes through :func:`decode_bytes` so that all of them accept both (DESIGN,
section 4)::

    >>> decode_bytes({"$bytes": "YWI"}), decode_bytes({"$bytes": "YWI="})
    (b'ab', b'ab')
    >>> encode_bytes(b"ab")
    {'$bytes': 'YWI'}
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

__all__ = ["b64decode_unpadded", "decode_bytes", "encode_bytes", "is_bytes_object"]


def encode_bytes(data: bytes | bytearray | memoryview) -> dict[str, str]:
    """``{"$bytes": base64}``: standard alphabet, no padding, as the data model writes it."""
    return {"$bytes": base64.b64encode(bytes(data)).decode("ascii").rstrip("=")}


def b64decode_unpadded(text: str) -> bytes:
    """Standard base64 with or without ``=`` padding; ValueError for anything else."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"not base64: {err}") from None


def is_bytes_object(value: Any) -> bool:
    """Whether ``value`` has the shape ``{"$bytes": "<string>"}`` (and no other key)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$bytes"), str)


def decode_bytes(value: Any) -> bytes | None:
    """The bytes of a ``{"$bytes": base64}`` object (padded or not), or of raw bytes; None when neither."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if is_bytes_object(value):
        try:
            return b64decode_unpadded(value["$bytes"])
        except ValueError:
            return None
    return None
