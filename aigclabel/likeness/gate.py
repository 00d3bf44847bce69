"""The generation-time gate: before a provider edits a face or voice, is there consent?

Given the source and/or the output of an edit (image, video or audio), the requesting grantee and what the
edit does (distortion, commercial use), :func:`gate` finds the faces and voices, matches them against the
enrolled people (:mod:`.registry`) and reads the consent ledger (:mod:`.ledger`):

* **allow**: no enrolled person is in the content, or every one has a valid, notified grant to this grantee
  covering the purposes;
* **consent-required**: an enrolled person without such a grant (none yet, expired, not notified);
* **refuse**: a protected (opted-out) person without a grant, or a grant that was revoked or does not cover
  the purpose (the person allowed use but not distortion).

Every decision is recorded as a ``likeness`` audit event with the scores, the threshold and the model. When
the output is an edited likeness and the decision is allow, :func:`label_edited` adds the Art. 17
conspicuous label (the explicit labeller of the media kind, with a text saying the face was synthesised;
audio gets the standard spoken and rhythm label) and the implicit label through the normal label path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..audit import AuditEvent, EventKind, file_sha256
from ..containers import MediaKind
from .registry import LikenessRegistry, Match, find_likenesses
from .types import Encoder, Likeness, Modality

if TYPE_CHECKING:
    from ..label import AIGCLabel
    from ..produce import ProduceOptions, ProduceResult
    from .ledger import ConsentLedger, ConsentStatus

Decision = Literal["allow", "consent-required", "refuse"]
DECISIONS: tuple[Decision, ...] = ("allow", "consent-required", "refuse")

#: Art. 17 label texts. Each holds the AI element and the generation element GB 45438 §4 asks of a text label.
FACE_LABEL = "AI合成人脸"
VOICE_LABEL = "AI合成声音"


@dataclass(frozen=True)
class PersonDecision:
    """The decision for one enrolled person found in the content, with the consent state it rests on."""

    person: str
    modality: Modality
    decision: Decision
    consent: ConsentStatus
    matches: tuple[Match, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        best = min(self.matches, key=lambda m: m.distance)
        return {
            "person": self.person,
            "modality": self.modality,
            "decision": self.decision,
            "consent": self.consent.to_dict(),
            "distance": round(best.distance, 6),
            "threshold": best.threshold,
            "model": best.model,
            "protected": best.protected,
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass
class GateDecision:
    """The gate's answer: ``decision``, one entry per enrolled person found, how many likenesses were found."""

    decision: Decision
    grantee: str
    distortion: bool
    commercial: bool
    people: list[PersonDecision] = field(default_factory=list)
    found: dict[str, int] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    audit_event_id: int | None = None
    labelled: Path | None = None

    @property
    def allowed(self) -> bool:
        """True for allow."""
        return self.decision == "allow"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the audit event's detail)."""
        return {
            "decision": self.decision,
            "grantee": self.grantee,
            "distortion": self.distortion,
            "commercial": self.commercial,
            "found": dict(self.found),
            "models": dict(self.models),
            "people": [p.to_dict() for p in self.people],
            "audit_event_id": self.audit_event_id,
            "labelled": str(self.labelled) if self.labelled else None,
        }


def _decide(status: ConsentStatus, protected: bool) -> Decision:
    if status.ok:
        return "allow"
    if status.state in ("revoked", "purpose-not-covered") or protected:
        return "refuse"
    return "consent-required"


def decide(
    matches: Iterable[Match],
    ledger: ConsentLedger,
    grantee: str,
    *,
    distortion: bool,
    commercial: bool,
) -> list[PersonDecision]:
    """One decision per (person, modality) among ``matches``, from the ledger as it is now."""
    grouped: dict[tuple[str, Modality], list[Match]] = {}
    for match in matches:
        grouped.setdefault((match.person, match.modality), []).append(match)
    decided = []
    for (person, modality), found in sorted(grouped.items()):
        status = ledger.check(person, grantee, modality, distortion=distortion, commercial=commercial)
        decided.append(PersonDecision(person, modality, _decide(status, found[0].protected), status, tuple(found)))
    return decided


