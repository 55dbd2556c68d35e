"""The unit of work around every money movement.

One database transaction holds: the idempotency check, the movement (services/ledger.py) and
the stored answer. A refusal rolls all of it back and is then logged on its own in the
refusals table. Every outcome is counted in the domain metrics.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from bank_api.errors import MOVEMENT_REFUSALS, BankError
from bank_api.models import Refusal
from bank_api.observability import domain_metrics
from bank_api.services import idempotency
from bank_api.services.idempotency import StoredResponse


@dataclass(frozen=True)
class Movement:
    """What the caller asks for, and who is refused if the bank says no."""

    operation: str  # credit, debit or transfer
    account_id: int  # the account charged (the source of a transfer)
    amount: int
    idempotency_key: str | None
    request_hash: str


@dataclass(frozen=True)
class Outcome:
    response: StoredResponse
    replayed: bool


def execute(
    session: Session,
    movement: Movement,
    run: Callable[[Session], tuple[StoredResponse, str]],
    *,
    key_ttl: timedelta,
) -> Outcome:
    """Run `run(session)` (which returns the answer and the currency moved) exactly once per key."""
    key = movement.idempotency_key
    try:
        if key is not None:
            stored = idempotency.claim(session, key, movement.request_hash, key_ttl)
            if stored is not None:
                session.rollback()
                domain_metrics.count_operation(movement.operation, "replayed")
                return Outcome(stored, replayed=True)
        response, currency = run(session)
        if key is not None:
            idempotency.remember(session, key, movement.request_hash, response)
        session.commit()
    except MOVEMENT_REFUSALS as refusal:
        session.rollback()
        _log_refusal(session, movement, refusal.code)
        domain_metrics.count_operation(movement.operation, refusal.code)
        raise
    except BankError as error:  # not_found, idempotency_conflict
        session.rollback()
        domain_metrics.count_operation(movement.operation, error.code)
        raise
    domain_metrics.count_movement(movement.operation, currency, movement.amount)
    return Outcome(response, replayed=False)


def _log_refusal(session: Session, movement: Movement, code: str) -> None:
    session.add(
        Refusal(
            operation=movement.operation,
            code=code,
            account_id=movement.account_id,
            amount=movement.amount,
        )
    )
    session.commit()
