"""The money rules: every balance change happens here, with its ledger rows.

Nothing in this module commits. The caller (services/movements.py) runs each movement in one
database transaction together with its idempotency record, so a movement is either entirely
written or not at all.

Each movement is two statements:
1. Lock: SELECT … FOR UPDATE on the accounts it touches, in ascending id order. Two transfers
   between the same accounts in opposite directions therefore queue on the same first row
   instead of deadlocking, and no balance can change between the check and the write.
2. Check the rules here, in Python, on the locked rows; then write the new balances and the
   ledger rows (and the transfer) in one statement, so the whole write is one round trip.
They are plain SQL through SQLAlchemy Core on a connection rather than the ORM's unit of work
in a session: two statements instead of four, and a fraction of the Python per movement
(bankops/bench/PROFILE.md). The single reads of an entry or a transfer are Core too. The
schema's CHECK constraints hold the same rules once more, as a last line of defence.
"""

from sqlalchemy import Connection, Row, bindparam, select, text
from sqlalchemy.orm import Session

from bank_api.errors import (
    AccountClosed,
    BalanceLimitExceeded,
    BankError,
    CurrencyMismatch,
    InsufficientFunds,
    NotFound,
    SameAccount,
)
from bank_api.models import Account, LedgerEntry, Transfer
from bank_api.money import MAX_BALANCE
from bank_api.observability import tracing
from bank_api.services.pagination import page_of

LOCK_ACCOUNTS = text("""
    SELECT id, currency, balance, status FROM accounts
    WHERE id = ANY(:ids) ORDER BY id FOR UPDATE
""")

ENTRY_COLUMNS = (
    "id, account_id, direction, amount, balance_after, description, transfer_id, created_at"
)

# A credit or a debit: the account's new balance and its ledger row.
WRITE_ENTRY = text(f"""
    WITH moved AS (
        UPDATE accounts SET balance = :balance_after, updated_at = now()
        WHERE id = :account_id
        RETURNING id
    )
    INSERT INTO ledger_entries (account_id, direction, amount, balance_after, description)
    SELECT id, :direction, :amount, :balance_after, :description FROM moved
    RETURNING {ENTRY_COLUMNS}
""")

# A transfer: its record, both new balances, and the debit and credit rows that point at it.
# PostgreSQL runs every data-modifying WITH part exactly once, in this one statement.
WRITE_TRANSFER = text(f"""
    WITH transfer AS (
        INSERT INTO transfers
            (source_account_id, destination_account_id, amount, currency, description)
        VALUES (:source_id, :destination_id, :amount, :currency, :description)
        RETURNING id, created_at
    ), debited AS (
        UPDATE accounts SET balance = :source_after, updated_at = now() WHERE id = :source_id
    ), credited AS (
        UPDATE accounts SET balance = :destination_after, updated_at = now()
        WHERE id = :destination_id
    ), entries AS (
        INSERT INTO ledger_entries
            (account_id, direction, amount, balance_after, description, transfer_id)
        SELECT side.account_id, side.direction, :amount, side.balance_after, :description,
               transfer.id
        FROM transfer, (VALUES (1, :source_id, 'debit', :source_after),
                               (2, :destination_id, 'credit', :destination_after))
             AS side (position, account_id, direction, balance_after)
        ORDER BY side.position
        RETURNING {ENTRY_COLUMNS}
    )
    SELECT entries.*, transfer.created_at AS transfer_created_at
    FROM entries, transfer ORDER BY entries.id
""")


def lock_accounts(connection: Connection, *account_ids: int) -> dict[int, Row]:
    """Lock the given accounts, lowest id first; NotFound names the first missing one."""
    with tracing.step("lock accounts", expected=BankError):
        rows = connection.execute(LOCK_ACCOUNTS, {"ids": sorted(set(account_ids))}).all()
    found = {row.id: row for row in rows}
    for account_id in account_ids:
        if account_id not in found:
            raise NotFound(f"account {account_id} does not exist")
    return found


