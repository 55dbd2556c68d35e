"""Running a money movement for a route, and its HTTP answer, first time or replayed."""

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from bank_api.api.deps import Database
from bank_api.core.config import Settings
from bank_api.schemas import TransactionCreate, TransferCreate
from bank_api.services import idempotency, movements
from bank_api.services.idempotency import StoredResponse
from bank_api.services.movements import Outcome

# The OpenAPI description of a money POST's 201: a retry with the same Idempotency-Key gets
# the first answer again, status included, marked as a replay.
MOVEMENT_CREATED = {
    "description": "The movement, written. A retry with the same Idempotency-Key and body gets "
    "this first answer again, with Idempotent-Replayed: true, and moves nothing.",
    "headers": {
        "Location": {"schema": {"type": "string"}, "description": "The new resource"},
        "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                "description": "Present on a replayed answer"},
    },
}


async def move_money(
    request: Request,
    db: Database,
    settings: Settings,
    body: TransactionCreate | TransferCreate,
    *,
    operation: str,
    account_id: int,
    idempotency_key: str | None,
    run: Callable[[Session], tuple[StoredResponse, str]],
) -> JSONResponse:
    """Run `run` as one movement (services/movements.py) and answer with its outcome."""
    movement = movements.Movement(
        operation=operation,
        account_id=account_id,
        amount=body.amount,
        idempotency_key=idempotency_key,
        request_hash=idempotency.fingerprint("POST", request.url.path, body),
    )
    outcome = await db.run(movements.execute, movement, run,
                           key_ttl=settings.idempotency_key_ttl)
    return money_response(outcome)


def money_response(outcome: Outcome) -> JSONResponse:
    stored = outcome.response
    headers = {"Location": stored.location} if stored.location else {}
    if outcome.replayed:
        # The first answer again, with a header that tells the client it is a replay.
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(stored.body, status_code=stored.status, headers=headers)
