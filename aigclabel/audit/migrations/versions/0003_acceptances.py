"""Users' acceptances of the agreement's labelling clauses (Measures Art. 8 and 9).

A label-free copy (Art. 9) may be supplied only once the user agreement has set out the user's
labelling duties, so each acceptance is kept: who, which version (SHA-256 of the clause text), in
which language, when.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "aigclabel_acceptances",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(512), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=False), nullable=False),
        sa.UniqueConstraint("user_id", "version", name="uq_aigclabel_acceptances_user_version"),
    )
    op.create_index("ix_aigclabel_acceptances_user_id", "aigclabel_acceptances", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_aigclabel_acceptances_user_id", "aigclabel_acceptances")
    op.drop_table("aigclabel_acceptances")
