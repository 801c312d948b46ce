"""The repository's Merkle Search Tree: lookups that prove an operation, walks for backfill.

A node is ``{l: CID | null, e: [{p, k, v, t}]}``: ``l`` the subtree of keys
before the first entry, each entry a key (``p`` bytes shared with the
previous key, then ``k``), its record CID ``v`` and ``t``, the subtree of
keys between it and the next entry. Keys are ``collection/rkey``, sorted.

Everything here reads blocks a stranger sent: a node that does not decode or
breaks the shape, keys out of order, a node reached twice, and a node that is
needed but absent all raise :class:`MstError`, never anything else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import libipld

__all__ = ["MstError", "lookup", "walk"]


class MstError(ValueError):
    """The tree is malformed, or a node it needs is not among the blocks."""


_Node = tuple[bytes | None, list[tuple[bytes, bytes, bytes | None]]]


def _node(blocks: Mapping[bytes, bytes], cid: bytes, cache: dict[bytes, _Node] | None = None) -> _Node:
    """``(left subtree, [(key, value, right subtree)...])`` of one node, keys rebuilt."""
    if cache is not None:
        found = cache.get(cid)
        if found is None:
            found = cache[cid] = _node(blocks, cid)
        return found
    block = blocks.get(cid)
    if block is None:
        raise MstError(f"the tree node {_text(cid)} is not among the blocks")
    try:
        node = libipld.decode_dag_cbor(block)
    except (ValueError, RecursionError) as err:
        raise MstError(f"the tree node {_text(cid)} does not decode: {err}") from None
    if not isinstance(node, dict) or not isinstance(node.get("e"), list) or "l" not in node:
        raise MstError(f"the tree node {_text(cid)} is not {{l, e}}")
    left = node["l"]
    if left is not None and not isinstance(left, bytes):
        raise MstError(f"the tree node {_text(cid)} has a left link that is not a CID")
    entries = []
    append = entries.append
    previous = b""
    for entry in node["e"]:
        # libipld gives exactly dict, int, bytes and None: a class test is enough (and a bool,
        # whose class is bool, is no prefix).
        if entry.__class__ is not dict:
            raise MstError(f"the tree node {_text(cid)} has an entry that is not a map")
        prefix, suffix, value, right = entry.get("p"), entry.get("k"), entry.get("v"), entry.get("t")
        if (
            prefix.__class__ is not int or not 0 <= prefix <= len(previous)
            or suffix.__class__ is not bytes or value.__class__ is not bytes
            or (right is not None and right.__class__ is not bytes)
        ):
            raise MstError(f"the tree node {_text(cid)} has a malformed entry")
        key = previous[:prefix] + suffix if prefix else suffix
        if entries and key <= previous:
            raise MstError(f"the tree node {_text(cid)} has keys out of order")
        append((key, value, right))
        previous = key
    return left, entries


def lookup(
    blocks: Mapping[bytes, bytes], root: bytes, key: bytes, cache: dict[bytes, _Node] | None = None
) -> bytes | None:
    """The record CID stored under ``key`` in the tree at ``root``; None when the tree proves it absent.

    Every node on the way must be among ``blocks`` (a commit's blocks hold the
    path to each key it changed), else :class:`MstError`. ``cache`` (a dict
    kept across the lookups of one commit) spares decoding the same nodes again.
    """
    cid: bytes | None = root
    seen: set[bytes] = set()
    while cid is not None:
        if cid in seen:
            raise MstError("the tree reaches the same node twice")
        seen.add(cid)
        left, entries = _node(blocks, cid, cache)
        below = left
        for entry_key, value, right in entries:
            if entry_key == key:
                return value
            if entry_key > key:
                break
            below = right
        cid = below
    return None


def walk(
    blocks: Mapping[bytes, bytes], root: bytes, low: bytes = b"", high: bytes | None = None
) -> Iterator[tuple[bytes, bytes]]:
    """``(key, record CID)`` for every key ``low <= key < high`` of the tree at ``root``, in order.

    Subtrees wholly outside the range are not visited, so reading one
    namespace of a large repository touches only its part of the tree.
    """
    seen: set[bytes] = set()
    last: bytes | None = None
    # A stack of pending work: ("node", cid, lower bound, upper bound) or ("leaf", key, value).
    stack: list[tuple] = [("node", root, b"", None)]
    while stack:
        item = stack.pop()
        if item[0] == "leaf":
            _, key, value = item
            if last is not None and key <= last:
                raise MstError("the tree's keys are out of order across nodes")
            last = key
            if key >= low and (high is None or key < high):
                yield key, value
            continue
        _, cid, lower, upper = item
        if (upper is not None and upper <= low) or (high is not None and lower >= high):
            continue
        if cid in seen:
            raise MstError("the tree reaches the same node twice")
        seen.add(cid)
        left, entries = _node(blocks, cid)
        work: list[tuple] = []
        if left is not None:
            work.append(("node", left, lower, entries[0][0] if entries else upper))
        for index, (key, value, right) in enumerate(entries):
            if (lower and key <= lower) or (upper is not None and key >= upper):
                raise MstError(f"the tree node {_text(cid)} holds a key outside its parent's range")
            work.append(("leaf", key, value))
            if right is not None:
                following = entries[index + 1][0] if index + 1 < len(entries) else upper
                work.append(("node", right, key, following))
        stack.extend(reversed(work))


def _text(cid: bytes) -> str:
    try:
        return libipld.encode_cid(cid)
    except ValueError:
        return cid.hex()
