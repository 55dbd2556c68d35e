"""Idempotency keys point at the movement they made instead of storing an HTTP answer.

A key used to keep a copy of the first response (status, JSON body, Location). It now keeps a
reference to the ledger entry (a credit or debit) or the transfer it created; a retry renders
that movement again, the same way as the first time. The ledger is append-only, so the
movement a key points at never changes.

Upgrade reads the id back out of each stored body; downgrade rebuilds the bodies from the
rows (PostgreSQL's JSON of the row: the same fields, timestamps in its own format), so a
retry after either still moves nothing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "idempotency_keys"


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True))
    op.add_column(TABLE, sa.Column("transfer_id", sa.BigInteger(), nullable=True))
    op.execute(f"""
        UPDATE {TABLE} SET
            ledger_entry_id = CASE WHEN location LIKE '/transactions/%'
                                   THEN (response_body->>'id')::bigint END,
            transfer_id = CASE WHEN location LIKE '/transfers/%'
                               THEN (response_body->>'id')::bigint END
    """)
    op.create_foreign_key(op.f("fk_idempotency_keys_ledger_entry_id_ledger_entries"), TABLE,
                          "ledger_entries", ["ledger_entry_id"], ["id"])
    op.create_foreign_key(op.f("fk_idempotency_keys_transfer_id_transfers"), TABLE,
                          "transfers", ["transfer_id"], ["id"])
    op.create_check_constraint(op.f("ck_idempotency_keys_one_movement"), TABLE,
                               "num_nonnulls(ledger_entry_id, transfer_id) = 1")
    op.drop_constraint(op.f("ck_idempotency_keys_success_only"), TABLE, type_="check")
    for column in ("response_status", "response_body", "location"):
        op.drop_column(TABLE, column)


def downgrade() -> None:
    op.add_column(TABLE, sa.Column("response_status", sa.Integer(), nullable=True))
    op.add_column(TABLE, sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()),
                                   nullable=True))
    op.add_column(TABLE, sa.Column("location", sa.String(length=200), nullable=True))
    op.execute(f"""
        UPDATE {TABLE} k SET response_status = 201, response_body = to_jsonb(e),
                             location = '/transactions/' || e.id
        FROM ledger_entries e WHERE k.ledger_entry_id = e.id
    """)
    op.execute(f"""
        UPDATE {TABLE} k SET response_status = 201, location = '/transfers/' || t.id,
            response_body = to_jsonb(t) || jsonb_build_object('entries', (
                SELECT jsonb_agg(to_jsonb(e) ORDER BY e.id) FROM ledger_entries e
                WHERE e.transfer_id = t.id))
        FROM transfers t WHERE k.transfer_id = t.id
    """)
    op.alter_column(TABLE, "response_status", nullable=False)
    op.alter_column(TABLE, "response_body", nullable=False)
    op.create_check_constraint(op.f("ck_idempotency_keys_success_only"), TABLE,
                               "response_status BETWEEN 200 AND 299")
    op.drop_constraint(op.f("ck_idempotency_keys_one_movement"), TABLE, type_="check")
    op.drop_constraint(op.f("fk_idempotency_keys_transfer_id_transfers"), TABLE,
                       type_="foreignkey")
    op.drop_constraint(op.f("fk_idempotency_keys_ledger_entry_id_ledger_entries"), TABLE,
                       type_="foreignkey")
    op.drop_column(TABLE, "transfer_id")
    op.drop_column(TABLE, "ledger_entry_id")
