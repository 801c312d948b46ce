"""CAR files (content-addressed archives) read section by section, every block checked.

``libipld.decode_car`` trusts that each block is what its CID says. Here each
section's CID is parsed and the block's sha-256 compared with the CID's
digest, so a block whose bytes do not match its CID is refused
(:class:`BadBlock`) before anything reads it. Blocks stay as bytes; the
caller decodes the ones it needs (a record's exact bytes are what the index
keeps).
"""

from __future__ import annotations

import hashlib

import attrs
import libipld

__all__ = ["BadBlock", "Car", "CarError", "cid_string", "read_car"]

_SHA2_256 = 0x12
_MAX_VARINT_BYTES = 9


class CarError(ValueError):
    """The bytes are not a CAR file."""


class BadBlock(CarError):
    """A block's bytes do not hash to its CID (or its CID uses a hash this reader cannot check)."""


@attrs.frozen
class Car:
    """The roots of a CAR file and its blocks by raw CID bytes (the form libipld gives links in)."""

    roots: tuple[bytes, ...]
    blocks: dict[bytes, bytes]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos + index >= len(data):
            raise CarError("truncated: a varint runs past the end")
        byte = data[pos + index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + index + 1
        shift += 7
    raise CarError("a varint longer than 9 bytes")


def _cid_end(section: bytes) -> tuple[int, int, bytes]:
    """(end of the CID in ``section``, its multihash code, its digest)."""
    if len(section) >= 34 and section[0] == 0x12 and section[1] == 0x20:  # CIDv0: a bare sha-256 multihash
        return 34, _SHA2_256, section[2:34]
    version, pos = _varint(section, 0)
    if version != 1:
        raise CarError(f"CID version {version}; only 0 and 1 exist")
    _codec, pos = _varint(section, pos)
    code, pos = _varint(section, pos)
    size, pos = _varint(section, pos)
    end = pos + size
    if end > len(section):
        raise CarError("truncated: a CID's digest runs past its section")
    return end, code, section[pos:end]


def cid_string(cid: bytes) -> str:
    """The text form (``bafyrei...``) of raw CID bytes."""
    return libipld.encode_cid(cid)


def read_car(data: bytes) -> Car:
    """Read a CAR (v1) file, checking every block against its CID. Raises :class:`CarError`,
    or :class:`BadBlock` for a block that does not match."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CarError(f"expected the bytes of a CAR file, got {type(data).__name__}")
    data = bytes(data)
    length, pos = _varint(data, 0)
    end = pos + length
    if length == 0 or end > len(data):
        raise CarError("truncated: the CAR header runs past the end")
    try:
        header = libipld.decode_dag_cbor(data[pos:end])
    except (ValueError, RecursionError) as err:
        raise CarError(f"the CAR header does not decode: {err}") from None
    roots = header.get("roots") if isinstance(header, dict) else None
    if not isinstance(header, dict) or header.get("version") != 1 or not isinstance(roots, list) or not all(
        isinstance(root, bytes) for root in roots
    ):
        raise CarError("the CAR header is not {version: 1, roots: [CID...]}")
    pos = end
    blocks: dict[bytes, bytes] = {}
    size = len(data)
    sha256 = hashlib.sha256
    while pos < size:
        length = data[pos]
        if length < 0x80:  # a section under 128 bytes: its length is one byte
            pos += 1
        else:
            length, pos = _varint(data, pos)
        end = pos + length
        if length == 0 or end > size:
            raise CarError("truncated: a block runs past the end")
        if length >= 36 and data[pos] == 1 and data[pos + 1] < 0x80 and data[pos + 2] == _SHA2_256 \
                and data[pos + 3] == 32:
            # The common CID: version 1, a one-byte codec, a 32-byte sha2-256 digest.
            cid_end, code, digest = pos + 36, _SHA2_256, data[pos + 4:pos + 36]
        else:
            cid_end, code, digest = _cid_end(data[pos:end])
            cid_end += pos
        cid = data[pos:cid_end]
        block = data[cid_end:end]
        if code != _SHA2_256 or len(digest) != 32:
            raise BadBlock(f"the block {_describe(cid)} uses multihash 0x{code:x}; only sha2-256 is checked and accepted")
        if sha256(block).digest() != digest:
            raise BadBlock(f"the block {_describe(cid)} does not match its CID: its bytes hash to something else")
        blocks[cid] = block
        pos = end
    return Car(roots=tuple(roots), blocks=blocks)


def _describe(cid: bytes) -> str:
    try:
        return cid_string(cid)
    except ValueError:
        return cid.hex()
