"""Platform verification per Measures Art. 6: confirmed / possible / suspected / none.

The decision, in the order Art. 6 gives it:

1. **confirmed** (``Label="1"``): the file carries an implicit label that conforms to Annex E, says
   ``Label="1"`` and whose signatures (if any) are not ``invalid``;
2. **possible** (``"2"``): otherwise, the uploading user declared the content AI-generated;
3. **suspected** (``"3"``): otherwise, some *trace* was found: an explicit label, a watermark, an
   IPTC ``trainedAlgorithmicMedia`` source type, a C2PA claim, or an implicit label that failed
   (tampered signature, non-conforming, ``Label`` 2/3 from an earlier platform, conflicting copies);
4. **none**: nothing points at AI.

Traces come from *detectors*: objects with a ``name`` and ``detect(path) -> list[Evidence]``,
registered with :func:`register_detector`. Modules register theirs when imported (the C2PA module
itself; :mod:`aigclabel._verify_plugins` for the explicit-label and watermark modules);
:func:`registered_detectors` imports the modules named in :data:`PLUGIN_MODULES` on first use and
skips those that are not installed, so this file never grows an ``if`` per technique. One detector
lives here: :class:`XmpSourceTypeDetector`.

**Fast path.** Platforms run this on every upload, and the pixel/sample detectors (visible label,
watermark) cost far more than reading the metadata. Once the implicit label is valid (it conforms,
says ``Label="1"``, no copy conflicts and no signature is ``invalid``) the class is *confirmed* and
no trace can change it (Art. 6 ranks the label first), so :func:`classify` skips the trace detectors
unless called with ``thorough=True`` (auditors who want every piece of evidence, e.g. a watermark
payload for the audit trail). Detectors also run cheapest first (their optional ``cost``) and only
on the container formats they declare (their optional ``formats``), so image detectors never
decode audio.

:func:`apply` then writes the platform's propagation fields (keeping the producer's), signs
ReservedCode2 when a key is given, and burns in the visible label through a registered
:class:`VisibleLabeler` when one is available.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .api import Inspection, inspect
from .errors import AIGCLabelError, MalformedFileError, UnsupportedFormatError
from .label import AIGCLabel, LabelValue
from .signing import (
    KeyRegistry,
    SignatureCheck,
    SignatureState,
    SigningKey,
    payload_digest,
    sign,
    verify_fields,
)

#: Modules that register detectors or visible labelers when imported (missing ones are skipped).
PLUGIN_MODULES: tuple[str, ...] = ("aigclabel._verify_plugins", "aigclabel.c2pa_manifest")


class VerifyError(AIGCLabelError):
    """A verification result cannot be applied (nothing to label, or a bad propagator value)."""

    exit_code = 5


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


@runtime_checkable
class TraceDetector(Protocol):
    """Finds traces of AI generation in a file. Must not raise on files it does not understand.

    Two optional class attributes, read with defaults so detectors written before them still work:

    * ``formats``: a collection of container names (``aigclabel.containers``, e.g. ``{"jpeg", "png"}``)
      the detector applies to; :func:`classify` does not call it for other formats. Absent or
      ``None``: every format.
    * ``cost``: rough relative cost (:data:`DEFAULT_DETECTOR_COST` when absent); cheaper detectors
      run first.
    """

    name: str

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence found in ``path`` (empty when none)."""
        ...


#: Cost assumed for a detector that does not declare one (between metadata scans and pixel analysis).
DEFAULT_DETECTOR_COST = 50.0


def detector_formats(detector: TraceDetector) -> frozenset[str] | None:
    """Container names ``detector`` applies to, or ``None`` for all (its optional ``formats``)."""
    formats = getattr(detector, "formats", None)
    return None if formats is None else frozenset(formats)


def detector_cost(detector: TraceDetector) -> float:
    """The detector's declared relative ``cost`` (:data:`DEFAULT_DETECTOR_COST` when it has none)."""
    cost = getattr(detector, "cost", DEFAULT_DETECTOR_COST)
    return float(cost) if isinstance(cost, int | float) else DEFAULT_DETECTOR_COST


def plan_detectors(detectors: Mapping[str, TraceDetector], container: str) -> list[tuple[str, TraceDetector]]:
    """The detectors that apply to a ``container`` file, cheapest first (ties keep registration order)."""
    usable = [
        (name, detector)
        for name, detector in detectors.items()
        if (formats := detector_formats(detector)) is None or container in formats
    ]
    return sorted(usable, key=lambda item: detector_cost(item[1]))


