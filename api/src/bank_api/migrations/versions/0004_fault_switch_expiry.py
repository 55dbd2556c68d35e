"""The fault switch turns itself off at a deadline, and can be narrowed to HTTP methods.

`expires_at`: set from PUT /admin/faults' `duration_s`; past it the switch reads as off,
whoever set it and whatever became of them (a classroom scenario killed mid-run leaves no
fault behind). `methods`: GET, POST, ...; empty means every method, as before, so the
history GETs and the credit/debit POSTs of one route template can be told apart.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "fault_injection"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(TABLE, sa.Column("methods", postgresql.ARRAY(sa.String(length=10)),
                                   server_default="{}", nullable=False))


def downgrade() -> None:
    op.drop_column(TABLE, "methods")
    op.drop_column(TABLE, "expires_at")
