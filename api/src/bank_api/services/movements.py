"""The unit of work around every money movement: a credit, a debit or a transfer.

One database transaction holds the idempotency check, the movement (services/ledger.py) and
the key that remembers it. A retry with a used key gets the movement it made, read back, and
moves nothing. A refusal rolls all of it back and is then written on its own in the refusals
table. Every outcome goes on the request's record, for its log line, span and counters.

These functions know nothing of HTTP: they return what was written; the routes render it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from sqlalchemy import Connection, Row, insert

from bank_api.errors import MOVEMENT_REFUSALS, BankError
from bank_api.models import Refusal, Transfer
from bank_api.observability import request_record, tracing
from bank_api.services import idempotency, ledger
from bank_api.services.idempotency import Made

T = TypeVar("T")
Entry = Row  # a ledger row as written (RETURNING), or read back
TransferWithEntries = tuple[Transfer | Row, list[Entry]]


@dataclass(frozen=True)
class Movement:
    """What the caller asks for, and who is refused if the bank says no."""

    operation: str  # credit, debit or transfer
    account_id: int  # the account charged (the source of a transfer)
    amount: int
    idempotency_key: str | None
    # What makes a retry "the same request" (see services/idempotency.py); None without a key.
    request_hash: str | None
    destination_id: int | None = None  # a transfer's destination


@dataclass(frozen=True)
class Outcome(Generic[T]):
    result: T  # what the movement wrote
    replayed: bool  # True: an earlier request with the same key wrote it; nothing moved now


def post_transaction(
    connection: Connection, movement: Movement, *, currency: str | None, description: str | None,
    key_ttl: timedelta,
) -> Outcome[Entry]:
    """Credit or debit movement.account_id (movement.operation says which)."""

    def write() -> tuple[Entry, str, Made]:
        entry, account_currency = ledger.post_transaction(
            connection, movement.account_id, movement.operation, movement.amount,
            currency=currency, description=description)
        return entry, account_currency, Made(ledger_entry_id=entry.id)

    return _exactly_once(connection, movement, key_ttl, write,
                         replay=lambda made: ledger.get_entry(connection, made.ledger_entry_id))


def transfer(
    connection: Connection, movement: Movement, *, description: str | None, key_ttl: timedelta,
) -> Outcome[TransferWithEntries]:
    """Move movement.amount from movement.account_id to movement.destination_id."""

    def write() -> tuple[TransferWithEntries, str, Made]:
        record, entries = ledger.transfer(connection, movement.account_id,
                                          movement.destination_id,
                                          movement.amount, description=description)
        return (record, entries), record.currency, Made(transfer_id=record.id)

    return _exactly_once(connection, movement, key_ttl, write,
                         replay=lambda made: ledger.get_transfer(connection, made.transfer_id))


def _exactly_once(
    connection: Connection,
    movement: Movement,
    key_ttl: timedelta,
    write: Callable[[], tuple[T, str, Made]],
    replay: Callable[[Made], T],
) -> Outcome[T]:
    """`write()` (which returns the result, the currency moved and what it made) at most once
    per key; a key seen before gets `replay(made)` instead. The outcome goes on the request's
    record (observability/request_record.py), which the log line, the span and the counters
    are made from."""
    key = movement.idempotency_key
    try:
        if key is not None:
            with tracing.step("idempotency claim", expected=BankError):
                made = idempotency.claim(connection, key, movement.request_hash, key_ttl)
            if made is not None:
                result = replay(made)
                connection.commit()  # nothing written: this ends the transaction and its key lock
                request_record.replayed(movement.operation, movement.account_id)
                return Outcome(result, replayed=True)
        result, currency, made = write()
        if key is not None:
            idempotency.remember(connection, key, movement.request_hash, made)
        connection.commit()
    except MOVEMENT_REFUSALS as refusal:
        connection.rollback()
        _log_refusal(connection, movement, refusal.code)
        # A refusal is the bank working as it should: an outcome, not an error.
        request_record.refused(movement.operation, movement.account_id, movement.amount,
                               refusal.code)
        raise
    except BankError as error:  # not_found, idempotency_conflict
        connection.rollback()
        request_record.failed(movement.operation, movement.account_id, error.code)
        raise
    request_record.moved(movement.operation, movement.account_id, movement.amount, currency,
                         movement.destination_id)
    return Outcome(result, replayed=False)


def _log_refusal(connection: Connection, movement: Movement, code: str) -> None:
    connection.execute(insert(Refusal).values(
        operation=movement.operation, code=code, account_id=movement.account_id,
        amount=movement.amount))
    connection.commit()
