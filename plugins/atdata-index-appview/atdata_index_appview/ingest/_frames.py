"""Firehose frames (``com.atproto.sync.subscribeRepos``) decoded into events.

A frame is two DAG-CBOR objects back to back: a header ``{op, t}`` and a
body. ``op`` 1 is a message of type ``t`` (``#commit``, ``#sync``,
``#identity``, ``#account``, ``#info``); ``op`` -1 an error
(``{error, message}``) after which the server closes the stream. Every field
an event's handling reads is checked here, so the consumer meets typed
values or :class:`FrameError`, nothing in between.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import libipld

__all__ = [
    "AccountEvent",
    "CommitEvent",
    "ErrorFrame",
    "Event",
    "FrameError",
    "IdentityEvent",
    "InfoEvent",
    "OpRef",
    "SyncEvent",
    "UnknownEvent",
    "decode_frame",
]


_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$")
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


class FrameError(ValueError):
    """A frame that does not decode, or whose body is not the event its header says."""


@attrs.frozen
class OpRef:
    """One operation of a commit as the frame lists it (unverified until checked against the tree)."""

    action: str
    path: str
    cid: bytes | None


@attrs.frozen
class CommitEvent:
    seq: int
    repo: str
    rev: str
    since: str | None
    commit: bytes
    blocks: bytes
    ops: tuple[OpRef, ...]
    too_big: bool = False
    time: str | None = None
    prev_data: bytes | None = None  # Sync 1.1: the tree root (``data``) of the commit at ``since``
    # What a checking process found of this commit (``_checked.Checked``), or None: checked on use.
    checked: Any = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class SyncEvent:
    seq: int
    did: str
    rev: str
    blocks: bytes
    time: str | None = None


@attrs.frozen
class IdentityEvent:
    seq: int
    did: str
    handle: str | None
    time: str | None = None


@attrs.frozen
class AccountEvent:
    seq: int
    did: str
    active: bool
    status: str | None
    time: str | None = None


@attrs.frozen
class InfoEvent:
    name: str
    message: str | None


@attrs.frozen
class ErrorFrame:
    error: str
    message: str | None


@attrs.frozen
class UnknownEvent:
    """A message type this consumer does not know (older ``#handle``, ``#tombstone``...); skipped."""

    type: str
    seq: int | None


Event = CommitEvent | SyncEvent | IdentityEvent | AccountEvent | InfoEvent | ErrorFrame | UnknownEvent


def _get(body: dict, name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError(f"the field {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


def _did(body: dict, name: str) -> str:
    did = _get(body, name, str)
    if len(did) > 2048 or not _DID.match(did):
        raise FrameError(f"the field {name!r} is not a DID: {did[:100]!r}")
    return did


def _rev(body: dict, name: str, *, optional: bool = False) -> str | None:
    rev = _get(body, name, str, optional=optional)
    if rev is not None and not _TID.match(rev):
        raise FrameError(f"the field {name!r} is not a revision (a TID): {rev[:100]!r}")
    return rev


def _seq(body: dict) -> int:
    seq = _get(body, "seq", int)
    if seq < 0:
        raise FrameError(f"seq {seq} is negative")
    return seq


def _ops(body: dict) -> tuple[OpRef, ...]:
    ops = []
    for op in _get(body, "ops", list):
        if not isinstance(op, dict):
            raise FrameError("an op is not a map")
        action = _get(op, "action", str)
        if action not in ("create", "update", "delete"):
            raise FrameError(f"unknown op action {action[:40]!r}")
        ops.append(OpRef(action=action, path=_get(op, "path", str), cid=_get(op, "cid", bytes, optional=True)))
    return tuple(ops)


def decode_frame(data: bytes) -> Event:
    """The event one websocket message holds. Raises :class:`FrameError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError(f"a firehose frame is binary, got {type(data).__name__}")
    try:
        parts = libipld.decode_dag_cbor_multi(bytes(data))
    except (ValueError, RecursionError) as err:
        raise FrameError(f"the frame is not DAG-CBOR: {err}") from None
    if len(parts) != 2 or not isinstance(parts[0], dict) or not isinstance(parts[1], dict):
        raise FrameError(f"a frame is a header and a body, both maps; got {len(parts)} objects")
    header, body = parts
    op = header.get("op")
    if op == -1:
        return ErrorFrame(error=str(body.get("error") or "unknown"), message=_text(body.get("message")))
    if op != 1:
        raise FrameError(f"header op {op!r} is neither 1 nor -1")
    kind = header.get("t")
    if not isinstance(kind, str):
        raise FrameError("a message header names its type in 't'")
    if kind == "#commit":
        return CommitEvent(
            seq=_seq(body),
            repo=_did(body, "repo"),
            rev=_rev(body, "rev"),
            since=_rev(body, "since", optional=True),
            commit=_get(body, "commit", bytes),
            blocks=_get(body, "blocks", bytes),
            ops=_ops(body),
            too_big=body.get("tooBig") is True,
            time=_text(body.get("time")),
            prev_data=_get(body, "prevData", bytes, optional=True),
        )
    if kind == "#sync":
        return SyncEvent(seq=_seq(body), did=_did(body, "did"), rev=_rev(body, "rev"),
                         blocks=_get(body, "blocks", bytes), time=_text(body.get("time")))
    if kind == "#identity":
        return IdentityEvent(seq=_seq(body), did=_did(body, "did"), handle=_get(body, "handle", str, optional=True),
                             time=_text(body.get("time")))
    if kind == "#account":
        return AccountEvent(seq=_seq(body), did=_did(body, "did"), active=_get(body, "active", bool),
                            status=_get(body, "status", str, optional=True), time=_text(body.get("time")))
    if kind == "#info":
        return InfoEvent(name=_get(body, "name", str), message=_text(body.get("message")))
    seq = body.get("seq")
    return UnknownEvent(type=kind[:100], seq=seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None)


def _text(value: Any) -> str | None:
    return value[:1000] if isinstance(value, str) else None
