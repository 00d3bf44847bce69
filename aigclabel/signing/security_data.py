"""The ``SecurityData`` value of ReservedCode1/2: what is signed, and the JSON that carries the signature.

GB 45438 Annex E f)/i) lets the producer and the propagator keep integrity data in the reserved
fields; the TC260 security practice guide (TC260-PG-202511A) gives it this shape::

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
have one canonical form). Each role signs every field before its own reserved field: the producer
``Label, ContentProducer, ProduceID``; the propagator also ``ReservedCode1, ContentPropagator,
PropagateID``, so it vouches for the producer's signature too. ``<64 hex>`` is
:meth:`Container.payload_digest`: SHA-256 of the media payload without metadata. Metadata edits
therefore leave signatures intact, payload edits, labels moved to another file and labels re-used
for another ProduceID all break them.

A propagator that re-encodes the media to burn in a visible label adds a second binding,
``{"Type":"SourceContentHash",...}`` (and ``,"SourceContentHash":"SHA256:<hex>"`` to its signed
bytes): the payload digest it received (see :func:`aigclabel.signing.verify_fields`).

[UNCONFIRMED] The guide's exact ``TBSData`` members and content-binding selection are not public;
the ``Fields`` list, the ``SHA256:`` prefix and ``SourceContentHash`` are this toolkit's choice.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

from ..errors import MalformedFileError, SignatureError
from ..label import FIELD_ATTRS, MAX_FIELD_LENGTH, SIGNATURE_FIELDS, AIGCLabel, signed_fields
from .keys import SigningKey

Role = Literal["producer", "propagator"]

#: ``SecurityData.Type`` written and expected.
SECURITY_DATA_TYPE = "TC260PG"
#: Binding types (and signed member names) for the payload digest, and for the one a propagator received.
CONTENT_HASH = "ContentHash"
SOURCE_CONTENT_HASH = "SourceContentHash"

#: The reserved field that holds each role's signature (Annex E f, i), by its Annex E name.
RESERVED_FIELD = SIGNATURE_FIELDS


def canonical_message(label: AIGCLabel, content_digest: bytes, role: Role, source_digest: bytes | None = None) -> bytes:
    """The exact bytes signed for ``role`` (see the module docstring).

    ``source_digest`` (propagator only) is the payload digest *before* the propagator re-encoded the
    media to add a visible label; it is appended as ``,"SourceContentHash":"SHA256:<hex>"``.
    """
    values = label.to_dict()
    members = [f"{json.dumps(name)}:{json.dumps(values[name], ensure_ascii=True)}" for name in signed_fields(role)]
    members.append(f'"{CONTENT_HASH}":"SHA256:{content_digest.hex()}"')
    if source_digest is not None:
        members.append(f'"{SOURCE_CONTENT_HASH}":"SHA256:{source_digest.hex()}"')
    return ",".join(members).encode("ascii")


def tbs_fields(role: Role, with_source: bool) -> list[str]:
    """``TBSData.Fields``: the signed label fields, then the content binding(s)."""
    return [*signed_fields(role), CONTENT_HASH, *([SOURCE_CONTENT_HASH] if with_source else [])]


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
    bindings = [{"Type": CONTENT_HASH, "Alg": "SHA256", "Value": content_digest.hex()}]
    if source_digest is not None:
        bindings.append({"Type": SOURCE_CONTENT_HASH, "Alg": "SHA256", "Value": source_digest.hex()})
    body = {
        "SecurityData": {
            "Type": SECURITY_DATA_TYPE,
            "PubSD": [
                {"Type": "PubKey", "KeyID": key.key_id, "AlgID": key.alg.key_oid, "KeyValue": key.public_key.hex},
                {
                    "Type": "DS",
                    "KeyID": key.key_id,
                    "AlgID": key.alg.signature_oid,
                    "TBSData": {"Type": "Md", "Fields": tbs_fields(role, source_digest is not None)},
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
    if role == "propagator" and not (label.content_propagator and label.propagate_id):
        raise SignatureError("a propagator signature needs ContentPropagator and PropagateID set first")
    if role == "producer" and not (label.content_producer and label.produce_id):
        raise SignatureError("a producer signature needs ContentProducer and ProduceID")
    value = security_data(label, content_digest, key, role, source_digest)
    made = replace(label, **{FIELD_ATTRS[RESERVED_FIELD[role]]: value})
    made.validate()
    return made


def payload_digest(path: Path | str) -> bytes:
    """The file's metadata-independent payload digest from its container module.

    Raises :class:`~aigclabel.errors.UnsupportedFormatError` when the format has none, and
    :class:`~aigclabel.errors.MalformedFileError` on a corrupt file.
    """
    from ..containers import open_container

    target = Path(path)
    container = open_container(target)
    digest = container.payload_digest(target)
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise MalformedFileError(f"{container.description} payload digest is not a 32-byte SHA-256")
    return digest
