"""The demo fault switch: one row of added latency and error rate, set by PUT /admin/faults.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fault_injection",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("latency_ms", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error_rate", sa.Double(), server_default="0", nullable=False),
        sa.Column(
            "routes", postgresql.ARRAY(sa.String(length=200)), server_default="{}", nullable=False
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "error_rate >= 0 AND error_rate <= 1",
            name=op.f("ck_fault_injection_error_rate_in_range"),
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_fault_injection_single_row")),
        sa.CheckConstraint(
            "latency_ms BETWEEN 0 AND 30000", name=op.f("ck_fault_injection_latency_in_range")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fault_injection")),
    )


def downgrade() -> None:
    op.drop_table("fault_injection")
