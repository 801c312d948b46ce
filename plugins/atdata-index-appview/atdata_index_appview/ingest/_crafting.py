"""Repositories, commits, CARs and firehose frames built by hand, and loopback servers for them.

For tests of what ingestion accepts and refuses: a real PDS cannot be made to
sign with the wrong key or to send a block that does not match its CID. A
:class:`CraftedRepo` is an account of its own (a ``did:web`` on a loopback
port, with a signing key made here), whose commits can be damaged on the way
out; :func:`serve_repo` serves its DID document, ``getRepo`` and
``listRepos`` like a PDS, and :func:`serve_frames` plays frames to a
subscriber like a firehose.

Not used by the service. The encoder writes canonical DAG-CBOR with CID links
marked explicitly (:class:`Link`): libipld's encoder guesses that any bytes
that parse as a CID are a link, which a test of byte fields cannot have.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

__all__ = [
    "CraftedRepo",
    "Link",
    "Signer",
    "car_bytes",
    "cid_of",
    "encode",
    "frame",
    "serve_frames",
    "serve_repo",
]

_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_ORDERS = {
    "secp256k1": (ec.SECP256K1(), b"\xe7\x01", 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141),
    "p256": (ec.SECP256R1(), b"\x80\x24", 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
}
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


@attrs.frozen
class Link:
    """A CID link (DAG-CBOR tag 42) to the block with raw CID ``cid``."""

    cid: bytes


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def encode(value: Any) -> bytes:
    """Canonical DAG-CBOR of ``value`` (dict, list, str, bytes, int, bool, None, :class:`Link`, float)."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        import struct

        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, Link):
        return b"\xd8\x2a" + _head(2, len(value.cid) + 1) + b"\x00" + value.cid
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: (len(key.encode("utf-8")), key.encode("utf-8")))
        return _head(5, len(keys)) + b"".join(encode(key) + encode(value[key]) for key in keys)
    raise TypeError(f"cannot encode {type(value).__name__} as DAG-CBOR")


