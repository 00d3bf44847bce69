"""Tamper-evident signatures in ReservedCode1 (producer) and ReservedCode2 (propagator).

GB 45438 Annex E f)/i) lets the producer and the propagator keep integrity data in the reserved
fields; the TC260 security practice guide (TC260-PG-202511A) gives it the ``SecurityData`` shape
written here::

    {"SecurityData":{"Type":"TC260PG",
      "PubSD":[{"Type":"PubKey","KeyID":K,"AlgID":<key alg>,"KeyValue":<hex>},
               {"Type":"DS","KeyID":K,"AlgID":<sig alg>,
                "TBSData":{"Type":"Md","Fields":[...signed field names...]},
                "Signature":<hex>}],
      "Bindings":[{"Type":"ContentHash","Alg":"SHA256","Value":<hex>}]}}

**Signed bytes** (the guide's Annex A.1 form plus the content binding): the ASCII text of the
signed fields as JSON object members, in Annex E order, joined by ``,`` without braces or spaces,
followed by the content binding member::

    "Label":"1","ContentProducer":"001...","ProduceID":"abc","ContentHash":"SHA256:<64 hex>"

Each name and value is encoded by ``json.dumps(..., ensure_ascii=True)`` (so hostile values still
have one canonical form). The producer signs ``Label, ContentProducer, ProduceID``; the propagator
signs ``Label, ContentProducer, ProduceID, ReservedCode1, ContentPropagator, PropagateID``, so it
vouches for the producer's signature too. ``<64 hex>`` is :meth:`Container.payload_digest`: SHA-256
of the media payload without metadata. Metadata edits therefore leave signatures intact, payload
edits, labels moved to another file and labels re-used for another ProduceID all break them.

A propagator that re-encodes the media to burn in a visible label adds a second binding,
``{"Type":"SourceContentHash",...}`` (and ``,"SourceContentHash":"SHA256:<hex>"`` to its signed
bytes): the payload digest it received. :func:`verify_fields` then checks the producer's signature
against that earlier payload, but only when the propagator's key is pinned.

[UNCONFIRMED] The guide's exact ``TBSData`` members and content-binding selection are not public;
the ``Fields`` list, the ``SHA256:`` prefix and ``SourceContentHash`` are this toolkit's choice.

Algorithms: Ed25519 (``cryptography``; default) and SM2 with SM3 (OID 1.2.156.10197.1.501, the
guide's algorithm; GB/T 32918 with the default user ID ``1234567812345678``, DER signature) via
``gmssl``. gmssl is pure Python and little maintained, so it is used only for the curve arithmetic:
nonces come from :mod:`secrets` (gmssl's own use :mod:`random`), and public keys are checked to lie
on the curve and ``r``/``s`` to lie in range before gmssl sees them.

A signature only says which key signed. :class:`KeyRegistry` maps provider codes to public keys;
only a key the operator *pinned* there lets a verifier say the label comes from that provider.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ..errors import KeyRegistryError, MalformedFileError, SignatureError
from ..label import DEMO_PROVIDER_CODE, MAX_FIELD_LENGTH, AIGCLabel

Role = Literal["producer", "propagator"]

#: ``SecurityData.Type`` written and expected.
SECURITY_DATA_TYPE = "TC260PG"
#: SM2 public-key algorithm OID (GM/T 0006) and the SM3withSM2 signature OID (the guide's AlgID).
OID_SM2 = "1.2.156.10197.1.301"
OID_SM3_WITH_SM2 = "1.2.156.10197.1.501"
#: Ed25519 (RFC 8410) names both the key and the signature algorithm.
OID_ED25519 = "1.3.101.112"
#: SM2 default user ID (GB/T 32918.2 / GB/T 35276).
SM2_DEFAULT_USER_ID = b"1234567812345678"
#: At most this many signature entries are checked per field (bounds work on hostile input).
MAX_SIGNATURES = 4

_PRODUCER_FIELDS = ("Label", "ContentProducer", "ProduceID")
_PROPAGATOR_FIELDS = ("Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID")


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


# ---------------------------------------------------------------------------------------- SM2 math
class _SM2:
    """Curve constants (GB/T 32918.5) and the checks gmssl leaves out."""

    p = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
    a = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC", 16)
    b = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)
    n = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)

    @classmethod
    def on_curve(cls, x: int, y: int) -> bool:
        if not (0 <= x < cls.p and 0 <= y < cls.p):
            return False
        return (y * y - (x * x * x + cls.a * x + cls.b)) % cls.p == 0

    @staticmethod
    def crypt(private_hex: str, public_xy_hex: str) -> Any:
        from gmssl import sm2  # imported lazily: it pulls in pycryptodomex

        crypt = sm2.CryptSM2(private_key=private_hex, public_key="")
        # Set after construction: gmssl's constructor runs str.lstrip("04"), which also eats
        # leading "0"/"4" digits of the X coordinate.
        crypt.public_key = public_xy_hex
        return crypt

    @classmethod
    def public_from_private(cls, d: int) -> bytes:
        from gmssl import sm2

        crypt = cls.crypt(f"{d:064x}", "")
        xy: str = crypt._kg(d, sm2.default_ecc_table["g"])
        return b"\x04" + bytes.fromhex(xy)


# ---------------------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class PublicKey:
    """A verification key: Ed25519 (32 raw bytes) or SM2 (65 bytes, ``04 || x || y``)."""

    alg: Algorithm
    raw: bytes

    def __post_init__(self) -> None:
        if self.alg is Algorithm.ED25519:
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
            if not _SM2.on_curve(x, y):
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
        """True if ``signature`` is this key's signature over ``message``; never raises."""
        if self.alg is Algorithm.ED25519:
            try:
                Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            except (InvalidSignature, ValueError):
                return False
            return True
        try:
            if len(signature) == 64:  # raw r || s
                r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            else:
                r, s = decode_dss_signature(signature)
        except ValueError:
            return False
        if not (1 <= r < _SM2.n and 1 <= s < _SM2.n):
            return False
        crypt = _SM2.crypt("00", self.raw[1:].hex())
        try:
            return bool(crypt.verify_with_sm3(f"{r:064x}{s:064x}", message))
        except (ValueError, TypeError, ZeroDivisionError):
            return False


