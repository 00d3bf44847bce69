"""The platform scan: uploads matched against the protected (opted-out) people, and the review queue.

A platform runs :func:`scan` on an upload (an image, a video's sampled frames and its audio, an audio file).
Each likeness within the encoder's threshold of a protected person's template is a match. A match is
cleared only by a **consent token** the uploader presents: ``aigclabel-consent:<seq>:<hash>``, naming a grant
entry of the consent ledger (:attr:`aigclabel.likeness.ledger.LedgerEntry.token`) that is the matched
person's, for that modality, and still valid (verified, notified, not expired, not revoked). Any other match
goes to the review queue. A reviewer decides ``approve`` (the use is lawful after all), ``remove`` (take the
upload down) or ``false-match`` (not that person); every decision is a ``likeness`` audit event, and approve
and remove, which are consent matters, are also signed ledger entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from .._decode import sampled_times
from .._extras import needs_extra
from ..audit import AuditEvent, EventKind, file_sha256
from ..audit.models import LikenessReview
from ..errors import AuditUnavailableError, LikenessError
from .ledger import ConsentLedger, ConsentStatus
from .registry import LikenessRegistry, Match, find_likenesses
from .types import Encoder, Likeness

with needs_extra("audit"):
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

ReviewDecision = Literal["approve", "remove", "false-match"]
REVIEW_DECISIONS: tuple[ReviewDecision, ...] = get_args(ReviewDecision)


@dataclass(frozen=True)
class ScanMatch:
    """A match with a protected person, and whether a consent token cleared it (else: its review id)."""

    match: Match
    consent: ConsentStatus | None
    review_id: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.match.to_dict(),
            "consent": self.consent.to_dict() if self.consent else None,
            "review_id": self.review_id,
        }


@dataclass
class ScanResult:
    """What one upload's scan found: every match, those queued for review, the audit event, and for a video the
    times (seconds) of the frames searched, so a reviewer sees which part a frame budget left unseen."""

    name: str
    content_sha256: str
    found: int
    matches: list[ScanMatch] = field(default_factory=list)
    sampled: list[float] = field(default_factory=list)
    audit_event_id: int | None = None

    @property
    def queued(self) -> list[int]:
        """Review ids of matches no consent token cleared."""
        return [m.review_id for m in self.matches if m.review_id is not None]

    @property
    def clear(self) -> bool:
        """True when nothing went to review."""
        return not self.queued

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the audit event's detail)."""
        return {
            "name": self.name,
            "content_sha256": self.content_sha256,
            "found": self.found,
            "sampled": self.sampled,
            "clear": self.clear,
            "matches": [m.to_dict() for m in self.matches],
            "queued": self.queued,
            "audit_event_id": self.audit_event_id,
        }


@dataclass(frozen=True)
class Review:
    """One review-queue item."""

    id: int
    ts: datetime
    name: str
    content_sha256: str
    uploader: str | None
    person: str
    modality: str
    distance: float
    threshold: float
    model: str
    reason: str
    status: str
    reviewer: str | None
    decided: datetime | None
    note: str | None

    @classmethod
    def of(cls, row: LikenessReview) -> Review:
        """From its table row."""
        return cls(
            row.id,
            row.ts,
            row.name,
            row.content_sha256,
            row.uploader,
            row.person_id,
            row.modality,
            row.distance,
            row.threshold,
            row.model,
            row.reason,
            row.status,
            row.reviewer,
            row.decided,
            row.note,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "ts": self.ts.isoformat(),
            "name": self.name,
            "content_sha256": self.content_sha256,
            "uploader": self.uploader,
            "person": self.person,
            "modality": self.modality,
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "model": self.model,
            "reason": self.reason,
            "status": self.status,
            "reviewer": self.reviewer,
            "decided": self.decided.isoformat() if self.decided else None,
            "note": self.note,
        }


