"""Audit tables: one row per label / verify / unlabeled-export / strip event, plus the key registry.

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
        Index,
        Integer,
        String,
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
        CheckConstraint("kind IN ('label', 'verify', 'export_unlabeled', 'strip')", name="ck_aigclabel_events_kind"),
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
