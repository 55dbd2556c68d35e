"""Transfers between two accounts of the same currency."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bank_api.api.deps import IdempotencyKeyHeader, IdPath, SessionDep, SettingsDep
from bank_api.api.money_responses import move_money
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
    responses={200: {"model": TransferOut, "description": "Replay of an earlier request"}},
)
def create_transfer(
    body: TransferCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Debit the source and credit the destination in one database transaction."""

    def run() -> tuple[StoredResponse, str]:
        record, entries = ledger.transfer(
            session, body.source_account_id, body.destination_account_id, body.amount,
            description=body.description,
        )
        location = request.url_for("get_transfer", transfer_id=record.id).path
        payload = _transfer_out(record, entries).model_dump(mode="json")
        return StoredResponse(201, payload, location), record.currency

    return move_money(request, session, settings, body, operation="transfer",
                      account_id=body.source_account_id, idempotency_key=idempotency_key,
                      run=run)


@router.get("/{transfer_id}", response_model=TransferOut)
def get_transfer(transfer_id: IdPath, session: SessionDep):
    return _transfer_out(*ledger.get_transfer(session, transfer_id))
