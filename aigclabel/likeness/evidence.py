"""The evidence package: one signed ZIP saying what a file carried and what the records know of it.

A person whose face or voice was used (Civil Code Art. 1019, 1023), a platform answering a complaint, or a
court needs to show later what a file was, which labels and signatures it carried (GB 45438 implicit label,
explicit label, watermark, XMP/C2PA) and what the audit log recorded about it. :func:`make_evidence` writes
that as one ZIP::

    manifest.json    canonical JSON: file hashes, labels, signatures, watermark trace, match scores,
                     timestamps, tool version, and the SHA-256 of every other member
    manifest.sig     the signature over manifest.json's exact bytes, and which key made it
    verify.json      the full Art. 6 verification (every detector's findings, the inspect report)
    audit.json       the audit-log events found for the file's hashes, ProduceID, watermark and person
    content/NAME     the file itself (only when asked: it may be personal information)

:func:`verify_evidence` recomputes every member hash, checks the signature against a key registry and lists
exactly what is wrong (member altered, added or removed, signature invalid, unknown key). A hostile ZIP (zip
bomb, path traversal names, a huge manifest) gets a typed error, never a crash; nothing is extracted.

Signing uses the keys :mod:`aigclabel.signing` manages; without one, the public DEMO key signs and the
manifest says so (``signer.demo``): such a package shows integrity against accident, not who made it.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from .._io import COPY_CHUNK, MAX_METADATA_BYTES, access_error, atomic_output, same_file
from ..containers._zip import INFLATE_RATIO_FLOOR, MAX_INFLATE_RATIO, ZipArchive, ZipEntry
from ..errors import (
    AIGCLabelError,
    FileAccessError,
    LimitExceededError,
    MalformedFileError,
    SignatureError,
    UnsupportedFormatError,
)

if TYPE_CHECKING:
    from ..audit import AuditEvent, AuditStore
    from ..signing import KeyRegistry, SigningKey
    from ..verify import TraceDetector

#: What ``manifest.json``'s ``format`` says; a verifier refuses any other.
EVIDENCE_FORMAT = "aigclabel-evidence/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
VERIFY_MEMBER = "verify.json"
AUDIT_MEMBER = "audit.json"
CONTENT_DIR = "content/"

#: Most members a package to verify may hold (ours hold five).
MAX_MEMBERS = 64
#: Largest manifest or signature member read into memory.
MAX_MANIFEST_BYTES = MAX_METADATA_BYTES
#: Most bytes all members of a package to verify may inflate to (the file itself may be inside).
MAX_PACKAGE_BYTES = 4 << 30
#: Audit events kept per identifier searched.
MAX_EVENTS = 1000

_SAFE_MEMBER = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")

Severity = Literal["error", "warning"]


def canonical_json(value: object) -> bytes:
    """The one byte form signed and hashed: UTF-8 JSON, sorted keys, no spaces, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _file_hashes(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(COPY_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise access_error(exc, path) from exc
    return digest.hexdigest(), size


def content_member(name: str) -> str:
    """The member name the file itself gets: its base name reduced to safe ASCII."""
    safe = _UNSAFE_CHARS.sub("_", PurePosixPath(name.replace("\\", "/")).name).lstrip(".")[-100:]
    return CONTENT_DIR + (safe or "file")


def _signer(key: SigningKey) -> dict[str, Any]:
    from ..signing import demo_signing_key

    demo = key.key_id == demo_signing_key(key.alg).key_id
    return {
        "alg": key.alg.value,
        "key_id": key.key_id,
        "public_key": key.public_key.hex,
        "demo": demo,
        **({"note": "DEMO key: public, anyone can sign with it; proves integrity only"} if demo else {}),
    }


def _not_matched(modality: str, reason: str, person_id: str | None = None) -> dict[str, Any]:
    return {"modality": modality, "status": "not-matched", "reason": reason, "person": person_id}


def optional_template_key(path: Path | None = None) -> bytes | None:
    """The template key from ``path`` or ``$AIGCLABEL_LIKENESS_KEY``, or ``None`` when neither is given."""
    import os

    from .registry import KEY_ENV, load_template_key

    return load_template_key(path) if path is not None or os.environ.get(KEY_ENV) else None


def likeness_records(
    path: Path, person_id: str | None, store: AuditStore | None, template_key: bytes | None, sha256: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The match records and the person's consent-ledger and review records for the package.

    Matches come from the registry's templates (which need ``template_key``) and the face/voice encoders; where
    either is missing, or nobody matched, the record says ``not-matched`` and why, never a made-up score.
    Past gate and scan decisions on the file are among the audit events.
    """
    from .types import MODALITIES

    if store is None:
        return [
            _not_matched(m, "no audit database, so no registry to match against", person_id) for m in MODALITIES
        ], []
    from .ledger import ConsentLedger
    from .registry import LikenessRegistry, find_likenesses, modalities_of
    from .scan import ReviewQueue

    ledger = ConsentLedger(store)
    sha256 = sha256 or _file_hashes(path)[0]
    reviews = [
        r.to_dict() for r in ReviewQueue(ledger).list(None) if r.content_sha256 == sha256 or r.person == person_id
    ]
    records = [{"record": "review", **r} for r in reviews]
    if person_id is not None:
        records = [{"record": "ledger", **e.to_dict()} for e in ledger.entries(person_id)] + records
    try:
        modalities = modalities_of(path)
    except AIGCLabelError as exc:
        return [_not_matched(m, str(exc), person_id) for m in MODALITIES], records
    if template_key is None:
        reason = "no template key given, so the registry's templates cannot be read"
        return [_not_matched(m, reason, person_id) for m in modalities], records
    try:
        found = find_likenesses(path, modalities)
        matches = LikenessRegistry(store, template_key, ledger).match(found)
    except (AIGCLabelError, ImportError) as exc:
        return [_not_matched(m, f"not matched: {exc}", person_id) for m in modalities], records
    slots: list[dict[str, Any]] = [{"status": "matched", **m.to_dict()} for m in matches]
    for modality in modalities:
        mine = [m for m in matches if m.modality == modality and person_id in (None, m.person)]
        if not mine:
            seen = sum(1 for f in found if f.modality == modality)
            who = f"{person_id}'s templates" if person_id else "any enrolled person"
            reason = f"{seen} {modality}(s) found, none within the threshold of {who}"
            slots.append(_not_matched(modality, reason, person_id))
    return slots, records


def _audit_excerpts(
    store: AuditStore | None, identifiers: Mapping[str, str | None], person_records: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Events per identifier (each searched on its own, so the excerpt says which one found them)."""
    if store is None:
        return {"database": None, "searched": {}, "events": [], "person": list(person_records)}
    searched: dict[str, dict[str, Any]] = {}
    events: dict[int | None, AuditEvent] = {}
    for name, value in identifiers.items():
        if not value:
            continue
        found = store.trace(**{name: value}, limit=MAX_EVENTS)
        searched[name] = {"value": value, "event_ids": [e.id for e in found]}
        events.update((e.id, e) for e in found)
    ordered = sorted(events.values(), key=lambda e: (e.ts.isoformat() if e.ts else "", e.id or 0))
    return {
        "database": store.dialect,
        "searched": searched,
        "events": [e.to_dict() for e in ordered],
        "person": list(person_records),
    }


def _watermark_trace(payloads: Sequence[str], produce_id: str | None, store: AuditStore | None) -> list[dict[str, Any]]:
    """Each detected payload: whether it matches the label's ProduceID, and who the audit log says made it."""
    from ..watermark.payload import produce_id_digest

    traced = []
    for payload in payloads:
        events = store.trace(watermark_payload=payload, limit=MAX_EVENTS) if store is not None else []
        traced.append(
            {
                "payload": payload,
                "matches_label_produce_id": (produce_id_digest(produce_id).hex() == payload) if produce_id else None,
                "produce_ids": sorted({e.produce_id for e in events if e.produce_id}),
                "producers": sorted({e.provider_code for e in events if e.provider_code}),
                "event_ids": [e.id for e in events],
            }
        )
    return traced


def evidence_manifest(
    path: Path | str,
    person_id: str | None = None,
    store: AuditStore | None = None,
    *,
    registry: KeyRegistry | None = None,
    matches: Sequence[Mapping[str, Any]] | None = None,
    person_records: Sequence[Mapping[str, Any]] | None = None,
    detectors: Mapping[str, TraceDetector] | None = None,
    template_key: bytes | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The unsigned manifest for ``path`` and the members it describes (name -> bytes), the file excluded.

    ``detectors`` are the trace detectors to run (default: every registered one); ``matches`` and
    ``person_records`` default to :func:`likeness_records`."""
    from .. import __version__
    from ..signing import demo_registry, payload_digest
    from ..verify import classify

    target = Path(path)
    sha256, size = _file_hashes(target)
    if matches is None or person_records is None:
        found_matches, found_records = likeness_records(target, person_id, store, template_key, sha256)
        matches = found_matches if matches is None else matches
        person_records = found_records if person_records is None else person_records
    try:
        payload: dict[str, Any] = {"sha256": payload_digest(target).hex()}
    except (UnsupportedFormatError, MalformedFileError) as exc:
        payload = {"sha256": None, "why": str(exc)}
    if registry is None:
        registry = demo_registry()
        if store is not None:
            registry.merge(store.key_registry())
    verdict = classify(target, registry=registry, detectors=detectors, thorough=True)
    label = verdict.label
    produce_id = label.produce_id or None if label else None
    payloads = verdict.watermark_payloads
    audit = _audit_excerpts(
        store,
        {
            "content_sha256": sha256,
            "payload_digest": payload["sha256"],
            "produce_id": produce_id,
            "propagate_id": label.propagate_id or None if label else None,
            "watermark_payload": payloads[0] if payloads else None,
        },
        person_records,
    )
    verdict_json = verdict.to_dict()
    verdict_json["path"] = target.name  # never the machine's path
    inspection = verdict.inspection.to_dict() if verdict.inspection else None
    if inspection is not None:
        inspection["path"] = target.name
    members = {
        VERIFY_MEMBER: canonical_json({"verdict": verdict_json, "inspection": inspection}),
        AUDIT_MEMBER: canonical_json(audit),
    }
    mtime = datetime.fromtimestamp(target.stat().st_mtime, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    manifest: dict[str, Any] = {
        "format": EVIDENCE_FORMAT,
        "tool": {"name": "aigclabel", "version": __version__},
        "created": _now(),
        "subject": {
            "name": target.name,
            "size": size,
            "modified": mtime,
            "format": verdict.format,
            "sha256": sha256,
            "payload_digest": {"container": verdict.format, **payload},
        },
        "person": {"id": person_id} if person_id is not None else None,
        "labels": {
            "classification": verdict.classification.value,
            "implicit": verdict_json["label"],
            "implicit_conforms": verdict.label_conforms,
            "placements": [
                {"location": p["location"], "error": p["error"]} for p in (inspection or {}).get("labels", [])
            ],
            "findings": [e.to_dict() for e in verdict.evidence if e.kind not in ("signature", "payload-digest")],
        },
        "signatures": verdict_json["signatures"],
        "watermark": {
            "payloads": payloads,
            "trace": _watermark_trace(payloads, produce_id, store),
        },
        "audit": {
            "database": audit["database"],
            "searched": audit["searched"],
            "events": len(audit["events"]),
            "person_records": len(audit["person"]),
        },
        "matches": list(matches),
    }
    return manifest, members


def make_evidence(
    path: Path | str,
    person_id: str | None = None,
    store: AuditStore | None = None,
    key: SigningKey | None = None,
    *,
    output: Path | str | None = None,
    include_file: bool = False,
    registry: KeyRegistry | None = None,
    matches: Sequence[Mapping[str, Any]] | None = None,
    person_records: Sequence[Mapping[str, Any]] | None = None,
    detectors: Mapping[str, TraceDetector] | None = None,
    template_key: bytes | None = None,
) -> Path:
    """Write the evidence package for ``path`` (default ``<path>.evidence.zip``) atomically; returns its path.

    ``key`` signs the manifest (default: the public DEMO key, flagged ``signer.demo``); ``registry`` judges the
    file's own label signatures (default: the DEMO keys plus the audit store's registry); ``matches`` are the
    match records and ``person_records`` the consent-ledger and review records (default: what
    :func:`likeness_records` finds, matching with the registry's templates when ``template_key`` is given).
    With ``include_file`` the file itself goes in as ``content/NAME``.
    """
    from ..signing import demo_signing_key

    target = Path(path)
    signer = key if key is not None else demo_signing_key()
    dst = Path(output) if output is not None else target.with_name(target.name + ".evidence.zip")
    if same_file(target, dst):
        raise FileAccessError(f"the evidence package would replace {target.name} itself; write it elsewhere")
    manifest, members = evidence_manifest(
        target,
        person_id,
        store,
        registry=registry,
        matches=matches,
        person_records=person_records,
        detectors=detectors,
        template_key=template_key,
    )
    listed = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for name, data in members.items()}
    if include_file:
        listed[content_member(target.name)] = {
            "sha256": manifest["subject"]["sha256"],
            "size": manifest["subject"]["size"],
        }
    manifest["subject"]["included"] = content_member(target.name) if include_file else None
    manifest["members"] = listed
    manifest["signer"] = _signer(signer)
    body = canonical_json(manifest)
    signature = {"alg": signer.alg.value, "key_id": signer.key_id, "signature": signer.sign(body).hex()}
    with atomic_output(dst) as tmp:
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MANIFEST, body)
                archive.writestr(SIGNATURE, canonical_json(signature))
                for name, data in members.items():
                    archive.writestr(name, data)
                if include_file:
                    archive.write(target, content_member(target.name), compress_type=zipfile.ZIP_STORED)
        except OSError as exc:
            raise access_error(exc, dst) from exc
    return dst


@dataclass(frozen=True)
class EvidenceProblem:
    """One thing wrong (``error``) or worth knowing (``warning``) about a package."""

    code: str
    message: str
    member: str | None = None
    severity: Severity = "error"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"code": self.code, "message": self.message, "member": self.member, "severity": self.severity}


@dataclass
class EvidenceReport:
    """What :func:`verify_evidence` found: ``ok`` when no member changed and a registered key's signature holds."""

    path: Path
    problems: list[EvidenceProblem] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    #: The registry's view of the signing key (provider, key_id, pinned), when it knows the key.
    signed_by: dict[str, Any] | None = None
    members: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is an error (warnings such as the DEMO key do not count)."""
        return not any(p.severity == "error" for p in self.problems)

    def add(self, code: str, message: str, member: str | None = None, severity: Severity = "error") -> None:
        """Record one problem."""
        self.problems.append(EvidenceProblem(code, message, member, severity))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``evidence verify --json``)."""
        return {
            "path": self.path.name,
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "signed_by": self.signed_by,
            "members": self.members,
            "manifest": self.manifest,
        }


def _safe_name(name: str) -> bool:
    """False for a name an extractor could be tricked with (absolute, ``..``, backslash, drive, NUL)."""
    parts = name.split("/")
    return not (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or re.match(r"[A-Za-z]:", name)
        or any(part in ("", ".", "..") for part in parts)
    )


def _open_package(path: Path, max_bytes: int) -> tuple[ZipArchive, dict[str, ZipEntry]]:
    """The package's central directory, refused (typed error) when hostile before anything is inflated."""
    try:
        archive = ZipArchive(path)
    except OSError as exc:
        raise access_error(exc, path) from exc
    except MalformedFileError as exc:
        raise type(exc)(f"{path.name} is not a readable evidence package: {exc}") from None
    entries = [e for e in archive.entries if not e.name.endswith("/")]
    if len(archive.entries) > MAX_MEMBERS:
        raise LimitExceededError(f"evidence package has {len(archive.entries)} members (limit {MAX_MEMBERS})")
    by_name: dict[str, ZipEntry] = {}
    total = 0
    for entry in entries:
        if not _safe_name(entry.name):
            raise MalformedFileError(f"evidence package member name {entry.name!r} is unsafe (path traversal?)")
        if entry.name in by_name:
            raise MalformedFileError(f"evidence package holds {entry.name!r} twice")
        if entry.size > INFLATE_RATIO_FLOOR and entry.size > MAX_INFLATE_RATIO * max(entry.compressed_size, 1):
            raise LimitExceededError(f"evidence member {entry.name!r} inflates over {MAX_INFLATE_RATIO}:1 (zip bomb?)")
        total += entry.size
        if total > max_bytes:
            raise LimitExceededError(f"evidence package inflates to over {max_bytes} bytes (zip bomb?)")
        by_name[entry.name] = entry
    return archive, by_name


def _load_json(archive: ZipArchive, entry: ZipEntry) -> tuple[bytes, Any]:
    raw = archive.read(entry, MAX_MANIFEST_BYTES)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    try:
        return raw, json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedFileError(f"evidence {entry.name} is not valid JSON ({type(exc).__name__})") from None


def _check_signature(
    report: EvidenceReport, body: bytes, manifest: Mapping[str, Any], sig: Any, registry: KeyRegistry
) -> None:
    from ..signing import PublicKey

    signer = manifest.get("signer")
    if not isinstance(sig, dict) or not isinstance(signer, dict):
        report.add("signature-invalid", "the signature or the manifest's signer is missing or not an object", SIGNATURE)
        return
    try:
        signature = bytes.fromhex(str(sig.get("signature", "")))
        claimed = PublicKey.from_hex(str(signer.get("alg")), str(signer.get("public_key")))
    except (ValueError, SignatureError) as exc:
        report.add("signature-invalid", f"the signature or signer key cannot be read: {exc}", SIGNATURE)
        return
    key_id = sig.get("key_id")
    if key_id != claimed.key_id or signer.get("key_id") != claimed.key_id:
        report.add("signature-invalid", "the signature names another key than the manifest's signer", SIGNATURE)
        return
    entry = registry.by_key_id(claimed.key_id)
    if entry is None:
        report.add("unknown-key", f"signing key {claimed.key_id} is not in the key registry", SIGNATURE)
        valid = claimed.verify(body, signature)
    else:
        report.signed_by = {"provider": entry.provider, "key_id": entry.key_id, "pinned": entry.pinned}
        valid = entry.public_key.verify(body, signature)
        if not entry.pinned:
            report.add(
                "key-not-pinned",
                f"key {entry.key_id} is registered but not pinned: proves no origin",
                SIGNATURE,
                "warning",
            )
    if not valid:
        report.add("signature-invalid", "the signature does not match the manifest (manifest altered?)", MANIFEST)
    if signer.get("demo"):
        report.add(
            "demo-key",
            "signed with the public DEMO key: shows integrity only, anyone can sign with it",
            SIGNATURE,
            "warning",
        )


def verify_evidence(
    path: Path | str, registry: KeyRegistry | None = None, *, max_bytes: int = MAX_PACKAGE_BYTES
) -> EvidenceReport:
    """Check an evidence package: every member's hash against the manifest, and the manifest's signature.

    ``registry`` decides which keys are known (default: the DEMO keys only, which verify but are flagged).
    Tampering is reported in the result; a ZIP that is hostile or not a ZIP raises a typed error
    (:class:`~aigclabel.errors.MalformedFileError`, :class:`~aigclabel.errors.LimitExceededError`).
    """
    from ..signing import demo_registry

    target = Path(path)
    report = EvidenceReport(target)
    archive, entries = _open_package(target, max_bytes)
    report.members = sorted(entries)
    if MANIFEST not in entries:
        report.add("manifest-missing", f"no {MANIFEST}: not an evidence package, or its manifest was removed")
        return report
    body, manifest = _load_json(archive, entries[MANIFEST])
    if not isinstance(manifest, dict) or manifest.get("format") != EVIDENCE_FORMAT:
        report.add("manifest-invalid", f"{MANIFEST} is not an {EVIDENCE_FORMAT} manifest", MANIFEST)
        return report
    report.manifest = manifest
    if SIGNATURE not in entries:
        report.add("signature-missing", f"no {SIGNATURE}: the manifest is unsigned (signature removed?)", SIGNATURE)
    else:
        _check_signature(
            report, body, manifest, _load_json(archive, entries[SIGNATURE])[1], registry or demo_registry()
        )
    listed = manifest.get("members")
    if not isinstance(listed, dict):
        report.add("manifest-invalid", "the manifest lists no members", MANIFEST)
        return report
    for name in sorted(set(entries) - set(listed) - {MANIFEST, SIGNATURE}):
        report.add("member-added", f"{name} is not listed in the manifest (added after signing)", name)
    for name, expected in sorted(listed.items()):
        entry = entries.get(name)
        if entry is None:
            report.add("member-missing", f"{name} is listed in the manifest but missing (removed)", name)
            continue
        digest = hashlib.sha256()
        try:
            archive.stream(entry, digest.update)
        except MalformedFileError as exc:
            if isinstance(exc, LimitExceededError):
                raise
            report.add("member-altered", f"{name} is damaged: {exc}", name)
            continue
        want = expected.get("sha256") if isinstance(expected, dict) else None
        if digest.hexdigest() != want:
            report.add("member-altered", f"{name} does not match its hash in the manifest (altered)", name)
    return report