def _worst(decisions: Iterable[Decision]) -> Decision:
    return max(decisions, key=DECISIONS.index, default="allow")


def gate(
    registry: LikenessRegistry,
    ledger: ConsentLedger,
    *,
    grantee: str,
    source: Path | str | None = None,
    output: Path | str | None = None,
    distortion: bool = True,
    commercial: bool = False,
    encoders: dict[str, Encoder] | None = None,
    find: Callable[[Path], list[Likeness]] = find_likenesses,
) -> GateDecision:
    """Decide whether ``grantee`` may make (or publish) ``output`` from ``source``; recorded in the audit log.

    A person found in either file counts. ``find`` turns a file into likenesses (default: the face and voice
    encoders of the ``likeness`` extra).
    """
    from ..errors import LikenessError

    files = [Path(p) for p in (source, output) if p is not None]
    if not files:
        raise LikenessError("the gate needs a source or an output file")
    found: list[Likeness] = []
    counts: dict[str, int] = {}
    for path in files:
        here = find(path)
        counts[path.name] = len(here)  # names, never paths: a service's temporary folder stays out of the log
        found.extend(here)
    matches = registry.match(found, encoders=encoders)
    people = decide(matches, ledger, grantee, distortion=distortion, commercial=commercial)
    result = GateDecision(
        _worst(p.decision for p in people),
        grantee,
        distortion,
        commercial,
        people,
        counts,
        {item.modality: item.model for item in found},
    )
    event = AuditEvent(
        kind=EventKind.LIKENESS,
        content_sha256=file_sha256(files[-1]),
        recipient=grantee,
        detail={"action": "gate", **result.to_dict(), "files": {p.name: file_sha256(p) for p in files}},
    )
    result.audit_event_id = registry.store.record(event)
    return result


def _label_image(src: Path, dst: Path, modalities: Sequence[Modality]) -> None:
    from ..explicit.image import add_image_label

    add_image_label(src, dst, text=FACE_LABEL, implicit="if-supported")


def _label_video(src: Path, dst: Path, modalities: Sequence[Modality]) -> None:
    from ..explicit.video import add_video_label

    text = FACE_LABEL if "face" in modalities else VOICE_LABEL
    add_video_label(src, dst, text=text, persistent=True, implicit="if-supported")


def _label_audio(src: Path, dst: Path, modalities: Sequence[Modality]) -> None:
    from ..explicit.audio import add_audio_label

    add_audio_label(src, dst, kind="both", positions=("start",), implicit="if-supported")


#: The Art. 17 explicit labeller of each media kind a likeness can be in.
_LABELLERS: dict[MediaKind, Callable[[Path, Path, Sequence[Modality]], None]] = {
    MediaKind.IMAGE: _label_image,
    MediaKind.VIDEO: _label_video,
    MediaKind.AUDIO: _label_audio,
}


def label_edited(
    output: Path | str,
    dst: Path | str,
    label: AIGCLabel,
    modalities: Sequence[Modality],
    options: ProduceOptions | None = None,
) -> ProduceResult:
    """Write ``dst``: ``output`` with the conspicuous label of an edited likeness (Art. 17) and the implicit label
    ``label`` (signed, watermarked, audited as ``options`` say), through :func:`aigclabel.produce.label_file`."""
    from .._io import scratch
    from .._media import media_of
    from ..errors import UnsupportedFormatError
    from ..produce import label_file

    src, target = Path(output), Path(dst)
    media = media_of(src)
    labeller = _LABELLERS.get(media) if media is not None else None
    if labeller is None:
        raise UnsupportedFormatError(f"{src.name}: not an image, video or audio file; no likeness label to add")
    with scratch(target, target.suffix) as marked:
        labeller(src, marked, modalities)
        return label_file(marked, label, target, options)
