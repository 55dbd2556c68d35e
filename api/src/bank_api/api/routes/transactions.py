"""Credits and debits on one account, and the account's ledger."""

from fastapi import APIRouter, Request, Response

from bank_api.api.deps import (
    AccountIdPath,
    IdempotencyKeyHeader,
    IdPath,
    PageDep,
    database,
    settings,
)
from bank_api.api.money_responses import MOVEMENT_CREATED, created, movement
from bank_api.api.rendering import render
from bank_api.schemas import Page, TransactionCreate, TransactionOut
from bank_api.services import ledger, movements
from bank_api.services.pagination import decode_cursor

router = APIRouter(tags=["transactions"])
# A ledger entry's own path, and its Location: formatted, not looked up in the route table
# (request.url_for walks every route, tens of microseconds a request).
ENTRY_PATH = "/transactions/{transaction_id}"


@router.post(
    "/accounts/{account_id}/transactions",
    status_code=201,
    response_model=TransactionOut,
    responses={201: MOVEMENT_CREATED},
)
async def post_transaction(
    account_id: AccountIdPath,
    body: TransactionCreate,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Credit or debit the account. A debit larger than the balance is refused (409)."""
    outcome = await database(request).on_connection(
        movements.post_transaction,
        movement(request, body, operation=body.direction, account_id=account_id,
                 idempotency_key=idempotency_key),
        currency=body.currency, description=body.description,
        key_ttl=settings(request).idempotency_key_ttl,
    )
    entry = TransactionOut.model_validate(outcome.result)
    return created(entry, ENTRY_PATH.format(transaction_id=entry.id), replayed=outcome.replayed)


@router.get("/accounts/{account_id}/transactions", response_model=Page[TransactionOut])
async def list_transactions(account_id: AccountIdPath, request: Request, page: PageDep):
    """The account's ledger entries, newest first."""
    before = decode_cursor(page.cursor) if page.cursor else None
    items, next_cursor = await database(request).in_session(
        ledger.list_entries, account_id, limit=page.limit, before=before
    )
    return Page[TransactionOut](items=items, next_cursor=next_cursor)


@router.get(ENTRY_PATH, response_model=TransactionOut)
async def get_transaction(transaction_id: IdPath, request: Request) -> Response:
    entry = await database(request).on_connection(ledger.get_entry, transaction_id)
    return render(TransactionOut, entry)