class SigningKey:
    """A private key that signs labels. Keep key files private (they are written mode 0600)."""

    def __init__(self, alg: Algorithm, private: bytes) -> None:
        self.alg = alg
        if alg is Algorithm.ED25519:
            if len(private) != 32:
                raise SignatureError("an Ed25519 private key is 32 bytes")
            self._ed = Ed25519PrivateKey.from_private_bytes(private)
            public = self._ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            d = int.from_bytes(private, "big")
            if len(private) != 32 or not 1 <= d <= _SM2.n - 2:
                raise SignatureError("an SM2 private key is a 32-byte integer in [1, n-2]")
            self._d = d
            public = _SM2.public_from_private(d)
        self._private = private
        self.public_key = PublicKey(alg, public)

    @classmethod
    def generate(cls, alg: Algorithm | str = Algorithm.ED25519) -> SigningKey:
        """A fresh random key."""
        algorithm = alg if isinstance(alg, Algorithm) else Algorithm.parse(alg)
        if algorithm is Algorithm.ED25519:
            return cls(algorithm, secrets.token_bytes(32))
        return cls(algorithm, (secrets.randbelow(_SM2.n - 2) + 1).to_bytes(32, "big"))

    @property
    def key_id(self) -> str:
        """The public key's fingerprint."""
        return self.public_key.key_id

    def sign(self, message: bytes) -> bytes:
        """Signature over ``message``: 64 raw bytes (Ed25519) or DER ``SEQUENCE{r, s}`` (SM2)."""
        if self.alg is Algorithm.ED25519:
            return self._ed.sign(message)
        crypt = _SM2.crypt(f"{self._d:064x}", self.public_key.raw[1:].hex())
        while True:
            nonce = secrets.randbelow(_SM2.n - 1) + 1
            raw: str | None = crypt.sign_with_sm3(message, f"{nonce:064x}")
            if raw:
                return encode_dss_signature(int(raw[:64], 16), int(raw[64:], 16))

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


