"""The consent ledger: who allowed whom to use their face or voice, for what, until when; signed and hash-chained.

Deep Synthesis Provisions Art. 14: a provider that edits a face or voice must have the person notified and
obtain separate consent. Each grant, revocation, notification proof, deletion and review decision is one
entry: canonical JSON (sorted keys, no spaces, UTF-8) holding its position ``seq``, the previous entry's
hash ``prev`` and the signer's public key, hashed with SHA-256 and signed with an aigclabel signing key
(Ed25519, SM2 or the demo key; :mod:`aigclabel.signing`). Entries name a person by an opaque id, never by a
photo or recording. A signed *head* (the last ``seq`` and hash) is rewritten with every append.

What :meth:`ConsentLedger.verify_chain` detects, and what it cannot:

* an altered entry (its hash or signature no longer verifies), an inserted or deleted middle entry (a gap
  in ``seq`` or a ``prev`` that does not match), reordered entries (``seq`` is inside the signed body);
* a cut tail: the signed head names a later entry than the last one stored; a deleted head is reported;
* an entry signed by a key that is not trusted (when trusted keys are given: the store's key registry or
  the operator's key).

Not detected: someone who can write the database *and* kept an older signed head can cut the tail and put
that head back; compare with a head kept elsewhere (``verify_chain(expect=(seq, hash))``, the CLI's
``--expect-head``) to catch that. Whoever holds the signing key can rewrite the whole ledger; keep the key
out of the database's reach. :meth:`ConsentLedger.check` verifies the entries it relies on (hash and
signature) but not the whole chain; an entry whose indexed person column was altered to hide it from
``check`` is found by ``verify_chain``.

Revocation takes effect at once: ``check`` reads the ledger on every call, and a revocation applies to
every grant recorded before it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .._extras import needs_extra
from ..audit import AuditStore
from ..audit.models import LedgerHead, LedgerRow
from ..errors import ConsentChainError, LikenessError, SignatureError
from ..signing import PublicKey, SigningKey
from .types import MODALITIES, Modality

with needs_extra("audit"):
    from sqlalchemy import select, text
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError
    from sqlalchemy.orm import Session

EntryKind = Literal["grant", "revoke", "notify", "delete", "review"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("grant", "revoke", "notify", "delete", "review")
#: Hash ``prev`` of the first entry.
GENESIS = "0" * 64
#: Prefix of a consent token: ``aigclabel-consent:<seq>:<sha256 of the grant entry>``.
TOKEN_PREFIX = "aigclabel-consent"
_ENTRY_DOMAIN = b"aigclabel consent ledger entry v1\x00"
_HEAD_DOMAIN = b"aigclabel consent ledger head v1\x00"
_PG_LEDGER_LOCK = 0x4C494B45  # "LIKE": advisory lock serialising appends on PostgreSQL
_MAX_TEXT = 2048


def canonical(value: Mapping[str, Any]) -> bytes:
    """The one byte form of a JSON object that is hashed and signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise LikenessError("consent times must be time-zone aware")
    return when.astimezone(UTC).isoformat()


def _parse_time(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConsentChainError(f"ledger time {value!r} is not ISO 8601") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: str, what: str, limit: int = 256) -> str:
    if not value or len(value) > limit or "\x00" in value:
        raise LikenessError(f"{what} must be 1 to {limit} characters without NUL")
    return value


def _signer(key: PublicKey) -> dict[str, str]:
    return {"alg": key.alg.value, "key_id": key.key_id, "public_key": key.hex}


def _signed_by(signer: object) -> PublicKey:
    if not isinstance(signer, Mapping):
        raise ConsentChainError("a ledger record names no signer")
    try:
        return PublicKey.from_hex(str(signer.get("alg")), str(signer.get("public_key")))
    except SignatureError as exc:
        raise ConsentChainError(f"a ledger record's signer key is unusable: {exc}") from None


