"""Repository signing keys and commit signatures.

A repository's signing key is the ``#atproto`` verification method of its DID
document: a ``Multikey`` whose ``publicKeyMultibase`` is ``z`` + base58btc of
a multicodec prefix (``0xe7`` secp256k1, ``0x1200`` P-256) and the compressed
point; older documents name the curve in the method's type and give the bare
point. A commit is signed over the sha-256 of its unsigned DAG-CBOR bytes with
ECDSA; the signature is the 64 bytes ``r || s``, and ``s`` must be in the
lower half of the curve order (low-S), so that nobody can make a second valid
signature of the same commit by negating it.

secp256k1 signatures (nearly every account's) are checked with libsecp256k1
through ``coincurve`` when it is installed (a dependency of this plugin): it
checks one about 9 times faster than OpenSSL's generic curve code here, which
otherwise bounds how many commits a second one core can verify. P-256, and
secp256k1 without ``coincurve``, go through ``cryptography``. Both refuse the
same signatures (low-S is checked before either is asked).
"""

from __future__ import annotations

from typing import Any

import attrs
import libipld
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["SigningKeyError", "SigningKey", "signing_key_of", "parse_multikey"]

_CURVES = {
    # multicodec prefix (varint) -> (name, curve, order)
    b"\xe7\x01": (
        "secp256k1",
        ec.SECP256K1(),
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    ),
    b"\x80\x24": (
        "p256",
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
}
_LEGACY_TYPES = {
    "EcdsaSecp256k1VerificationKey2019": b"\xe7\x01",
    "EcdsaSecp256r1VerificationKey2019": b"\x80\x24",
}


class SigningKeyError(ValueError):
    """A DID document names no usable signing key."""


@attrs.frozen
class SigningKey:
    """A repository's public signing key, ready to verify commits."""

    curve: str
    multibase: str
    _key: Any = attrs.field(repr=False, eq=False)
    _order: int = attrs.field(repr=False, eq=False)
    _fast: Any = attrs.field(default=None, repr=False, eq=False)  # a coincurve key, for secp256k1

    def verify(self, signed: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (64 bytes ``r || s``, low-S) signs ``signed`` with this key."""
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != 64:
            return False
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        if not (0 < r < self._order and 0 < s <= self._order // 2):
            return False
        if self._fast is not None:
            try:
                return bool(self._fast.verify(encode_dss_signature(r, s), bytes(signed)))
            except ValueError:
                return False
        try:
            self._key.verify(encode_dss_signature(r, s), bytes(signed), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def parse_multikey(multibase: str, *, legacy_type: str | None = None) -> SigningKey:
    """The key a ``publicKeyMultibase`` (or a ``did:key:`` identifier) holds."""
    if not isinstance(multibase, str):
        raise SigningKeyError("publicKeyMultibase is not a string")
    text = multibase.removeprefix("did:key:")
    if not text.startswith("z"):
        raise SigningKeyError(f"publicKeyMultibase {text[:60]!r} is not base58btc ('z...')")
    try:
        _, raw = libipld.decode_multibase(text)
    except ValueError as err:
        raise SigningKeyError(f"publicKeyMultibase {text[:60]!r} does not decode: {err}") from None
    prefix = raw[:2]
    if prefix in _CURVES:
        point = raw[2:]
    elif legacy_type in _LEGACY_TYPES:
        prefix, point = _LEGACY_TYPES[legacy_type], raw
    else:
        raise SigningKeyError(f"publicKeyMultibase {text[:60]!r} is neither a secp256k1 nor a P-256 key")
    name, curve, order = _CURVES[prefix]
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes(point))
    except ValueError as err:
        raise SigningKeyError(f"publicKeyMultibase {text[:60]!r} is not a point on {name}: {err}") from None
    return SigningKey(curve=name, multibase=text, key=key, order=order,
                      fast=_secp256k1_key(bytes(point)) if name == "secp256k1" else None)


_coincurve: Any = None


def _secp256k1_key(point: bytes) -> Any:
    """The point as a ``coincurve`` key, or None without ``coincurve`` (then ``cryptography`` verifies)."""
    global _coincurve
    if _coincurve is None:
        try:
            import coincurve
        except ImportError:
            _coincurve = False
        else:
            _coincurve = coincurve
    if _coincurve is False:
        return None
    try:
        return _coincurve.PublicKey(point)
    except (ValueError, TypeError):
        return None  # cryptography accepted the point; let it verify


def signing_key_of(document: Any, did: str) -> SigningKey:
    """The ``#atproto`` signing key of a DID document (its parsed JSON)."""
    methods = document.get("verificationMethod") if isinstance(document, dict) else None
    for method in methods if isinstance(methods, list) else ():
        if not isinstance(method, dict):
            continue
        if method.get("id") in ("#atproto", f"{did}#atproto"):
            return parse_multikey(method.get("publicKeyMultibase"), legacy_type=method.get("type"))
    raise SigningKeyError(f"the DID document of {did} has no #atproto verification method")