@runtime_checkable
class VisibleLabeler(Protocol):
    """Adds a visible/audible explicit label (re-encodes the media) for one classification."""

    name: str

    def supports(self, path: Path) -> bool:
        """True if this labeler can handle the file."""
        ...

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with an explicit label to the new file ``dst``."""
        ...


_DETECTORS: dict[str, TraceDetector] = {}
_LABELERS: dict[str, VisibleLabeler] = {}
_plugins_loaded = False


def register_detector(detector: TraceDetector) -> TraceDetector:
    """Add (or replace, by name) a trace detector; returns it, so it works as a decorator on instances."""
    _DETECTORS[detector.name] = detector
    return detector


def unregister_detector(name: str) -> None:
    """Remove a detector (tests, or an operator switching one off)."""
    _DETECTORS.pop(name, None)


def register_visible_labeler(labeler: VisibleLabeler) -> VisibleLabeler:
    """Add (or replace, by name) a visible labeler used by :func:`apply`."""
    _LABELERS[labeler.name] = labeler
    return labeler


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            continue


def registered_detectors() -> dict[str, TraceDetector]:
    """Every registered detector by name (imports the plugin modules on first use)."""
    _load_plugins()
    return dict(_DETECTORS)


def registered_labelers() -> dict[str, VisibleLabeler]:
    """Every registered visible labeler by name."""
    _load_plugins()
    return dict(_LABELERS)


# ---------------------------------------------------------------------------------------- XMP detector
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#: IPTC digital source types that mean "made with generative AI".
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})


class XmpSourceTypeDetector:
    """Finds IPTC ``Iptc4xmpExt:DigitalSourceType`` = ``trainedAlgorithmicMedia`` in XMP packets.

    It scans the file's bytes for XMP packets, the format-independent method of the XMP
    specification (Part 3, "scanning files for XMP"), streaming with bounded memory, so it works for
    JPEG, PNG (uncompressed iTXt), WebP, TIFF, GIF, MP4 ``uuid`` boxes and uncompressed PDF metadata
    alike. Compressed XMP (PNG zTXt, Flate PDF streams) is not seen.
    """

    name = "xmp-digital-source-type"
    #: A bounded byte scan: the cheapest detector, and format-independent.
    cost = 1.0
    formats = None
    #: Largest XMP packet considered, and most packets examined per file.
    MAX_PACKET = 4 << 20
    MAX_PACKETS = 16
    _START = b"<x:xmpmeta"
    _END = b"</x:xmpmeta>"
    _CHUNK = 1 << 20

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence for each AI source type found (never raises on bad bytes)."""
        found: list[Evidence] = []
        try:
            for offset, packet in self._packets(path):
                for value in self._source_types(packet):
                    code = value.rstrip("/").rsplit("/", 1)[-1]
                    if code in AI_SOURCE_TYPES:
                        found.append(
                            Evidence(
                                kind="xmp-digital-source-type",
                                detail=f"XMP Iptc4xmpExt:DigitalSourceType is {code} (IPTC: made with generative AI)",
                                location=f"XMP packet at byte {offset}",
                                source=self.name,
                                data={"digital_source_type": value},
                            )
                        )
        except OSError:
            return found
        return found

    def _packets(self, path: Path) -> list[tuple[int, bytes]]:
        packets: list[tuple[int, bytes]] = []
        buf = bytearray()
        base = 0  # file offset of buf[0]
        eof = False
        with open(path, "rb") as handle:
            while len(packets) < self.MAX_PACKETS:
                start = buf.find(self._START)
                if start < 0:
                    if eof:
                        break
                    drop = max(0, len(buf) - (len(self._START) - 1))
                    del buf[:drop]
                    base += drop
                    chunk = handle.read(self._CHUNK)
                    eof = not chunk
                    buf += chunk
                    continue
                del buf[:start]
                base += start
                end = buf.find(self._END)
                while end < 0 and len(buf) <= self.MAX_PACKET and not eof:
                    chunk = handle.read(self._CHUNK)
                    eof = not chunk
                    buf += chunk
                    end = buf.find(self._END)
                if end < 0 or end > self.MAX_PACKET:  # unterminated or runaway: skip this start tag
                    del buf[: len(self._START)]
                    base += len(self._START)
                    continue
                stop = end + len(self._END)
                packets.append((base, bytes(buf[:stop])))
                del buf[:stop]
                base += stop
        return packets

    @staticmethod
    def _source_types(packet: bytes) -> list[str]:
        try:
            root = SafeET.fromstring(packet)
        except (DefusedXmlException, SafeET.ParseError, ValueError):
            return []
        values: list[str] = []
        tag = f"{{{IPTC_EXT_NS}}}DigitalSourceType"
        for element in root.iter():
            if element.get(tag):
                values.append(str(element.get(tag)))
            if element.tag == tag:
                resource = element.get(f"{{{RDF_NS}}}resource")
                values.append((resource or element.text or "").strip())
        return [v for v in values if v]


