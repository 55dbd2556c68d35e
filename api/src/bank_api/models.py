"""Database tables (SQLAlchemy 2.0 typed declarative).

The schema is owned by Alembic (see migrations/); these classes describe it for queries and
for the test that checks models and migrations agree. Every money rule the code enforces is
also a CHECK constraint here.
"""

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bank_api.money import MAX_AMOUNT, MAX_BALANCE

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint(f"balance <= {MAX_BALANCE}", name="balance_below_max"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
        CheckConstraint("status IN ('active', 'closed')", name="status_known"),
        CheckConstraint("status = 'active' OR balance = 0", name="closed_means_empty"),
        CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)", name="closed_at_iff_closed"
        ),
        Index(None, "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(300))
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[int] = mapped_column(BigInteger, server_default="0")
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="amount_in_range"),
        CheckConstraint("source_account_id <> destination_account_id", name="distinct_accounts"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso_4217"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    source_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    destination_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerEntry(Base):
    """One line of an account's statement. Append-only: a trigger refuses UPDATE and DELETE."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("direction IN ('credit', 'debit')", name="direction_known"),
        CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="amount_in_range"),
        CheckConstraint(
            f"balance_after >= 0 AND balance_after <= {MAX_BALANCE}", name="balance_after_in_range"
        ),
        # Statement pages walk an account's entries newest first.
        Index(None, "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    direction: Mapped[str] = mapped_column(String(6))
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(140))
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Refusal(Base):
    """A money movement the bank declined (kept for the business dashboard and audits).

    Written after the refused transaction rolled back, so it never carries a movement.
    """

    __tablename__ = "refusals"
    __table_args__ = (
        CheckConstraint("operation IN ('credit', 'debit', 'transfer')", name="operation_known"),
        Index(None, "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    operation: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(Base):
    """A money-moving POST's Idempotency-Key and the movement it made: one ledger entry (a
    credit or a debit) or one transfer. A retry with the key gets that movement back.

    Written in the same database transaction as the movement it points at.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        CheckConstraint("num_nonnulls(ledger_entry_id, transfer_id) = 1",
                        name="one_movement"),
        Index(None, "created_at"),
    )

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    ledger_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FaultInjection(Base):
    """The demo fault switch (PUT /admin/faults): added latency and a rate of 500 answers on
    chosen routes and methods, until an optional deadline. A single row, read by every worker
    of every replica."""

    __tablename__ = "fault_injection"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("latency_ms BETWEEN 0 AND 30000", name="latency_in_range"),
        CheckConstraint("error_rate >= 0 AND error_rate <= 1", name="error_rate_in_range"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    latency_ms: Mapped[int] = mapped_column(Integer, server_default="0")
    error_rate: Mapped[float] = mapped_column(Double, server_default="0")
    # Route templates such as /accounts/{account_id}; empty means every route.
    routes: Mapped[list[str]] = mapped_column(ARRAY(String(200)), server_default="{}")
    # HTTP methods (GET, POST, ...); empty means every method.
    methods: Mapped[list[str]] = mapped_column(ARRAY(String(10)), server_default="{}")
    # Past this the switch reads as off (services/faults.py); NULL: until turned off.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
