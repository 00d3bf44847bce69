"""Tamper-evident signatures in ReservedCode1 (producer) and ReservedCode2 (propagator).

GB 45438 Annex E f)/i) lets the producer and the propagator keep integrity data in the reserved
fields; the TC260 security practice guide (TC260-PG-202511A) gives it the ``SecurityData`` shape.
One module per job:

* :mod:`.security_data`: which fields each role signs, the exact signed bytes, the ``SecurityData``
  JSON written into the reserved field, :func:`sign` and :func:`payload_digest`;
* :mod:`.verification`: :func:`verify` / :func:`verify_fields`, which turn whatever a reserved field
  holds into a :class:`SignatureCheck` and never raise on hostile values;
* :mod:`.keys`: :class:`Algorithm`, :class:`PublicKey`, :class:`SigningKey` and their files;
* :mod:`.registry`: :class:`KeyRegistry`, which provider a key belongs to and whether it is pinned;
* :mod:`.sm2`: the SM2 curve checks around gmssl.

Algorithms: Ed25519 (``cryptography``; default) and SM2 with SM3 (OID 1.2.156.10197.1.501, the
guide's algorithm) via the optional ``gmssl`` (``aigclabel[sm2]``). Both are imported only when a key
is made or used; without gmssl, SM2 keys raise :class:`~aigclabel.errors.MissingExtraError` and SM2
signatures read as unverifiable.

A signature only says which key signed: only a key the operator *pinned* in the registry lets a
verifier say the label comes from the provider it names.
"""

from __future__ import annotations

from ..errors import KeyRegistryError, SignatureError
from .keys import OID_ED25519, OID_SM2, OID_SM3_WITH_SM2, Algorithm, PublicKey, SigningKey, demo_signing_key
from .registry import KeyRegistry, RegisteredKey, demo_registry
from .security_data import SECURITY_DATA_TYPE, Role, canonical_message, payload_digest, security_data, sign
from .verification import MAX_SIGNATURES, SignatureCheck, SignatureState, verify, verify_fields

__all__ = [
    "MAX_SIGNATURES",
    "OID_ED25519",
    "OID_SM2",
    "OID_SM3_WITH_SM2",
    "SECURITY_DATA_TYPE",
    "Algorithm",
    "KeyRegistry",
    "KeyRegistryError",
    "PublicKey",
    "RegisteredKey",
    "Role",
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