@dataclass(frozen=True)
class Purposes:
    """What a grant allows: commercial use, distortion (editing the likeness), and a free-text scope."""

    commercial: bool = False
    distortion: bool = False
    scope: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form inside an entry."""
        return {"commercial": self.commercial, "distortion": self.distortion, "scope": self.scope}


@dataclass(frozen=True)
class Notice:
    """Proof the person was notified (Art. 14): SHA-256 of the notice text, the channel, and when it was sent."""

    sha256: str
    channel: str
    at: datetime

    @classmethod
    def of_text(cls, notice: str | bytes, channel: str, at: datetime) -> Notice:
        """The proof for a notice whose full text (or file bytes) is ``notice``."""
        data = notice.encode() if isinstance(notice, str) else notice
        return cls(hashlib.sha256(data).hexdigest(), channel, at)

    def to_dict(self) -> dict[str, str]:
        """JSON form inside an entry."""
        digest = self.sha256.lower().removeprefix("sha256:")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise LikenessError("a notice proof holds the SHA-256 (64 hex digits) of the notice")
        return {"sha256": digest, "channel": _text(self.channel, "a notice channel"), "at": _iso(self.at)}


@dataclass(frozen=True)
class LedgerEntry:
    """One verified ledger entry as stored: ``body`` is what was hashed and signed."""

    seq: int
    hash: str
    body: Mapping[str, Any]
    signature: str

    @property
    def kind(self) -> str:
        """grant, revoke, notify, delete or review."""
        return str(self.body.get("kind"))

    @property
    def person(self) -> str:
        """The opaque person id."""
        return str(self.body.get("person"))

    @property
    def ts(self) -> datetime:
        """When the entry was recorded."""
        when = _parse_time(self.body.get("ts"))
        assert when is not None
        return when

    @property
    def token(self) -> str:
        """The consent token of a grant, which an uploader presents: ``aigclabel-consent:<seq>:<hash>``."""
        return f"{TOKEN_PREFIX}:{self.seq}:{self.hash}"

    @property
    def key_id(self) -> str:
        """Fingerprint of the key that signed the entry."""
        signer = self.body.get("signer")
        return str(signer.get("key_id")) if isinstance(signer, Mapping) else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI's ``--json`` output)."""
        return {"seq": self.seq, "hash": self.hash, "token": self.token, **dict(self.body), "sig": self.signature}


def parse_token(token: str) -> tuple[int, str]:
    """``(seq, hash)`` of a consent token; :class:`LikenessError` if it is not one."""
    parts = token.strip().split(":")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1].isdigit():
        raise LikenessError(f"not a consent token (expected {TOKEN_PREFIX}:<seq>:<sha256>): {token[:100]!r}")
    digest = parts[2].lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise LikenessError("a consent token ends with the 64-hex-digit hash of its grant entry")
    return int(parts[1]), digest


ConsentState = Literal["granted", "none", "revoked", "expired", "not-yet-valid", "purpose-not-covered", "not-notified"]


