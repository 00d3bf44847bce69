"""What verification finds and decides: the :class:`Classification`, one finding (:class:`Evidence`), and
the :class:`Verdict` that :func:`aigclabel.verify.classify` returns for a file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from ..api import Inspection
from ..label import AIGCLabel, LabelValue
from ..signing import SignatureCheck


class Classification(StrEnum):
    """The platform's class for a piece of content (Measures Art. 6)."""

    CONFIRMED = "confirmed"
    POSSIBLE = "possible"
    SUSPECTED = "suspected"
    NONE = "none"

    @property
    def label_value(self) -> LabelValue | None:
        """The Annex E ``Label`` value the platform writes, or ``None`` for :attr:`NONE`."""
        return {
            "confirmed": LabelValue.CONFIRMED,
            "possible": LabelValue.POSSIBLE,
            "suspected": LabelValue.SUSPECTED,
        }.get(self.value)


EvidenceRole = Literal["label", "declaration", "trace", "info"]


@dataclass(frozen=True)
class Evidence:
    """One finding. ``role`` says how it counts: ``trace`` findings make content *suspected*.

    ``data`` carries machine-readable extras; a watermark detector puts the decoded payload under
    ``"watermark_payload"`` so the audit log can trace it.
    """

    kind: str
    detail: str
    location: str
    source: str
    role: EvidenceRole = "trace"
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, source: str, reason: str) -> Evidence:
        """The finding of a detector that could not search this file (``reason`` says why), for review."""
        return cls("detector-skipped", reason, "-", source, "info")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "detail": self.detail,
            "location": self.location,
            "source": self.source,
            "role": self.role,
            "data": dict(self.data),
        }


@dataclass
class Verdict:
    """The outcome of :func:`classify` for one file."""

    path: Path
    format: str
    classification: Classification
    evidence: list[Evidence]
    label: AIGCLabel | None
    label_conforms: bool
    signatures: dict[str, SignatureCheck]
    payload_digest: str | None
    declared_ai: bool | None
    detectors: list[str]
    #: Detectors not run: skipped by the fast path, or not applicable to this format.
    skipped_detectors: list[str] = field(default_factory=list)
    #: The :func:`aigclabel.inspect` result the classification was based on (every label placement).
    inspection: Inspection | None = field(default=None, repr=False)

    @property
    def label_value(self) -> LabelValue | None:
        """The ``Label`` value this classification calls for."""
        return self.classification.label_value

    @property
    def watermark_payloads(self) -> list[str]:
        """Watermark payloads reported by detectors (for the audit trail)."""
        return [str(e.data["watermark_payload"]) for e in self.evidence if "watermark_payload" in e.data]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``verify --json`` output)."""
        value = self.label_value
        return {
            "path": str(self.path),
            "format": self.format,
            "classification": self.classification.value,
            "label_value": value.value if value else None,
            "declared_ai": self.declared_ai,
            "label": self.label.to_dict() if self.label else None,
            "label_conforms": self.label_conforms,
            "signatures": {role: check.to_dict() for role, check in self.signatures.items()},
            "payload_digest": self.payload_digest,
            "evidence": [e.to_dict() for e in self.evidence],
            "detectors": self.detectors,
            "skipped_detectors": self.skipped_detectors,
        }
