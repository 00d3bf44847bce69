"""Platform verification per Measures Art. 6: confirmed / possible / suspected / none.

The decision, in the order Art. 6 gives it (the strongest applicable class wins):

1. a present implicit label that conforms to Annex E (one consistent placement) states the class:
   ``Label="1"`` **confirmed**, ``"2"`` **possible**, ``"3"`` **suspected**, whatever its signatures
   say. A signature that no longer matches is reported on its own ("content changed after
   signing", e.g. an ordinary re-encode): the metadata still states the content is AI-generated;
2. **possible**: the uploading user declared the content AI-generated;
3. **suspected**: some *trace* was found: an explicit label in any style, a watermark, an IPTC
   ``trainedAlgorithmicMedia`` source type, a C2PA claim, or an implicit label that does not
   conform or has conflicting copies;
4. **none**: nothing points at AI.

Traces come from *detectors*: objects with a ``name`` and ``detect(path) -> list[Evidence]``,
registered with :func:`register_detector`. They live beside their technique and register themselves
when imported (``aigclabel.explicit.detector``, ``aigclabel.watermark.detector``,
``aigclabel.c2pa_manifest``, :mod:`aigclabel.verify.xmp_source`); :func:`registered_detectors`
imports the modules named in :data:`PLUGIN_MODULES` on first use and skips those that are not
installed, so this file never grows an ``if`` per technique.

**Fast path.** Once a conforming label states the class no trace can change it, so :func:`classify`
skips the trace detectors unless called with ``thorough=True``. Detectors also run cheapest first
(their optional ``cost``) and only on the container formats they declare (their optional
``formats``), so image detectors never decode audio.

:func:`apply` then adds the platform's propagation fields (never rewriting an earlier party's),
signs ReservedCode2 when a key is given, and puts the visible prompt where it breaks nothing: a
prompt file for the platform's page by default, burnt into the media only when asked.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from .._io import atomic_output, scratch, write_lock
from .._media import MediaSample
from ..api import Inspection, inspect
from ..errors import AIGCLabelError, MalformedFileError, UnsupportedFormatError, VerifyError
from ..label import AIGCLabel, LabelValue
from ..signing import (
    KeyRegistry,
    SignatureCheck,
    SignatureState,
    SigningKey,
    payload_digest,
    sign,
    verify_fields,
)

#: Modules that register detectors or visible labelers when imported (missing ones are skipped).
PLUGIN_MODULES: tuple[str, ...] = (
    "aigclabel.verify.xmp_source",
    "aigclabel.explicit.detector",
    "aigclabel.watermark.detector",
    "aigclabel.c2pa_manifest",
)


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


#: The class each Annex E ``Label`` value states, and the classes strongest first.
LABEL_CLASSES = {
    LabelValue.CONFIRMED: Classification.CONFIRMED,
    LabelValue.POSSIBLE: Classification.POSSIBLE,
    LabelValue.SUSPECTED: Classification.SUSPECTED,
}
_RANK = (Classification.CONFIRMED, Classification.POSSIBLE, Classification.SUSPECTED, Classification.NONE)


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


@runtime_checkable
class TraceDetector(Protocol):
    """Finds traces of AI generation in a file. Must not raise on files it does not understand.

    Two optional class attributes, read with defaults so detectors written before them still work:

    * ``formats``: a collection of container names (``aigclabel.containers``, e.g. ``{"jpeg", "png"}``)
      the detector applies to; :func:`classify` does not call it for other formats. Absent or
      ``None``: every format.
    * ``cost``: rough relative cost (:data:`DEFAULT_DETECTOR_COST` when absent); cheaper detectors
      run first.
    * ``shares_media``: when true, :func:`classify` calls ``detect(path, media=sample)`` with the
      :class:`aigclabel._media.MediaSample` of the call, so the detectors of one upload decode it
      once; a detector without it is called as ``detect(path)``.
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


def detector_shares_media(detector: TraceDetector) -> bool:
    """True when ``detector`` takes the shared decoded sample (its optional ``shares_media``)."""
    return bool(getattr(detector, "shares_media", False))


