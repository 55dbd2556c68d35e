"""The money rules: every balance change happens here, with its ledger rows.

Nothing in this module commits. The caller (services/movements.py) runs each movement in one
database transaction together with its idempotency record, so a movement is either entirely
written or not at all.

Row locks: every movement first locks the accounts it touches with SELECT … FOR UPDATE, in
ascending id order. Two transfers between the same accounts in opposite directions therefore
queue on the same first row instead of deadlocking, and no balance can change between the
check and the write.
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bank_api.errors import (
    AccountClosed,
    BalanceLimitExceeded,
    CurrencyMismatch,
    InsufficientFunds,
    NotFound,
    SameAccount,
)
from bank_api.models import Account, LedgerEntry, Transfer
from bank_api.money import MAX_BALANCE
from bank_api.services.pagination import page_of


def lock_accounts(session: Session, *account_ids: int) -> dict[int, Account]:
    """Lock the given accounts, lowest id first; NotFound names the first missing one."""
    ids = sorted(set(account_ids))
    rows = session.scalars(
        select(Account).where(Account.id.in_(ids)).order_by(Account.id).with_for_update()
    ).all()
    found = {account.id: account for account in rows}
    for account_id in account_ids:
        if account_id not in found:
            raise NotFound(f"account {account_id} does not exist")
    return found


def _new_balance(account: Account, direction: str, amount: int) -> int:
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


def _write(
    session: Session,
    account: Account,
    direction: str,
    amount: int,
    new_balance: int,
    description: str | None,
    transfer_id: int | None = None,
) -> LedgerEntry:
    """Set a locked account's new balance and add the matching ledger row."""
    account.balance = new_balance
    account.updated_at = func.now()
    entry = LedgerEntry(
        account_id=account.id,
        direction=direction,
        amount=amount,
        balance_after=new_balance,
        description=description,
        transfer_id=transfer_id,
    )
    session.add(entry)
    return entry


def post_transaction(
    session: Session,
    account_id: int,
    direction: str,
    amount: int,
    *,
    currency: str | None = None,
    description: str | None = None,
) -> tuple[LedgerEntry, Account]:
    """Credit or debit one account; returns the new ledger row and the (locked) account."""
    account = lock_accounts(session, account_id)[account_id]
    if currency is not None and currency != account.currency:
        raise CurrencyMismatch(f"account {account_id} holds {account.currency}, not {currency}")
    new_balance = _new_balance(account, direction, amount)
    entry = _write(session, account, direction, amount, new_balance, description)
    session.flush()
    return entry, account


def transfer(
    session: Session,
    source_id: int,
    destination_id: int,
    amount: int,
    *,
    description: str | None = None,
) -> tuple[Transfer, list[LedgerEntry]]:
    """Move money between two accounts of the same currency: one debit, one credit."""
    if source_id == destination_id:
        raise SameAccount("a transfer needs two different accounts")
    accounts = lock_accounts(session, source_id, destination_id)
    source, destination = accounts[source_id], accounts[destination_id]
    if source.currency != destination.currency:
        raise CurrencyMismatch(
            f"account {source_id} holds {source.currency}, "
            f"account {destination_id} holds {destination.currency}"
        )
    # Both sides are checked before anything is written.
    source_after = _new_balance(source, "debit", amount)
    destination_after = _new_balance(destination, "credit", amount)
    record = Transfer(
        source_account_id=source_id,
        destination_account_id=destination_id,
        amount=amount,
        currency=source.currency,
        description=description,
    )
    session.add(record)
    session.flush()  # the ledger rows need the transfer's id
    entries = [
        _write(session, source, "debit", amount, source_after, description, record.id),
        _write(session, destination, "credit", amount, destination_after, description, record.id),
    ]
    session.flush()
    return record, entries


def get_entry(session: Session, entry_id: int) -> LedgerEntry:
    entry = session.get(LedgerEntry, entry_id)
    if entry is None:
        raise NotFound(f"transaction {entry_id} does not exist")
    return entry


def get_transfer(session: Session, transfer_id: int) -> tuple[Transfer, list[LedgerEntry]]:
    record = session.get(Transfer, transfer_id)
    if record is None:
        raise NotFound(f"transfer {transfer_id} does not exist")
    entries = session.scalars(
        select(LedgerEntry).where(LedgerEntry.transfer_id == transfer_id).order_by(LedgerEntry.id)
    ).all()
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
