"""Transfers between two accounts of the same currency."""

from fastapi import APIRouter, Request, Response

from bank_api.api.deps import IdempotencyKeyHeader, IdPath, database, settings
from bank_api.api.money_responses import MOVEMENT_CREATED, created, movement
from bank_api.api.rendering import json_response
from bank_api.schemas import TransactionOut, TransferCreate, TransferOut
from bank_api.services import ledger, movements
from bank_api.services.movements import TransferWithEntries

router = APIRouter(prefix="/transfers", tags=["transfers"])
# A transfer's own path, and its Location (formatted, as transactions.ENTRY_PATH).
TRANSFER_PATH = "/{transfer_id}"


def _transfer_out(written: TransferWithEntries) -> TransferOut:
    record, entries = written
    return TransferOut(
        id=record.id,
        source_account_id=record.source_account_id,
        destination_account_id=record.destination_account_id,
        amount=record.amount,
        currency=record.currency,
        description=record.description,
        created_at=record.created_at,
        entries=[TransactionOut.model_validate(e) for e in entries],
    )


@router.post(
    "",
    status_code=201,
    response_model=TransferOut,
    responses={201: MOVEMENT_CREATED},
)
async def create_transfer(
    body: TransferCreate,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Debit the source and credit the destination in one database transaction."""
    outcome = await database(request).on_connection(
        movements.transfer,
        movement(request, body, operation="transfer", account_id=body.source_account_id,
                 destination_id=body.destination_account_id, idempotency_key=idempotency_key),
        description=body.description,
        key_ttl=settings(request).idempotency_key_ttl,
    )
    transfer = _transfer_out(outcome.result)
    location = router.prefix + TRANSFER_PATH.format(transfer_id=transfer.id)
    return created(transfer, location, replayed=outcome.replayed)


@router.get(TRANSFER_PATH, response_model=TransferOut)
async def get_transfer(transfer_id: IdPath, request: Request) -> Response:
    written = await database(request).on_connection(ledger.get_transfer, transfer_id)
    return json_response(_transfer_out(written))
