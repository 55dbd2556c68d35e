"""Credits, debits and the ledger of one account."""

import pytest
from sqlalchemy import text

from bank_api.money import MAX_AMOUNT, MAX_BALANCE
from helpers import assert_problem, check_invariants, credit, open_account


def post(client, account_id, **body):
    return client.post(f"/accounts/{account_id}/transactions", json=body)


def ledger_rows(db) -> int:
    with db.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar()


def test_credit_then_debit_updates_balance_and_ledger(client, db):
    account = open_account(client)
    entry = credit(client, account["id"], 1000)
    assert entry["direction"] == "credit"
    assert entry["balance_after"] == 1000
    response = post(client, account["id"], direction="debit", amount=300, description="ATM")
    assert response.status_code == 201
    assert response.headers["location"] == f"/transactions/{response.json()['id']}"
    assert response.json()["balance_after"] == 700
    assert response.json()["description"] == "ATM"
    assert client.get(f"/accounts/{account['id']}").json()["balance"] == 700
    assert client.get(response.headers["location"]).json() == response.json()
    check_invariants(db)


def test_debit_below_zero_is_refused_and_changes_nothing(client, db):
    account = open_account(client)
    credit(client, account["id"], 500)
    before = client.get(f"/accounts/{account['id']}").json()
    problem = assert_problem(post(client, account["id"], direction="debit", amount=501), 409,
                             "insufficient_funds")
    assert problem["instance"] == f"/accounts/{account['id']}/transactions"
    assert client.get(f"/accounts/{account['id']}").json() == before
    assert ledger_rows(db) == 1
    with db.connect() as connection:
        refusal = connection.execute(text(
            "SELECT operation, code, account_id, amount FROM refusals")).one()
    assert tuple(refusal) == ("debit", "insufficient_funds", account["id"], 501)


def test_debit_of_whole_balance_is_allowed(client):
    account = open_account(client)
    credit(client, account["id"], 500)
    assert post(client, account["id"], direction="debit", amount=500).json()["balance_after"] == 0


@pytest.mark.parametrize("amount", [0, -1, 1.5, 10.0, "100", True, None, MAX_AMOUNT + 1, 2**64,
                                    [100], {"value": 1}])
def test_invalid_amounts_are_refused(client, db, amount):
    account = open_account(client)
    problem = assert_problem(post(client, account["id"], direction="credit", amount=amount), 422,
                             "validation_error")
    assert "body.amount" in [e["field"] for e in problem["errors"]]
    assert ledger_rows(db) == 0


def test_maximum_amount_is_accepted(client):
    account = open_account(client)
    assert credit(client, account["id"], MAX_AMOUNT)["balance_after"] == MAX_AMOUNT


@pytest.mark.parametrize("body", [{"direction": "deposit", "amount": 1}, {"amount": 1},
                                  {"direction": "credit"}, {"direction": "credit", "amount": 1,
                                                            "extra": 1},
                                  {"direction": "credit", "amount": 1, "description": "x" * 141}])
def test_invalid_bodies_are_refused(client, body):
    account = open_account(client)
    assert_problem(client.post(f"/accounts/{account['id']}/transactions", json=body), 422,
                   "validation_error")


def test_currency_must_match_account(client, db):
    account = open_account(client, currency="EUR")
    assert_problem(post(client, account["id"], direction="credit", amount=5, currency="USD"), 409,
                   "currency_mismatch")
    assert post(client, account["id"], direction="credit", amount=5,
                currency="EUR").status_code == 201
    assert_problem(post(client, account["id"], direction="credit", amount=5, currency="usd"), 422,
                   "validation_error")
    assert ledger_rows(db) == 1


def test_balance_limit(client, db, monkeypatch):
    account = open_account(client)
    with db.begin() as connection:  # bring the account near the limit without a million POSTs
        connection.execute(text("INSERT INTO ledger_entries (account_id, direction, amount, "
                                "balance_after) VALUES (:a, 'credit', :m, :m)"),
                           {"a": account["id"], "m": MAX_AMOUNT})
        connection.execute(text("UPDATE accounts SET balance = :b WHERE id = :a"),
                           {"a": account["id"], "b": MAX_BALANCE - 10})
    assert_problem(post(client, account["id"], direction="credit", amount=11), 409,
                   "balance_limit_exceeded")
    assert post(client, account["id"], direction="credit", amount=10).status_code == 201


def test_unknown_account_is_404(client):
    assert_problem(post(client, 999, direction="credit", amount=5), 404, "not_found")
    assert_problem(client.get("/accounts/999/transactions"), 404, "not_found")


def test_unknown_transaction_is_404(client):
    assert_problem(client.get("/transactions/12345"), 404, "not_found")


def test_body_that_is_not_json(client):
    account = open_account(client)
    url = f"/accounts/{account['id']}/transactions"
    headers = {"content-type": "application/json"}
    assert_problem(client.post(url, content=b'{"direction": "credit", ', headers=headers), 400,
                   "invalid_json")
    assert_problem(client.post(url, content=b"\xff\xfe", headers=headers), 400, "invalid_json")
    assert_problem(client.post(url, content=b"[1, 2]", headers=headers), 422, "validation_error")
    assert_problem(client.post(url, content=b"direction=credit",
                               headers={"content-type": "text/plain"}), 415,
                   "unsupported_media_type")


def test_body_too_large(client, db):
    account = open_account(client)
    body = {"direction": "credit", "amount": 1, "description": "x" * 20_000}
    assert_problem(client.post(f"/accounts/{account['id']}/transactions", json=body), 413,
                   "payload_too_large")

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield b'{"direction": "credit", "amount": 1, "description": "'
        for _ in range(40):
            yield b"x" * 1000
        yield b'"}'

    assert_problem(client.post(f"/accounts/{account['id']}/transactions", content=chunks(),
                               headers={"content-type": "application/json"}), 413,
                   "payload_too_large")
    assert ledger_rows(db) == 0


def test_history_is_newest_first_and_paginated(client):
    account = open_account(client)
    entries = [credit(client, account["id"], amount)["id"] for amount in (1, 2, 3, 4, 5, 6, 7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/accounts/{account['id']}/transactions", params=params).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(entries))


def test_history_only_shows_the_accounts_entries(client):
    mine, other = open_account(client), open_account(client)
    credit(client, mine["id"], 5)
    credit(client, other["id"], 6)
    items = client.get(f"/accounts/{mine['id']}/transactions").json()["items"]
    assert [e["amount"] for e in items] == [5]