def cid_of(block: bytes, codec: int = 0x71) -> bytes:
    """The raw CIDv1 (sha2-256) of ``block``."""
    return b"\x01" + _varint(codec) + b"\x12\x20" + hashlib.sha256(block).digest()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def car_bytes(roots: Iterable[bytes], blocks: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A CAR v1 file of ``blocks`` (``(raw CID, bytes)``; the CID is written as given, right or not)."""
    header = encode({"version": 1, "roots": [Link(root) for root in roots]})
    parts = [_varint(len(header)), header]
    for cid, block in blocks:
        parts += [_varint(len(cid) + len(block)), cid, block]
    return b"".join(parts)


def frame(kind: str, body: dict) -> bytes:
    """A firehose frame: ``kind`` ``"#commit"``..., or ``"error"`` for an error frame."""
    header = {"op": -1} if kind == "error" else {"op": 1, "t": kind}
    return encode(header) + encode(body)


def _base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = _B58[rest] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


class Signer:
    """A signing key (deterministic from ``seed``) on ``curve`` (``secp256k1`` or ``p256``)."""

    def __init__(self, seed: int = 1, curve: str = "secp256k1"):
        self.curve_name = curve
        self._curve, self._prefix, self._order = _ORDERS[curve]
        self._key = ec.derive_private_key(seed, self._curve)

    @property
    def multikey(self) -> str:
        point = self._key.public_key().public_bytes(
            encoding=_serialization().Encoding.X962, format=_serialization().PublicFormat.CompressedPoint
        )
        return "z" + _base58(self._prefix + point)

    def sign(self, data: bytes, *, high_s: bool = False) -> bytes:
        """``r || s`` over sha-256 of ``data``; low-S unless ``high_s`` (which a verifier must refuse)."""
        r, s = decode_dss_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))
        if (s > self._order // 2) != high_s:
            s = self._order - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def tid(number: int) -> str:
    """A 13-character TID whose order is the order of ``number``."""
    out = ""
    for _ in range(13):
        number, rest = divmod(number, 32)
        out = _TID_ALPHABET[rest] + out
    return out


@attrs.frozen
class Commit:
    """One commit of a :class:`CraftedRepo`: its CID, the blocks of its CAR slice and what it did."""

    cid: bytes
    rev: str
    since: str | None
    blocks: tuple[tuple[bytes, bytes], ...]
    ops: tuple[dict, ...]
    data: bytes | None = None  # the tree root this commit signs
    prev_data: bytes | None = None  # the tree root of the commit before it (Sync 1.1 ``prevData``)

    def car(self) -> bytes:
        return car_bytes([self.cid], self.blocks)


class CraftedRepo:
    """A repository kept in memory, one MST node deep, committed and signed here.

    ``did`` is set by :func:`serve_repo` (a ``did:web`` of its loopback port)
    unless given.
    """

    def __init__(self, did: str | None = None, signer: Signer | None = None, *, handle: str | None = None):
        self.did = did
        self.signer = signer or Signer()
        self.handle = handle
        self.pds_url: str | None = None
        self.records: dict[str, tuple[bytes, bytes]] = {}  # path -> (cid, block)
        self.rev: str | None = None
        self._clock = 1_700_000_000_000_000 << 10
        self.head: Commit | None = None
        self.all_blocks: dict[bytes, bytes] = {}

    def document(self) -> dict:
        doc: dict[str, Any] = {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": self.did,
            "verificationMethod": [
                {"id": f"{self.did}#atproto", "type": "Multikey", "controller": self.did,
                 "publicKeyMultibase": self.signer.multikey}
            ],
            "service": [
                {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": self.pds_url}
            ],
        }
        if self.handle:
            doc["alsoKnownAs"] = [f"at://{self.handle}"]
        return doc

    def _tree(self) -> tuple[bytes, bytes]:
        entries, previous = [], b""
        for path in sorted(self.records):
            key = path.encode("utf-8")
            prefix = 0
            while prefix < min(len(key), len(previous)) and key[prefix] == previous[prefix]:
                prefix += 1
            entries.append({"p": prefix, "k": key[prefix:], "v": Link(self.records[path][0]), "t": None})
            previous = key
        node = encode({"l": None, "e": entries})
        return cid_of(node), node

    def commit(
        self, writes: Iterable[tuple[str, str, Any]] = (), *, signer: Signer | None = None, high_s: bool = False
    ) -> Commit:
        """Apply ``writes`` (``(action, path, record or None)``; a record is a dict to encode, or
        the bytes of a block) and sign a new commit, with ``signer`` instead of the repository's
        own key to forge one."""
        ops, changed = [], []
        for action, path, record in writes:
            if action == "delete":
                self.records.pop(path, None)
                ops.append({"action": "delete", "path": path, "cid": None})
                continue
            block = record if isinstance(record, bytes) else encode(record)
            cid = cid_of(block)
            self.records[path] = (cid, block)
            changed.append((cid, block))
            ops.append({"action": action, "path": path, "cid": cid})
        root, node = self._tree()
        self._clock += 1 << 10
        since, self.rev = self.rev, tid(self._clock)
        unsigned = {"did": self.did, "version": 3, "data": Link(root), "rev": self.rev, "prev": None}
        signature = (signer or self.signer).sign(encode(unsigned), high_s=high_s)
        block = encode({**unsigned, "sig": signature})
        cid = cid_of(block)
        blocks = ((cid, block), (root, node), *changed)
        self.all_blocks.update(dict(blocks))
        prev_data = self.head.data if self.head is not None else None
        self.head = Commit(cid=cid, rev=self.rev, since=since, blocks=blocks, ops=tuple(ops), data=root,
                           prev_data=prev_data)
        return self.head

    def fork(self) -> CraftedRepo:
        """A copy (same key) to forge commits on without changing this repository."""
        other = CraftedRepo(self.did, self.signer, handle=self.handle)
        other.pds_url, other.rev, other._clock, other.head = self.pds_url, self.rev, self._clock, self.head
        other.records, other.all_blocks = dict(self.records), dict(self.all_blocks)
        return other

    def commit_body(self, commit: Commit, seq: int, *, blocks: bytes | None = None, **extra: Any) -> dict:
        """The ``#commit`` body announcing ``commit`` (``blocks`` replaces its CAR; ``prevData=None``
        leaves Sync 1.1's field out, a raw CID puts another one in)."""
        body = {
            "seq": seq, "rebase": False, "tooBig": False, "repo": self.did, "commit": Link(commit.cid),
            "rev": commit.rev, "since": commit.since, "blocks": commit.car() if blocks is None else blocks,
            "ops": [{**op, "cid": Link(op["cid"]) if op["cid"] else None} for op in commit.ops],
            "blobs": [], "time": "2024-01-01T00:00:00.000Z",
        }
        if commit.prev_data is not None:
            body["prevData"] = Link(commit.prev_data)
        body.update(extra)
        if isinstance(body.get("prevData"), bytes):
            body["prevData"] = Link(body["prevData"])
        elif body.get("prevData") is None:
            body.pop("prevData", None)
        return body

    def commit_frame(self, commit: Commit, seq: int, **changes: Any) -> bytes:
        return frame("#commit", self.commit_body(commit, seq, **changes))

    def repo_car(self) -> bytes:
        """The whole repository as ``getRepo`` returns it."""
        assert self.head is not None, "commit first"
        root, node = self._tree()
        blocks = [(self.head.cid, self.head.blocks[0][1]), (root, node), *self.records.values()]
        return car_bytes([self.head.cid], blocks)


@contextmanager
def serve_repo(repo: CraftedRepo) -> Iterator[str]:
    """Serve ``repo`` on a loopback port as its own PDS and ``did:web`` host; yields the base URL.

    Answers ``/.well-known/did.json``, ``com.atproto.sync.getRepo`` and
    ``com.atproto.sync.listRepos``.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path == "/.well-known/did.json":
                self._send(200, "application/json", json.dumps(repo.document()).encode())
            elif parts.path == "/xrpc/com.atproto.sync.getRepo" and query.get("did") == [repo.did]:
                self._send(200, "application/vnd.ipld.car", repo.repo_car())
            elif parts.path == "/xrpc/com.atproto.sync.listRepos":
                body = {"repos": [{"did": repo.did, "head": "", "rev": repo.rev, "active": True}]}
                self._send(200, "application/json", json.dumps(body).encode())
            else:
                self._send(404, "application/json", b'{"error": "NotFound", "message": "nothing here"}')

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    url = f"http://localhost:{port}"
    repo.did = repo.did or f"did:web:{quote(f'localhost:{port}')}"
    repo.pds_url = url
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="crafted PDS", daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve_frames(frames: list[tuple[int | None, bytes | str]]) -> Iterator[str]:
    """A firehose on a loopback port playing ``frames`` (``(seq, message)``); yields its base URL.

    A subscriber with ``cursor=n`` gets the frames whose seq is above ``n``
    (and those without a seq that follow one of them), then the connection stays open; a cursor above
    every seq is answered with a ``FutureCursor`` error, as a PDS does. Frames
    added to the list later are sent to subscribers that connect later.
    """
    from websockets.sync.server import serve

    def handler(websocket: Any) -> None:
        query = parse_qs(urlsplit(websocket.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        playing = list(frames)
        last = max((seq for seq, _ in playing if seq is not None), default=0)
        if cursor is not None and cursor > last:
            websocket.send(frame("error", {"error": "FutureCursor", "message": "Cursor in the future."}))
            websocket.close()
            return
        position = 0.0
        for seq, message in playing:
            # A frame without a seq sits just after the frame before it.
            position = seq if seq is not None else position + 0.5
            if cursor is None or position > cursor:
                websocket.send(message)
        try:
            for _ in websocket:
                pass
        except Exception:
            pass

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.socket.getsockname()[1]
        thread = threading.Thread(target=server.serve_forever, name="crafted firehose", daemon=True)
        thread.start()
        try:
            yield f"http://localhost:{port}"
        finally:
            server.shutdown()
            thread.join(timeout=5)