def scan(
    path: Path | str,
    registry: LikenessRegistry,
    ledger: ConsentLedger,
    *,
    tokens: Sequence[str] = (),
    uploader: str | None = None,
    encoders: dict[str, Encoder] | None = None,
    find: Callable[[Path], list[Likeness]] = find_likenesses,
) -> ScanResult:
    """Match the upload at ``path`` against the protected people; queue every match no token in ``tokens`` clears."""
    upload = Path(path)
    with sampled_times() as sampled:
        found = find(upload)
    digest = file_sha256(upload)
    result = ScanResult(upload.name, digest, len(found), sampled=[round(at, 3) for at in sampled])
    store = registry.store
    matches = registry.match(found, protected_only=True, encoders=encoders)
    best: dict[tuple[str, str], Match] = {}
    for match in matches:  # one review per person and modality, on the closest match
        key = (match.person, match.modality)
        if key not in best or match.distance < best[key].distance:
            best[key] = match
    for match in best.values():
        cleared: ConsentStatus | None = None
        for token in tokens:
            status = ledger.check_token(token, match.person, match.modality)
            if status.ok or cleared is None or cleared.state == "none":
                cleared = status
            if status.ok:
                break
        review_id = None
        if cleared is None or not cleared.ok:
            reason = cleared.reason if cleared is not None else "no consent token presented"
            review_id = _queue(registry, upload.name[:512], digest, uploader, match, reason)
        result.matches.append(ScanMatch(match, cleared, review_id))
    event = AuditEvent(
        kind=EventKind.LIKENESS,
        content_sha256=digest,
        recipient=uploader,
        detail={"action": "scan", **result.to_dict(), "tokens": len(tokens)},
    )
    result.audit_event_id = store.record(event)
    return result


def _queue(registry: LikenessRegistry, name: str, digest: str, uploader: str | None, match: Match, reason: str) -> int:
    row = LikenessReview(
        ts=registry.store.clock(),
        content_sha256=digest,
        name=name,
        uploader=uploader[:512] if uploader else None,
        person_id=match.person,
        modality=match.modality,
        distance=match.distance,
        threshold=match.threshold,
        model=match.model,
        reason=reason[:512],
        status="open",
    )
    try:
        with Session(registry.store.engine) as session, session.begin():
            session.add(row)
            session.flush()
            return row.id
    except SQLAlchemyError as exc:
        raise AuditUnavailableError(f"cannot queue the review: {exc.__class__.__name__}") from exc


class ReviewQueue:
    """The review queue in the audit database; decisions are audited, and signed in the ledger when consent is at
    stake (approve, remove)."""

    def __init__(self, ledger: ConsentLedger) -> None:
        self.ledger = ledger
        self.store = ledger.store

    def list(self, status: str | None = "open") -> list[Review]:
        """Items with ``status`` (``None``: all), oldest first."""
        query = select(LikenessReview).order_by(LikenessReview.id)
        if status is not None:
            query = query.where(LikenessReview.status == status)
        with Session(self.store.engine) as session:
            return [Review.of(row) for row in session.scalars(query)]

    def decide(self, review_id: int, decision: str, reviewer: str, note: str = "") -> Review:
        """Close item ``review_id`` with ``decision`` (approve, remove, false-match) by ``reviewer``."""
        if decision not in REVIEW_DECISIONS:
            raise LikenessError(f"a review decision is one of {', '.join(REVIEW_DECISIONS)}, not {decision!r}")
        if not reviewer:
            raise LikenessError("a review decision names its reviewer")
        if decision != "false-match" and self.ledger.key is None:
            raise LikenessError(f"{decision} is a consent matter signed in the ledger: it needs a signing key")
        with Session(self.store.engine) as session, session.begin():
            row = session.get(LikenessReview, review_id)
            if row is None:
                raise LikenessError(f"no review {review_id}")
            if row.status != "open":
                raise LikenessError(f"review {review_id} was decided already ({row.status} by {row.reviewer})")
            row.status, row.reviewer, row.decided, row.note = decision, reviewer[:512], self.store.clock(), note[:2048]
            session.flush()
            decided = Review.of(row)
        detail: dict[str, Any] = {"action": "review", **decided.to_dict()}
        if decision != "false-match":
            entry = self.ledger.record_review(
                decided.person,
                review_id=review_id,
                decision=decision,
                content_sha256=decided.content_sha256,
                reviewer=reviewer,
                note=note,
            )
            detail["ledger_entry"] = entry.token
        self.store.record(
            AuditEvent(
                kind=EventKind.LIKENESS, content_sha256=decided.content_sha256, recipient=reviewer, detail=detail
            )
        )
        return decided
