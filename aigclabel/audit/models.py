"""Audit tables: one row per label / verify / unlabeled-export / strip / likeness event, plus the key registry
and the likeness tables (consent ledger and its signed head, enrolled people, encrypted templates, reviews).

Timestamps are stored as naive UTC on every backend (:class:`UTCDateTime`), so comparisons in the
retention job mean the same thing on SQLite, which has no time-zone type, and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .._extras import needs_extra

with needs_extra("audit"):
    from sqlalchemy import (
        JSON,
        BigInteger,
        Boolean,
        CheckConstraint,
        DateTime,
        Float,
        ForeignKey,
        Index,
        Integer,
        LargeBinary,
        String,
        Text,
        UniqueConstraint,
    )
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.engine import Dialect
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    from sqlalchemy.types import TypeDecorator

from ..label import MAX_FIELD_LENGTH

#: Longest text we store in an indexed column: a label field's limit (:data:`aigclabel.label.MAX_FIELD_LENGTH`).
MAX_ID_LENGTH = MAX_FIELD_LENGTH


class EventKind(StrEnum):
    """What happened. ``export_unlabeled`` is the Measures Art. 9 case whose logs must be kept."""

    LABEL = "label"
    VERIFY = "verify"
    EXPORT_UNLABELED = "export_unlabeled"
    STRIP = "strip"
    #: A likeness decision (generation-time gate, platform scan, review); ``detail["action"]`` says which.
    LIKENESS = "likeness"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("audit timestamps must be time-zone aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


_JSON = JSON().with_variant(JSONB(), "postgresql")
_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class Base(DeclarativeBase):
    """Declarative base of the audit schema (Alembic's ``target_metadata``)."""


class Event(Base):
    """One audited event."""

    __tablename__ = "aigclabel_events"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('label', 'verify', 'export_unlabeled', 'strip', 'likeness')", name="ck_aigclabel_events_kind"
        ),
        Index("ix_aigclabel_events_ts", "ts"),
        Index("ix_aigclabel_events_produce_id", "produce_id"),
        Index("ix_aigclabel_events_content_sha256", "content_sha256"),
        Index("ix_aigclabel_events_payload_digest", "payload_digest"),
        Index("ix_aigclabel_events_watermark_payload", "watermark_payload"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    produce_id: Mapped[str | None] = mapped_column(String(MAX_ID_LENGTH))
    propagate_id: Mapped[str | None] = mapped_column(String(MAX_ID_LENGTH))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    payload_digest: Mapped[str | None] = mapped_column(String(64))
    watermark_payload: Mapped[str | None] = mapped_column(String(256))
    provider_code: Mapped[str | None] = mapped_column(String(MAX_ID_LENGTH))
    recipient: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(_JSON, nullable=False, default=dict)
    #: Whether the HTTP response of this event reached the client; NULL for events not served over HTTP
    #: (CLI, batch) and for rows written before revision 0002.
    delivered: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class StoredKey(Base):
    """A key-registry entry kept in the database (public keys only)."""

    __tablename__ = "aigclabel_keys"
    __table_args__ = (UniqueConstraint("key_id", name="uq_aigclabel_keys_key_id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), nullable=False, index=True)
    key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    alg: Mapped[str] = mapped_column(String(32), nullable=False)
    public_key: Mapped[str] = mapped_column(String(256), nullable=False)
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    note: Mapped[str] = mapped_column(String(512), nullable=False, default="")
    added: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class Acceptance(Base):
    """A user's acceptance of one version of the agreement's labelling clauses (Measures Art. 8, 9)."""

    __tablename__ = "aigclabel_acceptances"
    __table_args__ = (
        UniqueConstraint("user_id", "version", name="uq_aigclabel_acceptances_user_version"),
        Index("ix_aigclabel_acceptances_user_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(512), nullable=False)
    #: SHA-256 (hex) of the clause text the user accepted.
    version: Mapped[str] = mapped_column(String(64), nullable=False)
    lang: Mapped[str] = mapped_column(String(16), nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LedgerRow(Base):
    """One consent-ledger entry (:mod:`aigclabel.likeness.ledger`): its canonical signed JSON, kept as text.

    The other columns repeat what the JSON says, for queries only; verification reads the JSON. ``seq`` is the
    primary key, so two writers cannot both append entry ``n`` (the chain cannot fork).
    """

    __tablename__ = "aigclabel_likeness_ledger"
    __table_args__ = (
        UniqueConstraint("entry_hash", name="uq_aigclabel_likeness_ledger_hash"),
        Index("ix_aigclabel_likeness_ledger_person", "person_id"),
    )

    seq: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    person_id: Mapped[str] = mapped_column(String(256), nullable=False)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)


class LedgerHead(Base):
    """The signed head of the consent ledger (one row): the last entry's number and hash, so a cut tail shows."""

    __tablename__ = "aigclabel_likeness_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)


class LikenessPerson(Base):
    """An enrolled person: an opaque id (never a name or photo) and whether they opted out (protected)."""

    __tablename__ = "aigclabel_likeness_people"

    person_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    protected: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LikenessTemplate(Base):
    """One encrypted embedding of a person (AES-256-GCM; the associated data binds person, modality, model)."""

    __tablename__ = "aigclabel_likeness_templates"
    __table_args__ = (Index("ix_aigclabel_likeness_templates_person", "person_id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(
        String(256), ForeignKey("aigclabel_likeness_people.person_id", ondelete="CASCADE"), nullable=False
    )
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False)
    nonce: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LikenessReview(Base):
    """A scan match without a valid consent token, waiting for (or given) a person's decision."""

    __tablename__ = "aigclabel_likeness_reviews"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open', 'approve', 'remove', 'false-match')", name="ck_aigclabel_likeness_reviews_status"
        ),
        Index("ix_aigclabel_likeness_reviews_status", "status"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    uploader: Mapped[str | None] = mapped_column(String(512))
    person_id: Mapped[str] = mapped_column(String(256), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    distance: Mapped[float] = mapped_column(Float, nullable=False)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(String(512), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    reviewer: Mapped[str | None] = mapped_column(String(512))
    decided: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(2048))