def run_detector(detector: TraceDetector, path: Path, media: MediaSample | None = None) -> list[Evidence]:
    """``detector``'s evidence on ``path``, handing it ``media`` when it takes the shared sample."""
    if detector_shares_media(detector):
        sample = media if media is not None else MediaSample(path)
        return detector.detect(path, media=sample)  # type: ignore[call-arg]
    return detector.detect(path)


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
    # The class a present, conforming label states (Art. 6 chain: "1" confirmed, "2" possible, "3"
    # suspected), whatever its signatures say: the metadata still states the content is AI-made.
    stated: Classification | None = None
    if label is not None:
        signatures = {str(role): check for role, check in verify_fields(label, digest, registry).items()}
        if corrupt:  # a signed label on a damaged payload cannot vouch for it
            signatures = {
                role: replace(check, state=SignatureState.INVALID, reason=f"payload is damaged: {corrupt}")
                if check.state is SignatureState.UNVERIFIABLE
                else check
                for role, check in signatures.items()
            }
        if conforms and not conflicting and label.value is not None:
            stated = LABEL_CLASSES[label.value]
        where = ", ".join(f.location for f in parsed)
        summary = f"Label={label.label} ContentProducer={label.content_producer} ProduceID={label.produce_id}"
        if stated is not None:
            evidence.append(
                Evidence(
                    "implicit-label",
                    f"conforming implicit label ({stated.value}): {summary}",
                    where,
                    "metadata",
                    "label",
                )
            )
        else:
            why = [
                *(["does not conform to Annex E"] if not conforms else []),
                *(["several conflicting placements (GB 45438 §6.1 c)"] if conflicting else []),
            ]
            evidence.append(
                Evidence(
                    "implicit-label", f"implicit label not accepted ({'; '.join(why)}): {summary}", where, "metadata"
                )
            )
        for check in signatures.values():
            if check.state is SignatureState.INVALID:
                # Reported on its own: it says the content (or label) changed after signing, not that it is not AI.
                evidence.append(
                    Evidence(
                        "signature",
                        f"{check.field}: content changed after signing ({check.reason})",
                        check.field,
                        "signing",
                        "info",
                        {"state": check.state.value},
                    )
                )
            elif check.state is not SignatureState.UNSIGNED:
                evidence.append(
                    Evidence(
                        "signature",
                        f"{check.field}: {check.state.value}: {check.reason}",
                        check.field,
                        "signing",
                        "info",
                        {"state": check.state.value},
                    )
                )
    for found in report.labels:
        if found.label is None:
            evidence.append(Evidence("implicit-label", f"unreadable label: {found.error}", found.location, "metadata"))

    if declared_ai is not None:
        said = "declared AI-generated" if declared_ai else "declared not AI-generated"
        evidence.append(Evidence("declaration", f"uploader {said}", "-", "user", "declaration"))

    chosen = detectors if detectors is not None else registered_detectors()
    # A conforming label decides the class before the detectors (no trace outranks it); traces can
    # change every other outcome.
    planned = plan_detectors(chosen, report.format) if thorough or stated is None else []
    ran = {name for name, _ in planned}
    media = MediaSample(target, report.format)  # decoded once, on first use, for every detector
    for name, detector in planned:
        try:
            evidence.extend(run_detector(detector, target, media))
        except Exception as exc:  # a faulty plug-in must not stop Art. 6 verification; it is reported
            evidence.append(Evidence("detector-error", f"{name}: {type(exc).__name__}: {exc}", "-", name, "info"))

    candidates = [
        *([stated] if stated is not None else []),
        *([Classification.POSSIBLE] if declared_ai else []),
        *([Classification.SUSPECTED] if any(e.role == "trace" for e in evidence) else []),
    ]
    classification = min(candidates, key=_RANK.index, default=Classification.NONE)
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
#: Visible prompt per classification; each has the AI element and the generation element (GB 45438 §5).
PROMPTS = {
    Classification.CONFIRMED: "人工智能生成",
    Classification.POSSIBLE: "可能为人工智能生成",
    Classification.SUSPECTED: "疑似人工智能生成",
}
#: Where :func:`apply` puts the visible prompt: a prompt file beside the content for the platform's
#: page (nothing re-encoded), burnt into the media (re-encodes it; only when asked), or nowhere.
PromptMode = Literal["sidecar", "burn", "none"]
#: Suffix of the prompt file written beside the content in ``sidecar`` mode.
PROMPT_SUFFIX = ".aigc-prompt.json"


@dataclass(frozen=True)
class Applied:
    """What :func:`apply` wrote."""

    path: Path
    label: AIGCLabel
    #: What happened to the visible prompt (written as a prompt file, burnt in, skipped and why).
    visible: str
    #: The prompt text for the platform's page ("around the content", Measures Art. 6).
    prompt: str = ""
    #: The prompt file written in ``sidecar`` mode.
    prompt_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "path": str(self.path),
            "label": self.label.to_dict(),
            "visible_label": self.visible,
            "prompt": self.prompt,
            "prompt_file": str(self.prompt_file) if self.prompt_file else None,
        }


_CLEAN = re.compile(r"[\x21-\x5B\x5D-\x7E]*")