@dataclass(frozen=True)
class ConsentStatus:
    """The answer of :meth:`ConsentLedger.check`: ``state`` and the grant it rests on (if any)."""

    state: ConsentState
    grant: LedgerEntry | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when a valid grant covers the request."""
        return self.state == "granted"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "state": self.state,
            "reason": self.reason,
            "grant": self.grant.token if self.grant else None,
        }


@dataclass
class ChainReport:
    """What :meth:`ConsentLedger.verify_chain` found; ``ok`` when ``problems`` is empty."""

    count: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    trusted_keys: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every entry, link, signature and the head verify."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "count": self.count,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "trusted_keys": self.trusted_keys,
            "problems": list(self.problems),
        }

    def raise_if_broken(self) -> None:
        """Raise :class:`ConsentChainError` naming the first problems when the ledger does not verify."""
        if self.problems:
            more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
            raise ConsentChainError("consent ledger does not verify: " + "; ".join(self.problems[:3]) + more)


def _decode_record(stored: str, what: str) -> tuple[dict[str, Any], str, str]:
    """``(body, hash, signature)`` of a stored record, its hash recomputed; :class:`ConsentChainError` if bad."""
    try:
        record = json.loads(stored)
        body, claimed, signature = record["body"], record["hash"], record["sig"]
    except (ValueError, KeyError, TypeError):
        raise ConsentChainError(f"{what} is not a ledger record") from None
    if not isinstance(body, dict) or not isinstance(claimed, str) or not isinstance(signature, str):
        raise ConsentChainError(f"{what} is not a ledger record")
    try:
        digest = hashlib.sha256(canonical(body)).hexdigest()
    except ValueError:
        raise ConsentChainError(f"{what} holds a value JSON cannot carry") from None
    if digest != claimed:
        raise ConsentChainError(f"{what} was altered: its hash is {digest[:16]}..., it claims {claimed[:16]}...")
    try:
        signed = bytes.fromhex(signature)
    except ValueError:
        raise ConsentChainError(f"{what}'s signature is not hex") from None
    domain = _HEAD_DOMAIN if what.startswith("the head") else _ENTRY_DOMAIN
    if not _signed_by(body.get("signer")).verify(domain + canonical(body), signed):
        raise ConsentChainError(f"{what}'s signature does not verify")
    return body, digest, signature


class ConsentLedger:
    """The consent ledger in the audit database of ``store``; ``key`` signs new entries.

    ``trusted``: the public keys whose signatures count (default: the key registry in the store plus
    ``key``'s own); with none at all, signatures are checked against the keys the entries name, which shows
    alteration but not who wrote them (the report says so).
    """

    def __init__(
        self, store: AuditStore, key: SigningKey | None = None, *, trusted: Iterable[PublicKey] | None = None
    ) -> None:
        self.store = store
        self.key = key
        if trusted is None:
            trusted = [entry.public_key for entry in store.key_registry()]
        self._trusted = {k.key_id for k in trusted} | ({key.key_id} if key else set())

    # ------------------------------------------------------------------ writing
    def _append(self, kind: EntryKind, person: str, fields: Mapping[str, Any]) -> LedgerEntry:
        if self.key is None:
            raise LikenessError("writing to the consent ledger needs a signing key")
        key = self.key
        person = _text(person, "a person id")
        for _attempt in range(5):
            try:
                with Session(self.store.engine) as session, session.begin():
                    if self.store.dialect == "postgresql":
                        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LEDGER_LOCK})
                    last = session.scalar(select(LedgerRow).order_by(LedgerRow.seq.desc()).limit(1))
                    seq = 1 if last is None else last.seq + 1
                    ts = self.store.clock()
                    body = {
                        "v": 1,
                        "seq": seq,
                        "prev": GENESIS if last is None else last.entry_hash,
                        "kind": kind,
                        "person": person,
                        "ts": _iso(ts),
                        "signer": _signer(key.public_key),
                        **fields,
                    }
                    digest = hashlib.sha256(canonical(body)).hexdigest()
                    signature = key.sign(_ENTRY_DOMAIN + canonical(body)).hex()
                    stored = canonical({"body": body, "hash": digest, "sig": signature}).decode()
                    session.add(LedgerRow(seq=seq, entry_hash=digest, kind=kind, person_id=person, ts=ts, body=stored))
                    head = {"seq": seq, "hash": digest, "ts": _iso(ts), "signer": _signer(key.public_key)}
                    head_hash = hashlib.sha256(canonical(head)).hexdigest()
                    head_sig = key.sign(_HEAD_DOMAIN + canonical(head)).hex()
                    session.merge(
                        LedgerHead(id=1, body=canonical({"body": head, "hash": head_hash, "sig": head_sig}).decode())
                    )
                return LedgerEntry(seq, digest, body, signature)
            except IntegrityError:
                continue  # another writer took this seq first (only without the lock): read the new tail
            except SQLAlchemyError as exc:
                from ..errors import AuditUnavailableError

                raise AuditUnavailableError(f"cannot append to the consent ledger: {exc.__class__.__name__}") from exc
        raise LikenessError("could not append to the consent ledger: other writers kept taking the next position")

    def grant(
        self,
        person: str,
        grantee: str,
        modality: Modality,
        *,
        purposes: Purposes = Purposes(),
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        notice: Notice | None = None,
    ) -> LedgerEntry:
        """Record that ``person`` allows ``grantee`` to use their ``modality`` for ``purposes``.

        Without a ``notice`` the grant does not count until a :meth:`notify` entry proves the person was
        notified (Art. 14).
        """
        if modality not in MODALITIES:
            raise LikenessError(f"modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
        if valid_from and valid_until and valid_until <= valid_from:
            raise LikenessError("a grant's validity must end after it starts")
        return self._append(
            "grant",
            person,
            {
                "grantee": _text(grantee, "a grantee"),
                "modality": modality,
                "purposes": {**purposes.to_dict(), "scope": purposes.scope[:_MAX_TEXT]},
                "valid_from": _iso(valid_from) if valid_from else None,
                "valid_until": _iso(valid_until) if valid_until else None,
                "notice": notice.to_dict() if notice else None,
            },
        )

    def _grant_entry(self, grant: str) -> LedgerEntry:
        digest = parse_token(grant)[1] if grant.startswith(TOKEN_PREFIX) else grant.lower()
        entry = self.find(digest)
        if entry is None or entry.kind != "grant":
            raise LikenessError(f"no grant {digest[:16]}... in the consent ledger")
        return entry

    def revoke(
        self,
        person: str,
        *,
        grant: str | None = None,
        grantee: str | None = None,
        modality: Modality | None = None,
        reason: str = "",
    ) -> LedgerEntry:
        """Revoke, from now on, one grant (its hash or token) or every grant of ``person`` (to ``grantee``,
        for ``modality`` when given)."""
        ref = None
        if grant is not None:
            found = self._grant_entry(grant)
            if found.person != person:
                raise LikenessError(f"grant {found.hash[:16]}... is not {person}'s")
            ref = found.hash
        return self._append(
            "revoke", person, {"grant": ref, "grantee": grantee, "modality": modality, "reason": reason[:_MAX_TEXT]}
        )

    def notify(self, grant: str, notice: Notice) -> LedgerEntry:
        """Record the proof that the person of ``grant`` (hash or token) was notified."""
        found = self._grant_entry(grant)
        return self._append("notify", found.person, {"grant": found.hash, "notice": notice.to_dict()})

    def record_deletion(self, person: str, templates: int) -> LedgerEntry:
        """Record that ``person``'s templates were deleted (no biometrics: only how many); it revokes every grant."""
        return self._append("delete", person, {"templates_deleted": templates})

    def record_review(
        self, person: str, *, review_id: int, decision: str, content_sha256: str, reviewer: str, note: str = ""
    ) -> LedgerEntry:
        """Record a review decision about ``person``'s likeness in an upload (a consent matter)."""
        return self._append(
            "review",
            person,
            {
                "review_id": review_id,
                "decision": decision,
                "content_sha256": content_sha256,
                "reviewer": reviewer,
                "note": note[:_MAX_TEXT],
            },
        )

    # ------------------------------------------------------------------ reading
    def _entry(self, row: LedgerRow) -> LedgerEntry:
        body, digest, signature = _decode_record(row.body, f"ledger entry {row.seq}")
        if body.get("seq") != row.seq or digest != row.entry_hash or body.get("person") != row.person_id:
            raise ConsentChainError(f"ledger entry {row.seq}'s columns disagree with its signed body")
        return LedgerEntry(row.seq, digest, body, signature)

    def _rows(self, *criteria: Any) -> list[LedgerRow]:
        try:
            with Session(self.store.engine) as session:
                rows = list(session.scalars(select(LedgerRow).where(*criteria).order_by(LedgerRow.seq)))
                session.expunge_all()
                return rows
        except SQLAlchemyError as exc:
            from ..errors import AuditUnavailableError

            raise AuditUnavailableError(f"cannot read the consent ledger: {exc.__class__.__name__}") from exc

    def entries(self, person: str | None = None) -> list[LedgerEntry]:
        """Entries (of ``person``), oldest first, each verified (hash and signature)."""
        criteria = [LedgerRow.person_id == person] if person is not None else []
        return [self._entry(row) for row in self._rows(*criteria)]

    def find(self, digest: str) -> LedgerEntry | None:
        """The entry whose hash is ``digest``, verified."""
        rows = self._rows(LedgerRow.entry_hash == digest.lower())
        return self._entry(rows[0]) if rows else None

    def check(
        self,
        person: str,
        grantee: str,
        modality: Modality,
        *,
        commercial: bool = False,
        distortion: bool = False,
        at: datetime | None = None,
    ) -> ConsentStatus:
        """Whether ``person`` has a valid, notified, unrevoked grant to ``grantee`` covering the request at ``at``
        (default now). The best state found is returned: granted, else the reason the closest grant fails."""
        when = at or self.store.clock()
        # Now means every entry stored, whatever its clock said: a revocation written by a server whose
        # clock runs ahead still applies at once. Only a question about a past moment filters by time.
        history = [e for e in self.entries(person) if at is None or e.ts <= at]
        candidates = [
            e
            for e in history
            if e.kind == "grant" and e.body.get("grantee") == grantee and e.body["modality"] == modality
        ]
        if not candidates:
            return ConsentStatus("none", reason=f"{person} has granted {grantee} no {modality} consent")
        order: list[ConsentState] = ["revoked", "purpose-not-covered", "expired", "not-yet-valid", "not-notified"]
        best: ConsentStatus | None = None
        for entry in reversed(candidates):
            status = self._judge(entry, history, when, commercial=commercial, distortion=distortion)
            if status.ok:
                return status
            if best is None or order.index(status.state) > order.index(best.state):
                best = status
        assert best is not None
        return best

    @staticmethod
    def _judge(
        grant: LedgerEntry, history: list[LedgerEntry], when: datetime, *, commercial: bool, distortion: bool
    ) -> ConsentStatus:
        body = grant.body
        for later in history:
            if later.seq <= grant.seq:
                continue
            if later.kind == "delete":
                return ConsentStatus("revoked", grant, f"{grant.person}'s enrolment was deleted (entry {later.seq})")
            if later.kind == "revoke":
                revoked = later.body
                if revoked.get("grant") == grant.hash or (
                    revoked.get("grant") is None
                    and revoked.get("grantee") in (None, body["grantee"])
                    and revoked.get("modality") in (None, body["modality"])
                ):
                    return ConsentStatus("revoked", grant, f"revoked by entry {later.seq} at {revoked['ts']}")
        purposes = body.get("purposes") or {}
        if distortion and not purposes.get("distortion"):
            return ConsentStatus("purpose-not-covered", grant, "the grant does not allow distorting the likeness")
        if commercial and not purposes.get("commercial"):
            return ConsentStatus("purpose-not-covered", grant, "the grant does not allow commercial use")
        start, end = _parse_time(body.get("valid_from")), _parse_time(body.get("valid_until"))
        if start and when < start:
            return ConsentStatus("not-yet-valid", grant, f"the grant is valid from {body['valid_from']}")
        if end and when >= end:
            return ConsentStatus("expired", grant, f"the grant expired at {body['valid_until']}")
        notified = body.get("notice") is not None or any(
            e.kind == "notify" and e.body.get("grant") == grant.hash for e in history
        )
        if not notified:
            return ConsentStatus("not-notified", grant, "no proof that the person was notified (Art. 14)")
        return ConsentStatus("granted", grant, f"grant entry {grant.seq}")

    def check_token(self, token: str, person: str, modality: Modality, *, at: datetime | None = None) -> ConsentStatus:
        """Whether consent token ``token`` is a valid grant of ``person`` for ``modality`` (to its grantee)."""
        seq, digest = parse_token(token)
        entry = self.find(digest)
        if entry is None or entry.seq != seq or entry.kind != "grant":
            return ConsentStatus("none", reason="the consent token names no grant in this ledger")
        if entry.person != person or entry.body.get("modality") != modality:
            return ConsentStatus("none", entry, f"the consent token is not {person}'s {modality} consent")
        return self.check(person, str(entry.body["grantee"]), modality, at=at)

    # ------------------------------------------------------------------ verification
    def head(self) -> tuple[int, str] | None:
        """The signed head ``(seq, hash)`` as stored (verified), or ``None`` on an empty ledger."""
        with Session(self.store.engine) as session:
            row = session.get(LedgerHead, 1)
            stored = row.body if row else None
        if stored is None:
            return None
        body, _digest, _sig = _decode_record(stored, "the head")
        return int(body["seq"]), str(body["hash"])

    def verify_chain(self, *, expect: tuple[int, str] | None = None) -> ChainReport:
        """Check every entry, link, signature and the signed head; see the module docstring for what is caught.

        ``expect``: a head ``(seq, hash)`` kept outside the database; the ledger must still contain it.
        """
        report = ChainReport(trusted_keys=bool(self._trusted))
        prev, expected_seq = GENESIS, 1
        seen: dict[int, str] = {}
        for row in self._rows():
            report.count += 1
            try:
                entry = self._entry(row)
            except ConsentChainError as exc:
                report.problems.append(str(exc))
                prev, expected_seq = row.entry_hash, row.seq + 1
                continue
            if entry.seq != expected_seq:
                report.problems.append(f"entry {entry.seq} follows entry {expected_seq - 1}: entries are missing")
            if entry.body.get("prev") != prev:
                report.problems.append(f"entry {entry.seq} does not link to the entry before it")
            if entry.kind not in ENTRY_KINDS:
                report.problems.append(f"entry {entry.seq} has an unknown kind {entry.kind!r}")
            if self._trusted and entry.key_id not in self._trusted:
                report.problems.append(f"entry {entry.seq} is signed by key {entry.key_id}, which is not trusted")
            seen[entry.seq] = entry.hash
            prev, expected_seq = entry.hash, entry.seq + 1
        report.head_seq, report.head_hash = expected_seq - 1, prev
        try:
            head = self.head()
        except ConsentChainError as exc:
            report.problems.append(str(exc))
            head = None
        else:
            if head is None and report.count:
                report.problems.append("the signed head is missing")
        if head is not None and head != (report.head_seq, report.head_hash):
            if head[0] > report.head_seq:
                report.problems.append(f"the signed head names entry {head[0]}, the ledger ends at {report.head_seq}")
            else:
                report.problems.append(f"the signed head names entry {head[0]}, not the last one ({report.head_seq})")
        if expect is not None and seen.get(expect[0]) != expect[1].lower():
            report.problems.append(f"the expected head (entry {expect[0]}) is not in the ledger")
        return report
