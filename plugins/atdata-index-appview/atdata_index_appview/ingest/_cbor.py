"""DAG-CBOR where libipld's answer is not enough.

libipld decodes a CID link and a byte string to the same Python ``bytes``, so
its output cannot say which of ``{"$link": cid}`` and ``{"$bytes": b64}`` a
record held. Records (small, and only those of our namespace) are therefore
read into their JSON form here; frames, commits and MST nodes, whose links sit
at known keys, stay with libipld, which is much faster.

The same reader finds item boundaries, which is how a commit's signed bytes
are recovered: the commit block without its ``sig`` entry, exactly as the
signer encoded it (:func:`unsigned_commit`).
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import libipld

__all__ = ["CborError", "record_json", "unsigned_commit"]

# Records nest a JSON Schema or two; nothing legitimate comes near this.
MAX_DEPTH = 128


class CborError(ValueError):
    """The bytes are not the DAG-CBOR this reader accepts."""


def _head(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(major type, additional info, argument, position after the head)."""
    try:
        initial = data[pos]
    except IndexError:
        raise CborError("truncated: an item was expected") from None
    major, info = initial >> 5, initial & 31
    pos += 1
    if info < 24:
        return major, info, info, pos
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None:
        raise CborError(f"additional information {info} (indefinite length or reserved) is not DAG-CBOR")
    end = pos + size
    if end > len(data):
        raise CborError("truncated: an item's length runs past the end")
    return major, info, int.from_bytes(data[pos:end], "big"), end


