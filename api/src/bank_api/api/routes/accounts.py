"""/accounts: open, list, read, update and close accounts."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from bank_api.api.deps import AccountIdPath, PageDep, database
from bank_api.api.rendering import render
from bank_api.schemas import AccountCreate, AccountOut, AccountUpdate, Page
from bank_api.services import accounts
from bank_api.services.pagination import decode_cursor

router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.post("", status_code=201, response_model=AccountOut,
             responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}})
async def open_account(body: AccountCreate, request: Request, response: Response):
    """Open an account with a zero balance in the given currency."""
    account = await database(request).in_session(accounts.open_account, body)
    response.headers["Location"] = f"{router.prefix}/{account.id}"
    return account


@router.get("", response_model=Page[AccountOut])
async def list_accounts(
    request: Request,
    page: PageDep,
    status: Annotated[Literal["active", "closed"] | None, Query()] = None,
):
    """Accounts in id order, one page at a time."""
    after = decode_cursor(page.cursor) if page.cursor else None
    items, next_cursor = await database(request).in_session(
        accounts.list_accounts, limit=page.limit, after=after, status=status
    )
    return Page[AccountOut](items=items, next_cursor=next_cursor)


@router.get("/{account_id}", response_model=AccountOut)
async def get_account(account_id: AccountIdPath, request: Request) -> Response:
    account = await database(request).on_connection(accounts.read_account, account_id)
    return render(AccountOut, account)


@router.patch("/{account_id}", response_model=AccountOut)
async def update_account(account_id: AccountIdPath, body: AccountUpdate, request: Request):
    """Change the owner's names or address. Currency and balance cannot be changed here."""
    return await database(request).in_session(accounts.update_account, account_id, body)


@router.post("/{account_id}/close", response_model=AccountOut)
async def close_account(account_id: AccountIdPath, request: Request):
    """Close an account whose balance is zero. Closing it again changes nothing."""
    account, _ = await database(request).in_session(accounts.close_account, account_id)
    return account
