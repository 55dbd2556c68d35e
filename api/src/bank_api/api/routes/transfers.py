"""Transfers between two accounts of the same currency."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from bank_api.api.deps import DatabaseDep, IdempotencyKeyHeader, IdPath, SettingsDep
from bank_api.api.money_responses import MOVEMENT_CREATED, move_money
from bank_api.schemas import TransactionOut, TransferCreate, TransferOut
from bank_api.services import ledger
from bank_api.services.idempotency import StoredResponse

router = APIRouter(prefix="/transfers", tags=["transfers"])


def _transfer_out(record, entries) -> TransferOut:
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
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Debit the source and credit the destination in one database transaction."""

    def run(session: Session) -> tuple[StoredResponse, str]:
        record, entries = ledger.transfer(
            session, body.source_account_id, body.destination_account_id, body.amount,
            description=body.description,
        )
        location = request.url_for("get_transfer", transfer_id=record.id).path
        payload = _transfer_out(record, entries).model_dump(mode="json")
        return StoredResponse(201, payload, location), record.currency

    return await move_money(request, db, settings, body, operation="transfer",
                            account_id=body.source_account_id, idempotency_key=idempotency_key,
                            run=run)


@router.get("/{transfer_id}", response_model=TransferOut)
async def get_transfer(transfer_id: IdPath, db: DatabaseDep):
    return _transfer_out(*await db.run(ledger.get_transfer, transfer_id))