register_detector(XmpSourceTypeDetector())


# ---------------------------------------------------------------------------------------- classify
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


def classify(
    path: Path | str,
    declared_ai: bool | None = None,
    registry: KeyRegistry | None = None,
    detectors: Mapping[str, TraceDetector] | None = None,
    *,
    thorough: bool = False,
) -> Verdict:
    """Classify ``path`` per Measures Art. 6 and list the evidence.

    ``declared_ai`` is the uploader's declaration (``None``: none made). ``detectors`` defaults to
    every registered one; those whose ``formats`` exclude this file's container are not called, the
    rest run cheapest first. When the implicit label is valid the class is *confirmed* whatever the
    detectors find, so they are skipped (listed in ``skipped_detectors``) unless ``thorough`` asks
    for complete evidence. Raises the typed errors of :func:`aigclabel.inspect` for unreadable files.
    """
    target = Path(path)
    report = inspect(target)
    evidence: list[Evidence] = []
    corrupt: str | None = None
    try:
        digest: bytes | None = payload_digest(target)
    except (UnsupportedFormatError, MalformedFileError) as exc:
        digest = None  # the label itself is still judged
        corrupt = str(exc) if isinstance(exc, MalformedFileError) else None
        evidence.append(Evidence("payload-digest", f"no payload digest: {exc}", "-", "signing", "info"))

    label = report.label
    parsed = [f for f in report.labels if f.label is not None]
    conforms = bool(parsed) and all(f.parsed is not None and f.parsed.conforms for f in parsed)
    conflicting = len({f.label for f in parsed}) > 1 or any(f.label is None for f in report.labels)
    signatures: dict[str, SignatureCheck] = {}
    label_valid = False
    if label is not None:
        signatures = {str(role): check for role, check in verify_fields(label, digest, registry).items()}
        if corrupt:  # a signed label on a damaged payload cannot vouch for it: that is tampering evidence
            signatures = {
                role: replace(check, state=SignatureState.INVALID, reason=f"payload is damaged: {corrupt}")
                if check.state is SignatureState.UNVERIFIABLE
                else check
                for role, check in signatures.items()
            }
        broken = [c for c in signatures.values() if c.state is SignatureState.INVALID]
        label_valid = conforms and not conflicting and label.value is LabelValue.CONFIRMED and not broken
        where = ", ".join(f.location for f in parsed)
        summary = f"Label={label.label} ContentProducer={label.content_producer} ProduceID={label.produce_id}"
        if label_valid:
            evidence.append(Evidence("implicit-label", f"valid implicit label: {summary}", where, "metadata", "label"))
        else:
            why = [
                *(["does not conform to Annex E"] if not conforms else []),
                *(["several conflicting placements (GB 45438 §6.1 c)"] if conflicting else []),
                *([f"Label is {label.label!r}, not 1"] if label.value is not LabelValue.CONFIRMED else []),
                *[f"{c.field} signature invalid: {c.reason}" for c in broken],
            ]
            evidence.append(
                Evidence(
                    "implicit-label", f"implicit label not accepted ({'; '.join(why)}): {summary}", where, "metadata"
                )
            )
        for check in signatures.values():
            if check.state is not SignatureState.UNSIGNED:
                evidence.append(
                    Evidence(
                        "signature",
                        f"{check.field}: {check.state.value}: {check.reason}",
                        check.field,
                        "signing",
                        "info",
                    )
                )
    for found in report.labels:
        if found.label is None:
            evidence.append(Evidence("implicit-label", f"unreadable label: {found.error}", found.location, "metadata"))

    if declared_ai is not None:
        said = "declared AI-generated" if declared_ai else "declared not AI-generated"
        evidence.append(Evidence("declaration", f"uploader {said}", "-", "user", "declaration"))

    chosen = detectors if detectors is not None else registered_detectors()
    # Only a valid label decides the class before the detectors; traces can change every other outcome.
    planned = plan_detectors(chosen, report.format) if thorough or not label_valid else []
    ran = {name for name, _ in planned}
    for name, detector in planned:
        try:
            evidence.extend(detector.detect(target))
        except Exception as exc:  # a faulty plug-in must not stop Art. 6 verification; it is reported
            evidence.append(Evidence("detector-error", f"{name}: {type(exc).__name__}: {exc}", "-", name, "info"))

    if label_valid:
        classification = Classification.CONFIRMED
    elif declared_ai:
        classification = Classification.POSSIBLE
    elif any(e.role == "trace" for e in evidence):
        classification = Classification.SUSPECTED
    else:
        classification = Classification.NONE
    return Verdict(
        path=target,
        format=report.format,
        classification=classification,
        evidence=evidence,
        label=label,
        label_conforms=conforms,
        signatures=signatures,
        payload_digest=digest.hex() if digest else None,
        declared_ai=declared_ai,
        detectors=sorted(ran),
        skipped_detectors=sorted(set(chosen) - ran),
        inspection=report,
    )


