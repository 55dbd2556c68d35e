"""The stack ceiling: what FastAPI, uvicorn, SQLAlchemy and psycopg2 serve with none of the API's
layers, running the API's own SQL. Served exactly like the API and the bare app.

    DATABASE_URL=… HOST=127.0.0.1 PORT=8425 WEB_CONCURRENCY=1 python -m bankops.bench.ceiling_app

One plain route per operation the benchmark measures, each a `def` (run in the threadpool, as
the API's database work is) on one pooled connection per request:

- GET /accounts/{id}: one Core SELECT of the account's row, in the transaction psycopg2 opens
  and the pool's reset rolls back (the round trips of the API's read and of pgbench/read.sql).
- POST /accounts/{id}/transactions (credit or debit) and POST /transfers: the API's own
  statements (bank_api.services.ledger: lock the rows, write balances and ledger rows in one
  statement), then commit.

No middleware, no metrics, no logs or traces, no idempotency, request bodies checked by a
plain pydantic model; answers are the API's bodies, rendered by pydantic-core in one call. So
the API's rate as a share of this one's is what its own layers cost, nothing else.
(tests/test_bench.py checks that both answer the same bodies and that the books balance.)
"""

import os
from typing import Literal

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy import bindparam, create_engine, select

from bank_api.models import Account
from bank_api.services.ledger import LOCK_ACCOUNTS, WRITE_ENTRY, WRITE_TRANSFER
from bankops.bench.serving import lifespan, serve

# Room for at least as many connections as the API's pool (10 + 5 overflow, core/config.py):
# the ceiling must not be held back by waiting for one.
engine = create_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=10)
app = FastAPI(title="stack ceiling", lifespan=lifespan)

READ_ACCOUNT = select(*Account.__table__.columns).where(Account.id == bindparam("id"))
ENTRY = ("id", "account_id", "direction", "amount", "balance_after", "description",
         "transfer_id", "created_at")


class Movement(BaseModel):
    direction: Literal["credit", "debit"]
    amount: int


class TransferBody(BaseModel):
    source_account_id: int
    destination_account_id: int
    amount: int


def json_response(body: dict, status_code: int = 200) -> Response:
    return Response(to_json(body), status_code=status_code, media_type="application/json")


def new_balance(account, direction: str, amount: int) -> int:
    balance = account.balance + (amount if direction == "credit" else -amount)
    if balance < 0:
        raise HTTPException(409, "insufficient_funds")
    return balance


@app.get("/accounts/{account_id}")
def read(account_id: int) -> Response:
    with engine.connect() as connection:
        row = connection.execute(READ_ACCOUNT, {"id": account_id}).one_or_none()
    if row is None:
        raise HTTPException(404)
    return json_response(row._asdict())


@app.post("/accounts/{account_id}/transactions")
def credit(account_id: int, body: Movement) -> Response:
    with engine.begin() as connection:
        account = connection.execute(LOCK_ACCOUNTS, {"ids": [account_id]}).one_or_none()
        if account is None:
            raise HTTPException(404)
        entry = connection.execute(WRITE_ENTRY, {
            "account_id": account_id, "direction": body.direction, "amount": body.amount,
            "balance_after": new_balance(account, body.direction, body.amount),
            "description": None,
        }).one()
    return json_response(entry._asdict(), 201)


@app.post("/transfers")
def transfer(body: TransferBody) -> Response:
    source_id, destination_id = body.source_account_id, body.destination_account_id
    with engine.begin() as connection:
        rows = connection.execute(
            LOCK_ACCOUNTS, {"ids": sorted({source_id, destination_id})}).all()
        accounts = {row.id: row for row in rows}
        if len(accounts) != 2:
            raise HTTPException(404)
        source = accounts[source_id]
        entries = connection.execute(WRITE_TRANSFER, {
            "source_id": source_id, "destination_id": destination_id, "amount": body.amount,
            "currency": source.currency, "description": None,
            "source_after": new_balance(source, "debit", body.amount),
            "destination_after": new_balance(accounts[destination_id], "credit", body.amount),
        }).all()
    first = entries[0]
    return json_response({
        "id": first.transfer_id, "source_account_id": source_id,
        "destination_account_id": destination_id, "amount": body.amount,
        "currency": source.currency, "description": None,
        "created_at": first.transfer_created_at,
        "entries": [{name: getattr(entry, name) for name in ENTRY} for entry in entries],
    }, 201)


if __name__ == "__main__":
    serve("bankops.bench.ceiling_app:app", default_port=8425)