def _new_balance(account: Row, direction: str, amount: int) -> int:
    """The balance a locked account would have after the movement, or the refusal."""
    if account.status != "active":
        raise AccountClosed(f"account {account.id} is closed")
    if direction == "debit":
        if account.balance < amount:
            raise InsufficientFunds(
                f"account {account.id} holds {account.balance}, less than {amount}"
            )
        return account.balance - amount
    if account.balance + amount > MAX_BALANCE:
        raise BalanceLimitExceeded(
            f"account {account.id} would hold more than {MAX_BALANCE} minor units"
        )
    return account.balance + amount


def post_transaction(
    connection: Connection,
    account_id: int,
    direction: str,
    amount: int,
    *,
    currency: str | None = None,
    description: str | None = None,
) -> tuple[Row, str]:
    """Credit or debit one account; returns the new ledger row and the account's currency."""
    account = lock_accounts(connection, account_id)[account_id]
    if currency is not None and currency != account.currency:
        raise CurrencyMismatch(f"account {account_id} holds {account.currency}, not {currency}")
    balance_after = _new_balance(account, direction, amount)
    with tracing.step("write ledger", expected=BankError):
        entry = connection.execute(WRITE_ENTRY, {
            "account_id": account_id, "direction": direction, "amount": amount,
            "balance_after": balance_after, "description": description,
        }).one()
    return entry, account.currency


def transfer(
    connection: Connection,
    source_id: int,
    destination_id: int,
    amount: int,
    *,
    description: str | None = None,
) -> tuple[Transfer, list[Row]]:
    """Move money between two accounts of the same currency: one debit, one credit."""
    if source_id == destination_id:
        raise SameAccount("a transfer needs two different accounts")
    accounts = lock_accounts(connection, source_id, destination_id)
    source, destination = accounts[source_id], accounts[destination_id]
    if source.currency != destination.currency:
        raise CurrencyMismatch(
            f"account {source_id} holds {source.currency}, "
            f"account {destination_id} holds {destination.currency}"
        )
    # Both sides are checked before anything is written.
    source_after = _new_balance(source, "debit", amount)
    destination_after = _new_balance(destination, "credit", amount)
    with tracing.step("write ledger", expected=BankError):
        entries = connection.execute(WRITE_TRANSFER, {
            "source_id": source_id, "destination_id": destination_id, "amount": amount,
            "currency": source.currency, "description": description,
            "source_after": source_after, "destination_after": destination_after,
        }).all()
    # The transfer as written, in the model's shape (never added to a session: the statement
    # above has stored it), beside its debit and credit rows.
    record = Transfer(
        id=entries[0].transfer_id, source_account_id=source_id,
        destination_account_id=destination_id, amount=amount, currency=source.currency,
        description=description, created_at=entries[0].transfer_created_at,
    )
    return record, entries


ENTRY = LedgerEntry.__table__
READ_ENTRY = select(*ENTRY.columns).where(ENTRY.c.id == bindparam("entry_id"))
READ_TRANSFER = select(*Transfer.__table__.columns).where(Transfer.id == bindparam("transfer_id"))
READ_TRANSFER_ENTRIES = (select(*ENTRY.columns)
                         .where(ENTRY.c.transfer_id == bindparam("transfer_id"))
                         .order_by(ENTRY.c.id))


def get_entry(connection: Connection, entry_id: int) -> Row:
    entry = connection.execute(READ_ENTRY, {"entry_id": entry_id}).one_or_none()
    if entry is None:
        raise NotFound(f"transaction {entry_id} does not exist")
    return entry


def get_transfer(connection: Connection, transfer_id: int) -> tuple[Row, list[Row]]:
    record = connection.execute(READ_TRANSFER, {"transfer_id": transfer_id}).one_or_none()
    if record is None:
        raise NotFound(f"transfer {transfer_id} does not exist")
    entries = connection.execute(READ_TRANSFER_ENTRIES, {"transfer_id": transfer_id}).all()
    return record, list(entries)


def list_entries(
    session: Session, account_id: int, *, limit: int, before: int | None
) -> tuple[list[LedgerEntry], str | None]:
    """An account's ledger, newest first."""
    if session.scalar(select(Account.id).where(Account.id == account_id)) is None:
        raise NotFound(f"account {account_id} does not exist")
    query = (
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    return page_of(session.scalars(query).all(), limit, key=lambda e: e.id)
