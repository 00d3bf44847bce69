"""Initial audit schema: events and keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is frozen history: its literals (the 2048 of a label field's limit, column names) stay as
# they were when it ran, whatever aigclabel.label or the models declare today.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "aigclabel_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.DateTime(timezone=False), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("produce_id", sa.String(2048)),
        sa.Column("propagate_id", sa.String(2048)),
        sa.Column("content_sha256", sa.String(64)),
        sa.Column("payload_digest", sa.String(64)),
        sa.Column("watermark_payload", sa.String(256)),
        sa.Column("provider_code", sa.String(2048)),
        sa.Column("recipient", sa.String(512)),
        sa.Column("detail", _JSON, nullable=False),
        sa.CheckConstraint("kind IN ('label', 'verify', 'export_unlabeled', 'strip')", name="ck_aigclabel_events_kind"),
    )
    for column in ("ts", "produce_id", "content_sha256", "payload_digest", "watermark_payload"):
        op.create_index(f"ix_aigclabel_events_{column}", "aigclabel_events", [column])
    op.create_table(
        "aigclabel_keys",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(2048), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(32), nullable=False),
        sa.Column("public_key", sa.String(256), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("note", sa.String(512), nullable=False),
        sa.Column("added", sa.DateTime(timezone=False), nullable=False),
        sa.UniqueConstraint("key_id", name="uq_aigclabel_keys_key_id"),
    )
    op.create_index("ix_aigclabel_keys_provider", "aigclabel_keys", ["provider"])


def downgrade() -> None:
    op.drop_index("ix_aigclabel_keys_provider", "aigclabel_keys")
    op.drop_table("aigclabel_keys")
    for column in ("ts", "produce_id", "content_sha256", "payload_digest", "watermark_payload"):
        op.drop_index(f"ix_aigclabel_events_{column}", "aigclabel_events")
    op.drop_table("aigclabel_events")
