"""Build audit events from files, labels and verdicts (identifiers computed here, once)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AIGCLabelError
from ..label import AIGCLabel
from .models import EventKind
from .store import AuditEvent, file_sha256

if TYPE_CHECKING:
    from ..verify import Applied, Verdict


def _payload_hex(path: Path) -> str | None:
    from ..signing import payload_digest

    try:
        return payload_digest(path).hex()
    except AIGCLabelError:
        return None


def file_event(
    kind: EventKind | str,
    path: Path | str,
    label: AIGCLabel | None = None,
    *,
    recipient: str | None = None,
    watermark_payload: str | None = None,
    detail: Mapping[str, Any] | None = None,
    payload_digest: str | None = None,
) -> AuditEvent:
    """An event about ``path`` as it is now: whole-file SHA-256, payload digest and label IDs.

    ``payload_digest`` (hex) saves recomputing it when the caller already has it for this file.
    """
    target = Path(path)
    return AuditEvent(
        kind=kind,
        produce_id=label.produce_id or None if label else None,
        propagate_id=label.propagate_id or None if label else None,
        content_sha256=file_sha256(target),
        payload_digest=payload_digest or _payload_hex(target),
        watermark_payload=watermark_payload,
        provider_code=(label.content_propagator or label.content_producer or None) if label else None,
        recipient=recipient,
        detail={"path": str(target), **(detail or {})},
    )


def verdict_event(verdict: Verdict, applied: Applied | None = None) -> AuditEvent:
    """The ``verify`` event for a classification (and what was written, if it was applied)."""
    path = applied.path if applied else verdict.path
    label = applied.label if applied else verdict.label
    payloads = verdict.watermark_payloads
    detail: dict[str, Any] = {
        "classification": verdict.classification.value,
        "declared_ai": verdict.declared_ai,
        "signatures": {role: check.state.value for role, check in verdict.signatures.items()},
        "evidence": [f"{e.kind}: {e.detail}"[:500] for e in verdict.evidence][:50],
    }
    if applied:
        detail["applied"] = {"visible_label": applied.visible, "label": applied.label.to_dict()}
    return file_event(
        EventKind.VERIFY,
        path,
        label,
        watermark_payload=payloads[0] if payloads else None,
        detail=detail,
        # The verdict's digest is of the file as it was classified; an applied label changed only metadata
        # unless a visible label was drawn, so it is reused only when nothing was applied.
        payload_digest=verdict.payload_digest if applied is None else None,
    )
