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
registered with :func:`~aigclabel.verify.register_detector` (:mod:`.detectors` holds the registry
and the runner; :mod:`.evidence` the finding and verdict model), so this file never grows an ``if``
per technique.

**Fast path.** Once a conforming label states the class no trace can change it, so :func:`classify`
skips the trace detectors unless called with ``thorough=True``. Detectors also run cheapest first
(their optional ``cost``) and only on the container formats they declare (their optional
``formats``), so image detectors never decode audio.

:func:`~aigclabel.verify.apply` (:mod:`.propagation`) then writes the platform's label for the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from .._media import MediaSample
from ..api import inspect
from ..errors import MalformedFileError, UnsupportedFormatError
from ..label import LabelValue
from ..signing import KeyRegistry, SignatureCheck, SignatureState, payload_digest, verify_fields
from .detectors import TraceDetector, plan_detectors, registered_detectors, run_detector
from .evidence import Classification, Evidence, Verdict

#: The class each Annex E ``Label`` value states, and the classes strongest first.
LABEL_CLASSES = {
    LabelValue.CONFIRMED: Classification.CONFIRMED,
    LabelValue.POSSIBLE: Classification.POSSIBLE,
    LabelValue.SUSPECTED: Classification.SUSPECTED,
}
_RANK = (Classification.CONFIRMED, Classification.POSSIBLE, Classification.SUSPECTED, Classification.NONE)


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
