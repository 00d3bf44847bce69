"""Signature algorithms and keys: Ed25519 (``cryptography``, the default) and SM2 (:mod:`.sm2`).

``cryptography`` is imported only when a key is made, loaded or used, so importing
:mod:`aigclabel.signing` (the service, the audit store and the CLI do) costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SignatureError
from . import sm2

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: SM2 public-key algorithm OID (GM/T 0006) and the SM3withSM2 signature OID (the guide's AlgID).
OID_SM2 = "1.2.156.10197.1.301"
OID_SM3_WITH_SM2 = "1.2.156.10197.1.501"
#: Ed25519 (RFC 8410) names both the key and the signature algorithm.
OID_ED25519 = "1.3.101.112"


class Algorithm(StrEnum):
    """Signature algorithms aigclabel writes and verifies."""

    ED25519 = "Ed25519"
    SM2 = "SM2"

    @property
    def key_oid(self) -> str:
        """OID written as the ``PubKey`` entry's ``AlgID``."""
        return OID_ED25519 if self is Algorithm.ED25519 else OID_SM2

    @property
    def signature_oid(self) -> str:
        """OID written as the ``DS`` entry's ``AlgID``."""
        return OID_ED25519 if self is Algorithm.ED25519 else OID_SM3_WITH_SM2

    @classmethod
    def parse(cls, name: str) -> Algorithm:
        """The algorithm for an OID or a name (case-insensitive); :class:`SignatureError` if unknown."""
        found = _ALG_NAMES.get(str(name).strip().lower())
        if found is None:
            raise SignatureError(f"unknown signature algorithm {name!r} (known: Ed25519, SM2/SM3withSM2)")
        return found


_ALG_NAMES = {
    "ed25519": Algorithm.ED25519,
    OID_ED25519: Algorithm.ED25519,
    "sm2": Algorithm.SM2,
    "sm3withsm2": Algorithm.SM2,
    "sm2-sm3": Algorithm.SM2,
    OID_SM2: Algorithm.SM2,
    OID_SM3_WITH_SM2: Algorithm.SM2,
}


