"""Initial schema: accounts, transfers, the append-only ledger, refusals, idempotency keys.

Also creates the read-only role `bank_readonly` that dashboards read business data through.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Business tables the dashboards may read; idempotency_keys (stored responses) is not one.
READABLE = "accounts, ledger_entries, transfers, refusals"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=10), server_default="active", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)",
            name=op.f("ck_accounts_closed_at_iff_closed"),
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_accounts_currency_iso_4217")),
        sa.CheckConstraint(
            "status = 'active' OR balance = 0", name=op.f("ck_accounts_closed_means_empty")
        ),
        sa.CheckConstraint("status IN ('active', 'closed')", name=op.f("ck_accounts_status_known")),
        sa.CheckConstraint(
            "balance <= 1000000000000000", name=op.f("ck_accounts_balance_below_max")
        ),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_accounts_balance_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index(op.f("ix_accounts_status_id"), "accounts", ["status", "id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "response_status BETWEEN 200 AND 299", name=op.f("ck_idempotency_keys_success_only")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False
    )
    op.create_table(
        "refusals",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "operation IN ('credit', 'debit', 'transfer')", name=op.f("ck_refusals_operation_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refusals")),
    )
    op.create_index(op.f("ix_refusals_created_at"), "refusals", ["created_at"], unique=False)
    op.create_table(
        "transfers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("source_account_id", sa.BigInteger(), nullable=False),
        sa.Column("destination_account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=140), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_transfers_currency_iso_4217")),
        sa.CheckConstraint(
            "amount > 0 AND amount <= 100000000000", name=op.f("ck_transfers_amount_in_range")
        ),
        sa.CheckConstraint(
            "source_account_id <> destination_account_id",
            name=op.f("ck_transfers_distinct_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_account_id"],
            ["accounts.id"],
            name=op.f("fk_transfers_destination_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["source_account_id"],
            ["accounts.id"],
            name=op.f("fk_transfers_source_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    op.create_index(
        op.f("ix_transfers_destination_account_id"),
        "transfers",
        ["destination_account_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_transfers_source_account_id"), "transfers", ["source_account_id"], unique=False
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("direction", sa.String(length=6), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(length=140), nullable=True),
        sa.Column("transfer_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "direction IN ('credit', 'debit')", name=op.f("ck_ledger_entries_direction_known")
        ),
        sa.CheckConstraint(
            "amount > 0 AND amount <= 100000000000", name=op.f("ck_ledger_entries_amount_in_range")
        ),
        sa.CheckConstraint(
            "balance_after >= 0 AND balance_after <= 1000000000000000",
            name=op.f("ck_ledger_entries_balance_after_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ledger_entries_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name=op.f("fk_ledger_entries_transfer_id_transfers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index(
        op.f("ix_ledger_entries_account_id_id"),
        "ledger_entries",
        ["account_id", "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ledger_entries_transfer_id"), "ledger_entries", ["transfer_id"], unique=False
    )

    # The ledger is append-only: history is corrected by new entries, never rewritten.
    op.execute("""
        CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
    """)
    op.execute("""
        CREATE TRIGGER ledger_entries_append_only
        BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()
    """)

    # Read-only access for dashboards. The role cannot log in; a login user is granted it
    # (docker/postgres-init creates one from .env). Roles are cluster-wide, hence IF NOT EXISTS.
    op.execute("""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bank_readonly') THEN
                CREATE ROLE bank_readonly NOLOGIN;
            END IF;
        END $$
    """)
    op.execute("GRANT USAGE ON SCHEMA public TO bank_readonly")
    op.execute(f"GRANT SELECT ON {READABLE} TO bank_readonly")


def downgrade() -> None:
    op.execute(f"REVOKE SELECT ON {READABLE} FROM bank_readonly")
    op.execute("REVOKE USAGE ON SCHEMA public FROM bank_readonly")
    # Another database of the cluster may still use the role: then it stays.
    op.execute("""
        DO $$ BEGIN
            DROP ROLE IF EXISTS bank_readonly;
        EXCEPTION WHEN dependent_objects_still_exist THEN NULL;
        END $$
    """)
    op.execute("DROP TRIGGER ledger_entries_append_only ON ledger_entries")
    op.execute("DROP FUNCTION ledger_entries_append_only()")
    op.drop_index(op.f("ix_ledger_entries_transfer_id"), table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_account_id_id"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_transfers_source_account_id"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_destination_account_id"), table_name="transfers")
    op.drop_table("transfers")
    op.drop_index(op.f("ix_refusals_created_at"), table_name="refusals")
    op.drop_table("refusals")
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_accounts_status_id"), table_name="accounts")
    op.drop_table("accounts")