def propagation_label(verdict: Verdict, propagator: str, propagate_id: str | None = None) -> AIGCLabel:
    """The label a platform writes for ``verdict``: the earlier parties' fields kept, its own added.

    A conforming label is kept as it is (``Label``, ``ContentProducer``, ``ProduceID`` and
    ``ReservedCode1`` belong to the parties who wrote them, Measures Art. 10); only
    ``ContentPropagator``, ``PropagateID`` (and later ``ReservedCode2``) change. Without one, the
    ``Label`` is the classification's value; producer fields of a non-conforming label that would
    break Annex E (bad characters, over-long) are dropped rather than copied.
    """
    value = verdict.label_value
    if value is None:
        raise VerifyError("content is classified 'none': there is no AI label to propagate")
    old = verdict.label
    try:
        if old is not None and verdict.label_conforms and old.value is not None:
            return replace(old, reserved_code2="").with_propagation(propagator, propagate_id)
        kept = AIGCLabel(label=value.value)
        if old is not None:
            fields = {
                "content_producer": old.content_producer,
                "produce_id": old.produce_id,
                "reserved_code1": old.reserved_code1,
            }
            clean = {k: v for k, v in fields.items() if len(v) <= 2048 and _CLEAN.fullmatch(v)}
            kept = replace(kept, **clean)
        return kept.with_propagation(propagator, propagate_id, label=value)
    except AIGCLabelError as exc:
        raise VerifyError(str(exc)) from None


def prompt_file_for(path: Path) -> Path:
    """The prompt file :func:`apply` writes beside ``path`` in ``sidecar`` mode."""
    return path.with_name(path.name + PROMPT_SUFFIX)


def _write_prompt_file(dst: Path, verdict: Verdict, label: AIGCLabel, prompt: str) -> Path:
    target = prompt_file_for(dst)
    body = {
        "content": dst.name,
        "prompt": prompt,
        "classification": verdict.classification.value,
        "label": label.label,
        "placement": "show around the content (Measures Art. 6); the content itself is not altered",
    }
    with atomic_output(target) as tmp:
        tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return target


def _visible_label_present(verdict: Verdict) -> Evidence | None:
    """An explicit label already on the content (found by classify, or by the explicit detectors now)."""
    found = [e for e in verdict.evidence if e.kind.startswith("explicit-") and e.role == "trace"]
    if not found:
        skipped = {n: d for n, d in registered_detectors().items() if n in verdict.skipped_detectors}
        media = MediaSample(verdict.path, verdict.format)
        for name, detector in plan_detectors(skipped, verdict.format):
            if name.startswith("explicit-"):
                with contextlib.suppress(Exception):  # a detector fault only means "not known": burn in
                    found += [e for e in run_detector(detector, verdict.path, media) if e.role == "trace"]
    return found[0] if found else None


def apply(
    verdict: Verdict,
    propagator: str,
    *,
    propagate_id: str | None = None,
    key: SigningKey | None = None,
    output: Path | str | None = None,
    prompt: PromptMode = "sidecar",
) -> Applied:
    """Write the platform's label for ``verdict`` into the file (or ``output``), atomically.

    The earlier parties' fields are kept (:func:`propagation_label`); with ``key``, ReservedCode2 is
    signed over the final payload. The visible prompt goes where it breaks nothing: by default
    (``"sidecar"``) into a prompt file beside the output for the platform's page, leaving the payload
    and so the producer's ReservedCode1 intact. ``"burn"`` asks a registered :class:`VisibleLabeler`
    to draw it into the media (a re-encode), unless the content already shows a visible label;
    ``"none"`` writes no prompt.
    """
    from ..api import write_label

    src = verdict.path
    dst = Path(output) if output is not None else src
    label = propagation_label(verdict, propagator, propagate_id)
    text = PROMPTS[verdict.classification]
    status = "not requested"
    labeler = None
    if prompt == "burn":
        existing = _visible_label_present(verdict)
        if existing is not None:
            status = f"not added: the content already shows a visible label ({existing.detail})"
        else:
            # The most recently registered labeler wins, so a platform's own overrides the built-in one.
            labeler = next((lb for lb in reversed(registered_labelers().values()) if lb.supports(src)), None)
            if labeler is None:
                status = "not available: no visible labeler is registered for this format (aigclabel.explicit)"
    source = src
    with contextlib.ExitStack() as stack:
        stack.enter_context(write_lock(dst))  # a concurrent writer of dst waits, then works on our result
        if labeler is not None:
            # The visible label goes to a temporary file first, so a failure leaves the input untouched.
            staged = stack.enter_context(scratch(dst, src.suffix))
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
    prompt_path = None
    if prompt == "sidecar":
        prompt_path = _write_prompt_file(written, verdict, label, text)
        status = f"prompt file {prompt_path.name} (content not re-encoded)"
    return Applied(path=written, label=label, visible=status, prompt=text, prompt_file=prompt_path)
