"""/accounts: every success and failure path, with exact statuses and problem codes."""

import pytest
from sqlalchemy import text

from helpers import assert_problem, credit, open_account


def test_open_account_returns_201_location_and_zero_balance(client):
    response = client.post("/accounts", json={
        "first_name": " Grace ", "last_name": "Hopper", "address": "1 Navy Way", "currency": "USD",
    })
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/accounts/{body['id']}"
    assert body | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0, "first_name": "Grace", "last_name": "Hopper", "address": "1 Navy Way",
        "currency": "USD", "balance": 0, "status": "active", "created_at": "", "updated_at": "",
        "closed_at": None,
    }
    assert client.get(response.headers["location"]).json() == body


@pytest.mark.parametrize("change, field", [
    ({"currency": "eur"}, "body.currency"),
    ({"currency": "EURO"}, "body.currency"),
    ({"currency": "XYZ"}, "body.currency"),  # well-formed but not ISO 4217
    ({"first_name": ""}, "body.first_name"),
    ({"first_name": "   "}, "body.first_name"),
    ({"last_name": "x" * 101}, "body.last_name"),
    ({"address": None}, "body.address"),
    ({"balance": 100}, "body.balance"),  # balances change only through the ledger
    ({"first_name": 7}, "body.first_name"),
    ({"first_name": "Ada\u0000"}, "body.first_name"),  # PostgreSQL text cannot hold NUL
    ({"address": "line\nbreak"}, "body.address"),
])
def test_open_account_refuses_invalid_fields(client, db, change, field):
    body = {"first_name": "Ada", "last_name": "L", "address": "x", "currency": "EUR"} | change
    problem = assert_problem(client.post("/accounts", json=body), 422, "validation_error")
    assert field in [e["field"] for e in problem["errors"]]
    with db.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM accounts")).scalar() == 0


def test_open_account_missing_field(client):
    problem = assert_problem(client.post("/accounts", json={"first_name": "Ada"}), 422,
                             "validation_error")
    assert {"body.last_name", "body.address", "body.currency"} <= {
        e["field"] for e in problem["errors"]}


def test_get_unknown_account_is_404(client):
    assert_problem(client.get("/accounts/424242"), 404, "not_found")


@pytest.mark.parametrize("account_id", ["0", "-1", "abc", "1.5", str(2**63)])
def test_account_id_out_of_range_is_422(client, account_id):
    assert_problem(client.get(f"/accounts/{account_id}"), 422, "validation_error")


def test_list_accounts_pages_with_cursor(client):
    ids = [open_account(client)["id"] for _ in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        response = client.get("/accounts", params=params)
        assert response.status_code == 200
        page = response.json()
        assert len(page["items"]) <= 3
        seen += [a["id"] for a in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3


def test_list_accounts_caps_limit_and_has_default(client):
    for _ in range(7):
        open_account(client)
    # The test app sets page_size_default=3 and page_size_max=5.
    assert len(client.get("/accounts").json()["items"]) == 3
    assert len(client.get("/accounts", params={"limit": 1000}).json()["items"]) == 5


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": -1}, {"limit": "x"},
                                    {"cursor": "not-a-cursor"}, {"cursor": "eyJhZnRlciI6ICJ4In0"},
                                    {"status": "frozen"}])
def test_list_accounts_refuses_bad_query(client, params):
    assert_problem(client.get("/accounts", params=params), 422, "validation_error")


def test_list_accounts_filters_by_status(client):
    kept = open_account(client)["id"]
    closed = open_account(client)["id"]
    assert client.post(f"/accounts/{closed}/close").status_code == 200
    active = client.get("/accounts", params={"status": "active"}).json()["items"]
    assert [a["id"] for a in active] == [kept]
    closed_page = client.get("/accounts", params={"status": "closed"}).json()["items"]
    assert [a["id"] for a in closed_page] == [closed]


def test_patch_changes_names_and_address_only(client):
    account = open_account(client)
    response = client.patch(f"/accounts/{account['id']}", json={"address": "2 New Road"})
    assert response.status_code == 200
    assert response.json()["address"] == "2 New Road"
    assert response.json()["first_name"] == account["first_name"]
    assert response.json()["updated_at"] >= account["updated_at"]


@pytest.mark.parametrize("body", [{}, {"currency": "USD"}, {"balance": 5}, {"first_name": None},
                                  {"first_name": ""}])
def test_patch_refuses_invalid_changes(client, body):
    account = open_account(client)
    assert_problem(client.patch(f"/accounts/{account['id']}", json=body), 422, "validation_error")
    assert client.get(f"/accounts/{account['id']}").json() == account


def test_patch_unknown_account_is_404(client):
    assert_problem(client.patch("/accounts/99", json={"address": "x"}), 404, "not_found")


def test_close_refused_while_balance_not_zero(client):
    account = open_account(client)
    credit(client, account["id"], 100)
    assert_problem(client.post(f"/accounts/{account['id']}/close"), 409, "account_not_empty")
    assert client.get(f"/accounts/{account['id']}").json()["status"] == "active"


def test_close_empty_account_then_it_refuses_changes(client):
    account = open_account(client)
    response = client.post(f"/accounts/{account['id']}/close")
    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    assert response.json()["closed_at"] is not None
    # Closing again changes nothing.
    again = client.post(f"/accounts/{account['id']}/close")
    assert again.status_code == 200
    assert again.json() == response.json()
    assert_problem(client.patch(f"/accounts/{account['id']}", json={"address": "x"}), 409,
                   "account_closed")
    assert_problem(
        client.post(f"/accounts/{account['id']}/transactions",
                    json={"direction": "credit", "amount": 1}), 409, "account_closed")


def test_close_unknown_account_is_404(client):
    assert_problem(client.post("/accounts/77/close"), 404, "not_found")


def test_wrong_method_names_the_allowed_ones(client):
    response = client.delete("/accounts/1")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, PATCH"
