"""Events say whether their HTTP response was delivered.

The service records a ``label`` or ``verify`` event before it answers (the event must exist even if the
process dies while sending), then marks it delivered once the response has been handed over, so after
a crash the log tells served events from those whose client never got the answer.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("aigclabel_events") as batch:
        batch.add_column(sa.Column("delivered", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("aigclabel_events") as batch:
        batch.drop_column("delivered")
