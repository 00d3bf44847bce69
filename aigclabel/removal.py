"""Guarded label removal (Measures Art. 10): what ``aigclabel strip`` does.

Art. 10 forbids deleting labels maliciously and providing tools for it. A producer may still need
to take its *own* label off (to re-issue content, or before relabelling), so removal is allowed
only when the caller proves the label is theirs, or overrides that on the record:

* **own key**: every label in the file carries a ReservedCode1 signature that verifies, over this
  file's payload, under the private key the caller holds (``--sign-key``);
* **override**: anything else (another producer's signed label, an unsigned one, an unreadable
  one, a format without a payload digest) is refused with :class:`LabelRemovalRefusedError`
  unless the caller gives ``force_reason``, which is stored in the audit event.

An **unsigned** label needs the override too: nothing in it shows who wrote it, and a tool that
removed unattributed labels on request would be exactly the tool Art. 10 forbids. A file with no
label passes (nothing is removed), still with an event, so every strip is on the record.

The audit event (kind ``strip``) holds the input's SHA-256 and payload digest, the output's SHA-256,
every removed label, the basis (``own-key`` with the key ID, ``override`` with the reason,
``no-label``) and the operating-system user. :func:`plan_strip` decides without writing; the caller
then opens the store and :func:`apply_strip` writes and records, so an unusable database refuses the
strip rather than leaving it unrecorded (a failure between the write and the record, such as a disk
filling up, is reported with the audit error's exit code).

:func:`aigclabel.api.strip_label` remains the unguarded container operation for code that
enforces its own policy (tests, the relabelling pipeline).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .api import read_labels, strip_label
from .errors import LabelRemovalRefusedError, UnsupportedFormatError
from .label import AIGCLabel

if TYPE_CHECKING:
    from .audit import AuditStore
    from .containers import FoundLabel
    from .signing import SigningKey

Basis = Literal["own-key", "override", "no-label"]

__all__ = ["LabelRemovalRefusedError", "StripPlan", "StripResult", "apply_strip", "plan_strip"]


@dataclass(frozen=True)
class StripResult:
    """What a guarded strip did."""

    path: Path
    basis: Basis
    removed: list[AIGCLabel] = field(default_factory=list)
    audit_event_id: int | None = None


def _own(found: FoundLabel, key: SigningKey | None, digest: bytes | None) -> str | None:
    """Why ``found`` is not provably the key holder's own label (``None`` when it is)."""
    from .signing import KeyRegistry, SignatureState, verify

    if found.label is None:
        return f"{found.location}: unreadable label ({found.error})"
    label = found.label
    if not label.reserved_code1:
        return f"{found.location}: unsigned label of {label.content_producer or 'an unnamed producer'}"
    if key is None:
        return f"{found.location}: signed label of {label.content_producer or 'an unnamed producer'}; no key given"
    registry = KeyRegistry()
    registry.add(label.content_producer, key.public_key)
    check = verify(label, digest, registry, "producer")
    if check.state is SignatureState.VALID and check.key_id == key.key_id:
        return None
    return f"{found.location}: ReservedCode1 does not verify under key {key.key_id} ({check.reason})"


@dataclass(frozen=True)
class StripPlan:
    """What :func:`plan_strip` decided about one file, before anything is written."""

    path: Path
    basis: Basis
    found: list[FoundLabel]
    objections: list[str]
    key_id: str | None = None
    reason: str | None = None


def plan_strip(
    path: Path | str, *, signing_key: SigningKey | None = None, force_reason: str | None = None
) -> StripPlan:
    """Decide whether the labels in ``path`` may be removed; nothing is written.

    Raises :class:`LabelRemovalRefusedError` when a label is not provably the holder of
    ``signing_key``'s and no ``force_reason`` is given.
    """
    from .signing import payload_digest

    src = Path(path)
    if force_reason is not None and not force_reason.strip():
        raise LabelRemovalRefusedError("an override needs a non-empty reason (it is recorded in the audit log)")
    found = read_labels(src)
    digest: bytes | None = None
    if signing_key is not None and any(f.label is not None and f.label.reserved_code1 for f in found):
        try:
            digest = payload_digest(src)
        except UnsupportedFormatError:
            digest = None  # no payload digest: a signature cannot be checked, so only an override removes it
    objections = [why for f in found if (why := _own(f, signing_key, digest)) is not None]
    if not objections:
        basis: Basis = "own-key" if found else "no-label"
        return StripPlan(src, basis, found, [], key_id=signing_key.key_id if found and signing_key else None)
    if force_reason is None:
        raise LabelRemovalRefusedError(
            "refusing to remove a label that is not provably yours (Measures Art. 10 forbids removing "
            "labels): " + "; ".join(objections) + ". Pass the producer's --sign-key, or "
            '--force-remove-label --reason "..." to override on the record'
        )
    return StripPlan(src, "override", found, objections, reason=force_reason)


def apply_strip(plan: StripPlan, output: Path | str | None, audit: AuditStore, *, repair: bool = False) -> StripResult:
    """Strip the file of an allowed ``plan`` and record the ``strip`` event in ``audit``."""
    from .audit import EventKind, file_event
    from .audit.store import file_sha256

    removed = [f.label for f in plan.found if f.label is not None]
    before = file_event(EventKind.STRIP, plan.path, removed[0] if removed else None)
    written = strip_label(plan.path, output, repair=repair)
    detail = {
        **before.detail,
        "output": str(written),
        "output_sha256": file_sha256(written),
        "basis": plan.basis,
        "key_id": plan.key_id,
        "reason": plan.reason,
        "objections": plan.objections,
        "removed": [label.to_dict() for label in removed],
        "unreadable": [f.raw[:512] for f in plan.found if f.label is None],
        "actor": _actor(),
    }
    event_id = audit.record(replace(before, detail=detail))
    return StripResult(path=written, basis=plan.basis, removed=removed, audit_event_id=event_id)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (containers without a passwd entry)
        return "unknown"
