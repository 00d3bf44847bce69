"""Likeness protection: the consent ledger and its signed head, enrolled people, encrypted templates, the review
queue of the platform scan, and the ``likeness`` event kind (gate, scan and review decisions).

The ledger keeps each entry's canonical signed JSON as text (a JSON column would reorder its keys, and the
hash covers the exact bytes); ``seq`` is its primary key, so two writers cannot append the same position.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=False)
_KINDS_BEFORE = "kind IN ('label', 'verify', 'export_unlabeled', 'strip')"
_KINDS_AFTER = "kind IN ('label', 'verify', 'export_unlabeled', 'strip', 'likeness')"


def _event_kinds(expression: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("aigclabel_events", recreate="auto") as batch:
        batch.drop_constraint("ck_aigclabel_events_kind", type_="check")
        batch.create_check_constraint("ck_aigclabel_events_kind", sa.text(expression))


def upgrade() -> None:
    op.create_table(
        "aigclabel_likeness_ledger",
        sa.Column("seq", _ID, primary_key=True, autoincrement=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("person_id", sa.String(256), nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.UniqueConstraint("entry_hash", name="uq_aigclabel_likeness_ledger_hash"),
    )
    op.create_index("ix_aigclabel_likeness_ledger_person", "aigclabel_likeness_ledger", ["person_id"])
    op.create_table(
        "aigclabel_likeness_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_table(
        "aigclabel_likeness_people",
        sa.Column("person_id", sa.String(256), primary_key=True),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_table(
        "aigclabel_likeness_templates",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "person_id",
            sa.String(256),
            sa.ForeignKey("aigclabel_likeness_people.person_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_index("ix_aigclabel_likeness_templates_person", "aigclabel_likeness_templates", ["person_id"])
    op.create_table(
        "aigclabel_likeness_reviews",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("uploader", sa.String(512)),
        sa.Column("person_id", sa.String(256), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("distance", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(512)),
        sa.Column("decided", _TS),
        sa.Column("note", sa.String(2048)),
        sa.CheckConstraint(
            "status IN ('open', 'approve', 'remove', 'false-match')", name="ck_aigclabel_likeness_reviews_status"
        ),
    )
    op.create_index("ix_aigclabel_likeness_reviews_status", "aigclabel_likeness_reviews", ["status"])
    _event_kinds(_KINDS_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM aigclabel_events WHERE kind = 'likeness'")
    _event_kinds(_KINDS_BEFORE)
    op.drop_index("ix_aigclabel_likeness_reviews_status", "aigclabel_likeness_reviews")
    op.drop_table("aigclabel_likeness_reviews")
    op.drop_index("ix_aigclabel_likeness_templates_person", "aigclabel_likeness_templates")
    op.drop_table("aigclabel_likeness_templates")
    op.drop_table("aigclabel_likeness_people")
    op.drop_table("aigclabel_likeness_head")
    op.drop_index("ix_aigclabel_likeness_ledger_person", "aigclabel_likeness_ledger")
    op.drop_table("aigclabel_likeness_ledger")