def _read(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise CborError(f"nested deeper than {MAX_DEPTH} levels")
    major, info, arg, pos = _head(data, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        end = pos + arg
        if end > len(data):
            raise CborError("truncated: a string runs past the end")
        chunk = data[pos:end]
        if major == 2:
            return {"$bytes": base64.b64encode(chunk).decode("ascii").rstrip("=")}, end
        try:
            return chunk.decode("utf-8"), end
        except UnicodeDecodeError as err:
            raise CborError(f"a text string is not UTF-8: {err}") from None
    if major == 4:
        if arg > len(data) - pos:
            raise CborError("truncated: an array claims more items than there are bytes")
        items = []
        for _ in range(arg):
            item, pos = _read(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        if arg > len(data) - pos:
            raise CborError("truncated: a map claims more entries than there are bytes")
        mapping: dict[str, Any] = {}
        for _ in range(arg):
            key_major, _, key_len, key_pos = _head(data, pos)
            if key_major != 3:
                raise CborError("a map key is not a text string")
            key, pos = _read(data, pos, depth + 1)
            if key in mapping:
                raise CborError(f"the map key {key[:100]!r} appears twice")
            mapping[key], pos = _read(data, pos, depth + 1)
        return mapping, pos
    if major == 6:
        if arg != 42:
            raise CborError(f"tag {arg} is not DAG-CBOR (only 42, a CID link)")
        link_major, _, length, start = _head(data, pos)
        end = start + length
        if link_major != 2 or end > len(data) or length < 2 or data[start] != 0:
            raise CborError("a CID link (tag 42) is not a byte string starting with 0x00")
        try:
            cid = libipld.encode_cid(bytes(data[start + 1:end]))
        except ValueError as err:
            raise CborError(f"a CID link does not hold a CID: {err}") from None
        return {"$link": cid}, end
    # major 7: simple values and floats
    if info == 20:
        return False, pos
    if info == 21:
        return True, pos
    if info == 22:
        return None, pos
    if info == 27:
        value = struct.unpack(">d", arg.to_bytes(8, "big"))[0]
        if not math.isfinite(value):
            raise CborError("NaN and infinities are not DAG-CBOR")
        return value, pos
    raise CborError(f"simple value or float with additional information {info} is not DAG-CBOR")


def _plain(value: Any, depth: int) -> bool:
    """Whether libipld's decoding of a record is already its JSON form: no byte string or link
    (libipld gives both as ``bytes``), no float, nested no deeper than this reader allows."""
    if depth > MAX_DEPTH:
        return False
    kind = value.__class__
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return not isinstance(value, (bytes, float))
    inner = depth + 1
    for item in items:
        kind = item.__class__
        if kind is dict or kind is list:
            if not _plain(item, inner):
                return False
        elif kind is str or kind is int or kind is bool or item is None:
            if inner > MAX_DEPTH:
                return False
        elif not _plain(item, inner):  # anything else: the general test
            return False
    return True


def record_json(data: bytes) -> dict[str, Any]:
    """A record block in its JSON form: bytes as ``{"$bytes": base64}`` (no padding, as a PDS
    writes them), CID links as ``{"$link": cid}``. Raises :class:`CborError` when the block is
    not one DAG-CBOR map."""
    # Most records hold neither bytes nor links: libipld (strict DAG-CBOR, in Rust) reads those
    # several times faster; anything else, or anything it refuses, is read here.
    try:
        fast = libipld.decode_dag_cbor(data)
    except (ValueError, RecursionError):
        fast = None
    if isinstance(fast, dict) and _plain(fast, 0):
        return fast
    value, end = _read(data, 0, 0)
    if end != len(data):
        raise CborError(f"{len(data) - end} bytes follow the record")
    if not isinstance(value, dict):
        raise CborError("a record is a map")
    return value


def _head_bytes(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise CborError("a length beyond 64 bits")


# The ``sig`` entry of a commit as every implementation writes it: the key, a 64-byte string.
_SIG_ENTRY = b"\x63sig\x58\x40"


def _unsigned_commit_fast(block: bytes) -> tuple[bytes, bytes] | None:
    """:func:`unsigned_commit` for the usual commit (a small map, a 64-byte ``sig``): the entry
    found by its bytes, and the cut proven right by decoding both sides (the rest decodes to
    exactly the commit's other entries, the cut-out bytes are its ``sig``). None otherwise."""
    if not block or not 0xA1 <= block[0] <= 0xB7:
        return None
    at = block.find(_SIG_ENTRY)
    if at < 0 or len(block) < at + 70:
        return None
    signature = bytes(block[at + 6:at + 70])
    signed = bytes([block[0] - 1]) + bytes(block[1:at]) + bytes(block[at + 70:])
    try:
        commit, rest = libipld.decode_dag_cbor(bytes(block)), libipld.decode_dag_cbor(signed)
    except (ValueError, RecursionError):
        return None
    if not isinstance(commit, dict) or commit.get("sig") != signature or not isinstance(rest, dict) \
            or len(rest) != len(commit) - 1 or any(key not in commit or commit[key] != value for key, value in rest.items()):
        return None
    return signed, signature


def unsigned_commit(block: bytes) -> tuple[bytes, bytes]:
    """``(the bytes the signature covers, the signature)`` of a commit block.

    The signature covers the commit encoded without its ``sig`` entry. In
    canonical DAG-CBOR, removing one map entry leaves the others in order,
    so the signed bytes are the block with that entry cut out and the map's
    size lowered by one: no re-encoding, nothing lost.
    """
    fast = _unsigned_commit_fast(block)
    if fast is not None:
        return fast
    major, _, count, pos = _head(block, 0)
    if major != 5:
        raise CborError("a commit is a map")
    kept = [_head_bytes(5, count - 1)]
    signature = None
    for _ in range(count):
        start = pos
        key, pos = _read(block, pos, 1)
        value_start = pos
        value, pos = _read(block, pos, 1)
        if key == "sig":
            if not isinstance(value, dict) or set(value) != {"$bytes"}:
                raise CborError("the commit's sig is not a byte string")
            _, _, length, data_start = _head(block, value_start)
            signature = bytes(block[data_start:data_start + length])
        else:
            kept.append(block[start:pos])
    if pos != len(block):
        raise CborError(f"{len(block) - pos} bytes follow the commit")
    if signature is None:
        raise CborError("the commit has no sig")
    return b"".join(kept), signature
