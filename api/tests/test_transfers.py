"""Transfers between accounts."""

from sqlalchemy import text

from helpers import assert_problem, check_invariants, credit, open_account


def transfer(client, source, destination, amount, **extra):
    return client.post("/transfers", json={"source_account_id": source,
                                           "destination_account_id": destination,
                                           "amount": amount} | extra)


def counts(db) -> tuple[int, int]:
    with db.connect() as connection:
        return (connection.execute(text("SELECT count(*) FROM transfers")).scalar(),
                connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar())


def test_transfer_moves_money_with_two_entries(client, db):
    a, b = open_account(client), open_account(client)
    credit(client, a["id"], 1000)
    response = transfer(client, a["id"], b["id"], 400, description="Rent")
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/transfers/{body['id']}"
    assert body["amount"] == 400 and body["currency"] == "EUR"
    debit_entry, credit_entry = body["entries"]
    assert (debit_entry["account_id"], debit_entry["direction"], debit_entry["balance_after"]) == (
        a["id"], "debit", 600)
    assert (credit_entry["account_id"], credit_entry["direction"],
            credit_entry["balance_after"]) == (b["id"], "credit", 400)
    assert {debit_entry["transfer_id"], credit_entry["transfer_id"]} == {body["id"]}
    assert client.get(f"/accounts/{a['id']}").json()["balance"] == 600
    assert client.get(f"/accounts/{b['id']}").json()["balance"] == 400
    assert client.get(response.headers["location"]).json() == body
    check_invariants(db)


def test_transfer_to_a_lower_id_writes_the_debit_first(client, db):
    # Rows are locked in id order, here destination first; the ledger still reads debit, credit.
    low, high = open_account(client), open_account(client)
    credit(client, high["id"], 500)
    response = transfer(client, high["id"], low["id"], 200)
    assert response.status_code == 201
    body = response.json()
    assert [(e["account_id"], e["direction"], e["balance_after"]) for e in body["entries"]] == [
        (high["id"], "debit", 300), (low["id"], "credit", 200)]
    assert body["entries"][0]["id"] < body["entries"][1]["id"]
    assert client.get(response.headers["location"]).json() == body
    check_invariants(db)


def test_transfer_with_insufficient_funds_changes_nothing(client, db):
    a, b = open_account(client), open_account(client)
    credit(client, a["id"], 100)
    assert_problem(transfer(client, a["id"], b["id"], 101), 409, "insufficient_funds")
    assert counts(db) == (0, 1)
    assert client.get(f"/accounts/{a['id']}").json()["balance"] == 100
    assert client.get(f"/accounts/{b['id']}").json()["balance"] == 0


def test_transfer_to_same_account_is_refused(client, db):
    a = open_account(client)
    credit(client, a["id"], 100)
    assert_problem(transfer(client, a["id"], a["id"], 10), 422, "same_account")
    assert counts(db) == (0, 1)


def test_transfer_between_currencies_is_refused(client, db):
    a, b = open_account(client, "EUR"), open_account(client, "USD")
    credit(client, a["id"], 100)
    assert_problem(transfer(client, a["id"], b["id"], 10), 409, "currency_mismatch")
    assert counts(db) == (0, 1)


def test_transfer_with_unknown_account_is_404(client, db):
    a = open_account(client)
    credit(client, a["id"], 100)
    problem = assert_problem(transfer(client, a["id"], 9999, 10), 404, "not_found")
    assert "9999" in problem["detail"]
    assert_problem(transfer(client, 9999, a["id"], 10), 404, "not_found")
    assert counts(db) == (0, 1)


def test_transfer_from_or_to_closed_account_is_refused(client, db):
    a, b = open_account(client), open_account(client)
    credit(client, a["id"], 100)
    assert client.post(f"/accounts/{b['id']}/close").status_code == 200
    assert_problem(transfer(client, a["id"], b["id"], 10), 409, "account_closed")
    assert_problem(transfer(client, b["id"], a["id"], 10), 409, "account_closed")
    assert counts(db) == (0, 1)


def test_transfer_validation(client):
    a, b = open_account(client), open_account(client)
    for amount in (0, -5, 2.5, "10"):
        assert_problem(transfer(client, a["id"], b["id"], amount), 422, "validation_error")
    assert_problem(transfer(client, 0, b["id"], 1), 422, "validation_error")
    assert_problem(client.post("/transfers", json={"source_account_id": a["id"]}), 422,
                   "validation_error")


def test_unknown_transfer_is_404(client):
    assert_problem(client.get("/transfers/5"), 404, "not_found")