# ---------------------------------------------------------------------------------------- apply
@dataclass(frozen=True)
class Applied:
    """What :func:`apply` wrote."""

    path: Path
    label: AIGCLabel
    visible: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": str(self.path), "label": self.label.to_dict(), "visible_label": self.visible}


_CLEAN = re.compile(r"[\x21-\x5B\x5D-\x7E]*")


def propagation_label(verdict: Verdict, propagator: str, propagate_id: str | None = None) -> AIGCLabel:
    """The label a platform writes for ``verdict``: producer fields kept, its own fields added.

    Producer fields that would break Annex E (bad characters, over-long) are dropped rather than
    copied; the Label is the producer's for *confirmed*, else the classification's value.
    """
    value = verdict.label_value
    if value is None:
        raise VerifyError("content is classified 'none': there is no AI label to propagate")
    old = verdict.label
    kept = AIGCLabel(label=value.value)
    if old is not None:
        fields = {
            "content_producer": old.content_producer,
            "produce_id": old.produce_id,
            "reserved_code1": old.reserved_code1,
        }
        clean = {k: v for k, v in fields.items() if len(v) <= 2048 and _CLEAN.fullmatch(v)}
        kept = replace(kept, **clean)
    try:
        return kept.with_propagation(propagator, propagate_id, label=value)
    except AIGCLabelError as exc:
        raise VerifyError(str(exc)) from None


def apply(
    verdict: Verdict,
    propagator: str,
    *,
    propagate_id: str | None = None,
    key: SigningKey | None = None,
    output: Path | str | None = None,
    visible: bool = True,
) -> Applied:
    """Write the platform's label for ``verdict`` into the file (or ``output``), atomically.

    With ``visible``, a registered :class:`VisibleLabeler` first adds the explicit label (this
    re-encodes the media, so a producer signature bound to the old payload stops matching); then the
    implicit label is written and, with ``key``, ReservedCode2 is signed over the final payload.
    """
    from .api import write_label

    src = verdict.path
    dst = Path(output) if output is not None else src
    label = propagation_label(verdict, propagator, propagate_id)
    status = "not requested"
    labeler = None
    if visible:
        # The most recently registered labeler wins, so a platform's own overrides the built-in one.
        labeler = next((lb for lb in reversed(registered_labelers().values()) if lb.supports(src)), None)
        if labeler is None:
            status = "not available: no visible labeler is registered for this format (aigclabel.explicit)"
    staged: Path | None = None
    source = src
    try:
        if labeler is not None:
            # The visible label goes to a temporary file first, so a failure leaves the input untouched.
            fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=f".aigclabel-tmp{src.suffix}", dir=dst.parent)
            os.close(fd)
            staged = Path(name)
            try:
                labeler.add_label(src, staged, verdict.classification)
                source, status = staged, f"added by {labeler.name}"
            except AIGCLabelError as exc:
                status = f"failed ({labeler.name}: {exc}); implicit label written without it"
        if key is not None:
            # After a visible label, vouch for the payload the producer signed so its signature stays checkable.
            before = bytes.fromhex(verdict.payload_digest) if source != src and verdict.payload_digest else None
            label = sign(label, payload_digest(source), key, "propagator", before)
        written = write_label(source, label, dst)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    return Applied(path=written, label=label, visible=status)


__all__ = [
    "DEFAULT_DETECTOR_COST",
    "PLUGIN_MODULES",
    "Applied",
    "Classification",
    "Evidence",
    "TraceDetector",
    "Verdict",
    "VerifyError",
    "VisibleLabeler",
    "XmpSourceTypeDetector",
    "apply",
    "classify",
    "detector_cost",
    "detector_formats",
    "plan_detectors",
    "propagation_label",
    "register_detector",
    "register_visible_labeler",
    "registered_detectors",
    "registered_labelers",
    "unregister_detector",
]
