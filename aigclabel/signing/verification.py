"""Checking a ReservedCode1/2 signature: what it proves, as a :class:`SignatureCheck` that never raises.

A signature only says which key signed. The :class:`~aigclabel.signing.KeyRegistry` maps provider
codes to public keys; only a key the operator *pinned* there lets a verifier say the label comes
from that provider. :func:`verify_fields` checks the producer's signature against the payload a
pinned propagator says it received when the propagator re-encoded the media (``SourceContentHash``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ..errors import MissingExtraError, SignatureError
from ..label import MAX_FIELD_LENGTH, AIGCLabel
from . import sm2
from .keys import Algorithm, PublicKey
from .registry import KeyRegistry
from .security_data import (
    CONTENT_HASH,
    RESERVED_FIELD,
    SECURITY_DATA_TYPE,
    SOURCE_CONTENT_HASH,
    Role,
    canonical_message,
    tbs_fields,
)

#: At most this many signature entries are checked per field (bounds work on hostile input).
MAX_SIGNATURES = 4


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
    field_name = RESERVED_FIELD[role]
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
    bound, source = _binding(bindings, CONTENT_HASH), _binding(bindings, SOURCE_CONTENT_HASH)
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
    expected_fields = tbs_fields(role, source_digest is not None)
    checks = [_check_one(entry, message, expected_fields, provider, registry, embedded) for entry in signatures]
    for state in (
        SignatureState.VALID,
        SignatureState.INVALID,
        SignatureState.UNKNOWN_KEY,
        SignatureState.UNVERIFIABLE,
    ):
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
    if alg is Algorithm.SM2 and not sm2.available():
        return SignatureState.UNVERIFIABLE, str(MissingExtraError("SM2", "sm2")), key_id, alg.value, False
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
            producer = replace(
                earlier,
                reason=f"{earlier.reason}; for the payload before {label.content_propagator} added a visible label "
                f"(attested by the pinned {RESERVED_FIELD['propagator']} key)",
            )
    return {"producer": producer, "propagator": propagator}