@dataclass(frozen=True)
class PublicKey:
    """A verification key: Ed25519 (32 raw bytes) or SM2 (65 bytes, ``04 || x || y``)."""

    alg: Algorithm
    raw: bytes

    def __post_init__(self) -> None:
        if self.alg is Algorithm.ED25519:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            if len(self.raw) != 32:
                raise SignatureError(f"an Ed25519 public key is 32 bytes, not {len(self.raw)}")
            try:
                Ed25519PublicKey.from_public_bytes(self.raw)
            except ValueError as exc:
                raise SignatureError(f"not an Ed25519 public key: {exc}") from None
        else:
            if len(self.raw) != 65 or self.raw[0] != 4:
                raise SignatureError("an SM2 public key is 65 bytes: 04 || x || y")
            x, y = int.from_bytes(self.raw[1:33], "big"), int.from_bytes(self.raw[33:], "big")
            if not sm2.on_curve(x, y):
                raise SignatureError("SM2 public key is not a point on the SM2 curve")

    @classmethod
    def from_hex(cls, alg: Algorithm | str, value: str) -> PublicKey:
        """Parse a hex public key; :class:`SignatureError` if it is not one."""
        algorithm = alg if isinstance(alg, Algorithm) else Algorithm.parse(alg)
        try:
            raw = bytes.fromhex(value)
        except (ValueError, TypeError):
            raise SignatureError("public key is not hex") from None
        if algorithm is Algorithm.SM2 and len(raw) == 64:
            raw = b"\x04" + raw  # bare x || y, as some SM2 tools print it
        return cls(algorithm, raw)

    @property
    def hex(self) -> str:
        """The key in hex (SM2 with its ``04`` prefix)."""
        return self.raw.hex()

    @property
    def key_id(self) -> str:
        """Fingerprint used as ``KeyID``: the first 20 hex digits of SHA-256 over algorithm and key."""
        return hashlib.sha256(self.alg.value.encode() + b":" + self.raw).hexdigest()[:20]

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's signature over ``message``; never raises on a bad signature.

        An SM2 key raises :class:`~aigclabel.errors.MissingExtraError` when gmssl is not installed.
        """
        if self.alg is Algorithm.ED25519:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            try:
                Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            except (InvalidSignature, ValueError):
                return False
            return True
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        sm2.require()
        try:
            if len(signature) == 64:  # raw r || s
                r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            else:
                r, s = decode_dss_signature(signature)
        except ValueError:
            return False
        return sm2.verify(self.raw, message, r, s)


class SigningKey:
    """A private key that signs labels. Keep key files private (they are written mode 0600)."""

    _ed: Ed25519PrivateKey

    def __init__(self, alg: Algorithm, private: bytes) -> None:
        self.alg = alg
        if alg is Algorithm.ED25519:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            if len(private) != 32:
                raise SignatureError("an Ed25519 private key is 32 bytes")
            self._ed = Ed25519PrivateKey.from_private_bytes(private)
            public = self._ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            d = int.from_bytes(private, "big")
            if len(private) != 32 or not 1 <= d <= sm2.N - 2:
                raise SignatureError("an SM2 private key is a 32-byte integer in [1, n-2]")
            self._d = d
            public = sm2.public_from_private(d)
        self._private = private
        self.public_key = PublicKey(alg, public)

    @classmethod
    def generate(cls, alg: Algorithm | str = Algorithm.ED25519) -> SigningKey:
        """A fresh random key."""
        algorithm = alg if isinstance(alg, Algorithm) else Algorithm.parse(alg)
        if algorithm is Algorithm.ED25519:
            return cls(algorithm, secrets.token_bytes(32))
        return cls(algorithm, (secrets.randbelow(sm2.N - 2) + 1).to_bytes(32, "big"))

    @property
    def key_id(self) -> str:
        """The public key's fingerprint."""
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        """Signature over ``message``: 64 raw bytes (Ed25519) or DER ``SEQUENCE{r, s}`` (SM2)."""
        if self.alg is Algorithm.ED25519:
            return self._ed.sign(message)
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        return encode_dss_signature(*sm2.sign(self._d, self.public_key.raw, message))

    # -------------------------------------------------------------- files
    def to_dict(self) -> dict[str, str]:
        """JSON form of a private key file."""
        return {"type": "aigclabel-private-key", "alg": self.alg.value, "private_key": self._private.hex()}

    def save(self, path: Path | str) -> Path:
        """Write the key as JSON, readable by the owner only; refuses to overwrite."""
        target = Path(path)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")
        return target

    @classmethod
    def load(cls, path: Path | str) -> SigningKey:
        """Load a key saved by :meth:`save`, or an Ed25519 PKCS#8 PEM file."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise SignatureError(f"cannot read key file {path}: {exc.strerror}") from None
        if data.lstrip().startswith(b"-----BEGIN"):
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError) as exc:
                raise SignatureError(f"{path}: not an unencrypted PEM private key ({exc})") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise SignatureError(f"{path}: PEM keys must be Ed25519 (SM2 keys use the JSON key file)")
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            return cls(Algorithm.ED25519, raw)
        try:
            obj = json.loads(data)
            alg = Algorithm.parse(obj["alg"])
            private = bytes.fromhex(obj["private_key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SignatureError(f"{path}: not an aigclabel private key file ({type(exc).__name__})") from None
        return cls(alg, private)


def demo_signing_key(alg: Algorithm | str = Algorithm.ED25519) -> SigningKey:
    """The DEMO key pair for ``make demo`` and tests: deterministic and PUBLIC, never for real labels."""
    algorithm = alg if isinstance(alg, Algorithm) else Algorithm.parse(alg)
    seed = hashlib.sha256(f"aigclabel DEMO {algorithm.value} key - published, proves nothing".encode()).digest()
    if algorithm is Algorithm.SM2:
        seed = ((int.from_bytes(seed, "big") % (sm2.N - 2)) + 1).to_bytes(32, "big")
    return SigningKey(algorithm, seed)