def _demo_key(alg: Algorithm) -> SigningKey:
    seed = hashlib.sha256(f"aigclabel DEMO {alg.value} key - published, proves nothing".encode()).digest()
    if alg is Algorithm.SM2:
        seed = ((int.from_bytes(seed, "big") % (_SM2.n - 2)) + 1).to_bytes(32, "big")
    return SigningKey(alg, seed)


def demo_signing_key(alg: Algorithm | str = Algorithm.ED25519) -> SigningKey:
    """The DEMO key pair for ``make demo`` and tests: deterministic and PUBLIC, never for real labels."""
    return _demo_key(alg if isinstance(alg, Algorithm) else Algorithm.parse(alg))


# ---------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class RegisteredKey:
    """One registry entry: which provider a public key belongs to, and whether the operator pinned it."""

    provider: str
    public_key: PublicKey
    pinned: bool = True
    note: str = ""

    @property
    def key_id(self) -> str:
        """The key's fingerprint."""
        return self.public_key.key_id

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in registry files."""
        return {
            "provider": self.provider,
            "alg": self.public_key.alg.value,
            "public_key": self.public_key.hex,
            "key_id": self.key_id,
            "pinned": self.pinned,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegisteredKey:
        """Parse one entry; :class:`KeyRegistryError` if it is incomplete or its key_id is wrong."""
        try:
            provider = str(data["provider"])
            public = PublicKey.from_hex(str(data["alg"]), str(data["public_key"]))
        except KeyError as exc:
            raise KeyRegistryError(f"registry entry lacks {exc.args[0]!r}") from None
        except SignatureError as exc:
            raise KeyRegistryError(f"registry entry for {data.get('provider')!r}: {exc}") from None
        claimed = data.get("key_id")
        if claimed is not None and claimed != public.key_id:
            raise KeyRegistryError(f"registry entry key_id {claimed!r} does not match its key ({public.key_id})")
        pinned = data.get("pinned", True)
        if not isinstance(pinned, bool):
            raise KeyRegistryError("registry entry 'pinned' must be true or false")
        return cls(provider, public, pinned, str(data.get("note", "")))


@dataclass
class KeyRegistry:
    """Provider code -> public keys. Load it from JSON or TOML files, or from the audit store."""

    entries: list[RegisteredKey] = field(default_factory=list)

    def add(self, provider: str, public_key: PublicKey, *, pinned: bool = True, note: str = "") -> RegisteredKey:
        """Register ``public_key`` for ``provider`` (idempotent)."""
        entry = RegisteredKey(provider, public_key, pinned, note)
        for existing in self.entries:
            if existing.key_id == entry.key_id and existing.provider != provider:
                raise KeyRegistryError(f"key {entry.key_id} is already registered to {existing.provider}")
        self.entries = [e for e in self.entries if not (e.key_id == entry.key_id and e.provider == provider)]
        self.entries.append(entry)
        return entry

    def find(self, provider: str, key_id: str) -> RegisteredKey | None:
        """The entry for ``key_id`` registered to ``provider``, if any."""
        return next((e for e in self.entries if e.provider == provider and e.key_id == key_id), None)

    def by_key_id(self, key_id: str) -> RegisteredKey | None:
        """The entry for ``key_id`` whatever its provider."""
        return next((e for e in self.entries if e.key_id == key_id), None)

    def keys_of(self, provider: str) -> list[RegisteredKey]:
        """Every key registered to ``provider``."""
        return [e for e in self.entries if e.provider == provider]

    def merge(self, other: KeyRegistry) -> KeyRegistry:
        """Add every entry of ``other``; returns self."""
        for entry in other.entries:
            self.add(entry.provider, entry.public_key, pinned=entry.pinned, note=entry.note)
        return self

    def __iter__(self) -> Iterator[RegisteredKey]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of a registry file."""
        return {"keys": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRegistry:
        """Parse ``{"keys": [...]}``."""
        keys = data.get("keys")
        if not isinstance(keys, list):
            raise KeyRegistryError('a key registry is an object with a "keys" array')
        registry = cls()
        for item in keys:
            if not isinstance(item, Mapping):
                raise KeyRegistryError("each registry entry must be an object")
            entry = RegisteredKey.from_dict(item)
            registry.add(entry.provider, entry.public_key, pinned=entry.pinned, note=entry.note)
        return registry

    @classmethod
    def load(cls, path: Path | str) -> KeyRegistry:
        """Read a ``.json`` or ``.toml`` registry file (TOML: an array of ``[[keys]]`` tables)."""
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyRegistryError(f"cannot read key registry {target}: {exc}") from None
        try:
            data = tomllib.loads(text) if target.suffix.lower() == ".toml" else json.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise KeyRegistryError(f"{target}: not valid {target.suffix.lstrip('.') or 'JSON'}: {exc}") from None
        if not isinstance(data, Mapping):
            raise KeyRegistryError(f"{target}: a key registry is an object with a keys array")
        return cls.from_dict(data)

    def save(self, path: Path | str) -> Path:
        """Write the registry as JSON (public keys only; safe to publish)."""
        target = Path(path)
        from .._io import atomic_output

        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target


def demo_registry() -> KeyRegistry:
    """A registry holding only the DEMO keys, unpinned: they verify, but prove nothing."""
    registry = KeyRegistry()
    for alg in Algorithm:
        registry.add(
            DEMO_PROVIDER_CODE, demo_signing_key(alg).public_key, pinned=False, note="DEMO key: public, proves nothing"
        )
    return registry


# ---------------------------------------------------------------------------------------- messages
def _fields_for(role: Role) -> tuple[str, ...]:
    return _PRODUCER_FIELDS if role == "producer" else _PROPAGATOR_FIELDS


def canonical_message(label: AIGCLabel, content_digest: bytes, role: Role, source_digest: bytes | None = None) -> bytes:
    """The exact bytes signed for ``role`` (see the module docstring).

    ``source_digest`` (propagator only) is the payload digest *before* the propagator re-encoded the
    media to add a visible label; it is appended as ``,"SourceContentHash":"SHA256:<hex>"``.
    """
    values = label.to_dict()
    members = [f"{json.dumps(name)}:{json.dumps(values[name], ensure_ascii=True)}" for name in _fields_for(role)]
    members.append(f'"ContentHash":"SHA256:{content_digest.hex()}"')
    if source_digest is not None:
        members.append(f'"SourceContentHash":"SHA256:{source_digest.hex()}"')
    return ",".join(members).encode("ascii")


def _tbs_fields(role: Role, with_source: bool) -> list[str]:
    return [*_fields_for(role), "ContentHash", *(["SourceContentHash"] if with_source else [])]


def security_data(
    label: AIGCLabel,
    content_digest: bytes,
    key: SigningKey,
    role: Role = "producer",
    source_digest: bytes | None = None,
) -> str:
    """The ReservedCode1/2 value: a compact ``SecurityData`` JSON signing ``label`` for ``role``."""
    if len(content_digest) != 32 or (source_digest is not None and len(source_digest) != 32):
        raise SignatureError("content digests must be 32-byte SHA-256 values")
    if source_digest is not None and role != "propagator":
        raise SignatureError("only a propagator binds a source content hash")
    signature = key.sign(canonical_message(label, content_digest, role, source_digest))
    bindings = [{"Type": "ContentHash", "Alg": "SHA256", "Value": content_digest.hex()}]
    if source_digest is not None:
        bindings.append({"Type": "SourceContentHash", "Alg": "SHA256", "Value": source_digest.hex()})
    body = {
        "SecurityData": {
            "Type": SECURITY_DATA_TYPE,
            "PubSD": [
                {"Type": "PubKey", "KeyID": key.key_id, "AlgID": key.alg.key_oid, "KeyValue": key.public_key.hex},
                {
                    "Type": "DS",
                    "KeyID": key.key_id,
                    "AlgID": key.alg.signature_oid,
                    "TBSData": {"Type": "Md", "Fields": _tbs_fields(role, source_digest is not None)},
                    "Signature": signature.hex(),
                },
            ],
            "Bindings": bindings,
        }
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=True)
    if len(text) > MAX_FIELD_LENGTH:  # pragma: no cover - fixed-size members keep it near 600
        raise SignatureError(f"SecurityData is {len(text)} characters, over the {MAX_FIELD_LENGTH} limit")
    return text


def sign(
    label: AIGCLabel,
    content_digest: bytes,
    key: SigningKey,
    role: Role = "producer",
    source_digest: bytes | None = None,
) -> AIGCLabel:
    """``label`` with its ReservedCode1 (producer) or ReservedCode2 (propagator) set to a signature.

    A propagator that re-encoded the media (visible label) passes the old payload digest as
    ``source_digest``, vouching that the producer's signature matched the content it received.
    """
    from dataclasses import replace

    if role == "propagator" and not (label.content_propagator and label.propagate_id):
        raise SignatureError("a propagator signature needs ContentPropagator and PropagateID set first")
    if role == "producer" and not (label.content_producer and label.produce_id):
        raise SignatureError("a producer signature needs ContentProducer and ProduceID")
    value = security_data(label, content_digest, key, role, source_digest)
    made = replace(label, reserved_code1=value) if role == "producer" else replace(label, reserved_code2=value)
    made.validate()
    return made


def payload_digest(path: Path | str) -> bytes:
    """The file's metadata-independent payload digest from its container module.

    Raises :class:`~aigclabel.errors.UnsupportedFormatError` when the format has none, and
    :class:`~aigclabel.errors.MalformedFileError` on a corrupt file.
    """
    from ..api import _guarded
    from ..containers import open_container

    target = Path(path)
    container = open_container(target)
    digest = _guarded(target, container, lambda: container.payload_digest(target))
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise MalformedFileError(f"{container.description} payload digest is not a 32-byte SHA-256")
    return digest


# ---------------------------------------------------------------------------------------- verification
class SignatureState(StrEnum):
    """Outcome of checking one reserved field."""

    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN_KEY = "unknown-key"
    UNSIGNED = "unsigned"
    UNVERIFIABLE = "unverifiable"


@dataclass(frozen=True)
class SignatureCheck:
    """What one ReservedCode field's signature says. ``proves_origin`` needs a pinned key."""

    field: str
    state: SignatureState
    reason: str
    key_id: str | None = None
    alg: str | None = None
    provider: str | None = None
    pinned: bool = False
    #: Propagator only: the signed pre-re-encoding payload digest (hex), when one is bound.
    source_digest: str | None = None

    @property
    def proves_origin(self) -> bool:
        """True only for a valid signature by a key the operator pinned for the claimed provider."""
        return self.state is SignatureState.VALID and self.pinned

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "field": self.field,
            "state": self.state.value,
            "reason": self.reason,
            "key_id": self.key_id,
            "alg": self.alg,
            "provider": self.provider,
            "pinned": self.pinned,
            "proves_origin": self.proves_origin,
            "source_digest": self.source_digest,
        }


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def verify(
    label: AIGCLabel, content_digest: bytes | None, registry: KeyRegistry | None = None, role: Role = "producer"
) -> SignatureCheck:
    """Check the signature in ReservedCode1 (``producer``) or ReservedCode2 (``propagator``).

    Never raises on hostile values: everything wrong with the field becomes a state and a reason.
    ``content_digest`` is ``None`` when the file's format has no payload digest.
    """
    field_name = "ReservedCode1" if role == "producer" else "ReservedCode2"
    provider = label.content_producer if role == "producer" else label.content_propagator
    value = label.reserved_code1 if role == "producer" else label.reserved_code2
    registry = registry if registry is not None else KeyRegistry()

    def result(state: SignatureState, reason: str, **extra: Any) -> SignatureCheck:
        return SignatureCheck(field_name, state, reason, provider=provider or None, **extra)

    if not value:
        return result(SignatureState.UNSIGNED, f"{field_name} is empty")
    if len(value) > MAX_FIELD_LENGTH:
        return result(SignatureState.INVALID, f"{field_name} is {len(value)} characters, over {MAX_FIELD_LENGTH}")
    if not value.lstrip().startswith("{"):
        return result(SignatureState.UNVERIFIABLE, f"{field_name} holds no TC260 SecurityData (another scheme)")
    try:
        data = json.loads(value, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as exc:
        return result(SignatureState.INVALID, f"{field_name} is malformed JSON: {exc}")
    sd = data.get("SecurityData") if isinstance(data, dict) else None
    if sd is None:
        return result(SignatureState.UNVERIFIABLE, f"{field_name} is JSON without SecurityData (another scheme)")
    if not isinstance(sd, dict) or sd.get("Type") != SECURITY_DATA_TYPE:
        return result(SignatureState.INVALID, f"SecurityData is not an object of Type {SECURITY_DATA_TYPE}")
    entries, bindings = sd.get("PubSD"), sd.get("Bindings")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return result(SignatureState.INVALID, "SecurityData.PubSD must be an array of objects")
    signatures = [e for e in entries if e.get("Type") == "DS"]
    if not signatures:
        return result(SignatureState.INVALID, "SecurityData has no DS (signature) entry")
    if len(signatures) > MAX_SIGNATURES:
        return result(SignatureState.INVALID, f"SecurityData has {len(signatures)} signatures (limit {MAX_SIGNATURES})")
    bound, source = _binding(bindings, "ContentHash"), _binding(bindings, "SourceContentHash")
    source_digest: bytes | None = None
    if source is not None:
        try:
            source_digest = bytes.fromhex(source)
        except ValueError:
            source_digest = b""
        if role != "propagator" or len(source_digest) != 32:
            return result(SignatureState.INVALID, "SourceContentHash binding is malformed or misplaced")
    if not isinstance(bound, str):
        return result(SignatureState.INVALID, "SecurityData binds no SHA256 ContentHash")
    if content_digest is None:
        return result(
            SignatureState.UNVERIFIABLE, "this format has no payload digest, so the binding cannot be checked"
        )
    if not secrets.compare_digest(bound.lower(), content_digest.hex()):
        return result(
            SignatureState.INVALID,
            "content hash does not match this file's payload (payload edited, or label moved from another file)",
        )
    embedded: dict[str, PublicKey] = {}
    for entry in entries:
        if entry.get("Type") == "PubKey":
            try:
                key = PublicKey.from_hex(str(entry.get("AlgID")), str(entry.get("KeyValue")))
            except SignatureError:
                continue
            if key.key_id == entry.get("KeyID"):
                embedded[key.key_id] = key
    message = canonical_message(label, content_digest, role, source_digest)
    expected_fields = _tbs_fields(role, source_digest is not None)
    checks = [_check_one(entry, message, expected_fields, provider, registry, embedded) for entry in signatures]
    for state in (SignatureState.VALID, SignatureState.INVALID, SignatureState.UNKNOWN_KEY):
        for check in checks:
            if check[0] is state:
                return result(
                    state,
                    check[1],
                    key_id=check[2],
                    alg=check[3],
                    pinned=check[4],
                    source_digest=source_digest.hex() if source_digest and state is SignatureState.VALID else None,
                )
    return result(SignatureState.INVALID, "no usable signature")  # pragma: no cover - checks is non-empty


def _binding(bindings: object, kind: str) -> str | None:
    if not isinstance(bindings, list):
        return None
    for item in bindings:
        if isinstance(item, dict) and item.get("Type") == kind and item.get("Alg") == "SHA256":
            value = item.get("Value")
            return value if isinstance(value, str) else None
    return None


def _check_one(
    entry: dict[str, Any],
    message: bytes,
    expected_fields: list[str],
    provider: str,
    registry: KeyRegistry,
    embedded: dict[str, PublicKey],
) -> tuple[SignatureState, str, str | None, str | None, bool]:
    key_id = entry.get("KeyID")
    key_id = key_id if isinstance(key_id, str) else None
    try:
        alg = Algorithm.parse(str(entry.get("AlgID")))
    except SignatureError as exc:
        return SignatureState.INVALID, str(exc), key_id, None, False
    tbs = entry.get("TBSData")
    if not isinstance(tbs, dict) or tbs.get("Type") != "Md" or tbs.get("Fields") != expected_fields:
        return SignatureState.INVALID, f"TBSData does not name the fields {expected_fields}", key_id, alg.value, False
    try:
        signature = bytes.fromhex(str(entry.get("Signature")))
    except ValueError:
        return SignatureState.INVALID, "Signature is not hex", key_id, alg.value, False
    if key_id is None:
        return SignatureState.INVALID, "signature entry has no KeyID", None, alg.value, False
    registered = registry.find(provider, key_id)
    if registered is not None:
        if registered.public_key.alg is not alg:
            return SignatureState.INVALID, "AlgID differs from the registered key's algorithm", key_id, alg.value, False
        if registered.public_key.verify(message, signature):
            how = "pinned key" if registered.pinned else "registered but unpinned key (integrity only, not origin)"
            note = f" ({registered.note})" if registered.note else ""
            return SignatureState.VALID, f"signed by {how} {key_id}{note}", key_id, alg.value, registered.pinned
        return (
            SignatureState.INVALID,
            "signature does not verify (label fields edited or forged)",
            key_id,
            alg.value,
            False,
        )
    elsewhere = registry.by_key_id(key_id)
    if elsewhere is not None:
        return (
            SignatureState.INVALID,
            f"key {key_id} belongs to provider {elsewhere.provider}, not {provider or '(empty)'}",
            key_id,
            alg.value,
            False,
        )
    if any(e.pinned for e in registry.keys_of(provider)):
        return (
            SignatureState.INVALID,
            f"provider {provider} has pinned keys and {key_id} is not one of them (forged signature)",
            key_id,
            alg.value,
            False,
        )
    key = embedded.get(key_id)
    if key is not None and key.alg is alg:
        if not key.verify(message, signature):
            return (
                SignatureState.INVALID,
                "signature does not verify against its embedded key",
                key_id,
                alg.value,
                False,
            )
        return (
            SignatureState.UNKNOWN_KEY,
            "consistent with its embedded key, but the key is not in the registry: proves neither origin nor integrity",
            key_id,
            alg.value,
            False,
        )
    return SignatureState.UNKNOWN_KEY, f"key {key_id} is not in the registry", key_id, alg.value, False


def verify_fields(
    label: AIGCLabel, content_digest: bytes | None, registry: KeyRegistry | None = None
) -> dict[Role, SignatureCheck]:
    """Both reserved fields checked: ``{"producer": ..., "propagator": ...}``.

    When a propagator signature by a *pinned* key binds a ``SourceContentHash`` (the propagator re-encoded the
    media to add a visible label), the producer's signature is checked against that earlier payload
    and, if it matches, reported valid with a note saying so.
    """
    propagator = verify(label, content_digest, registry, "propagator")
    producer = verify(label, content_digest, registry, "producer")
    if (
        producer.state is SignatureState.INVALID
        and "content hash" in producer.reason
        and propagator.proves_origin  # only a pinned propagator may vouch for an earlier payload
        and propagator.source_digest
    ):
        earlier = verify(label, bytes.fromhex(propagator.source_digest), registry, "producer")
        if earlier.state is SignatureState.VALID:
            from dataclasses import replace

            producer = replace(
                earlier,
                reason=f"{earlier.reason}; for the payload before {label.content_propagator} added a visible label "
                "(attested by the pinned ReservedCode2 key)",
            )
    return {"producer": producer, "propagator": propagator}


__all__ = [
    "Algorithm",
    "KeyRegistry",
    "KeyRegistryError",
    "PublicKey",
    "RegisteredKey",
    "SignatureCheck",
    "SignatureError",
    "SignatureState",
    "SigningKey",
    "canonical_message",
    "demo_registry",
    "demo_signing_key",
    "payload_digest",
    "security_data",
    "sign",
    "verify",
    "verify_fields",
]
