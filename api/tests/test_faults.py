"""The fault switch: off by default, guarded by ADMIN_TOKEN, applied per route."""

import time

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from bank_api.api import fault_injection
from bank_api.core.config import Settings
from bank_api.main import create_app
from helpers import assert_problem, make_settings, open_account

TOKEN = "a-real-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def admin_client(database_url, db):
    from sqlalchemy import text
    with db.begin() as connection:
        connection.execute(text("DELETE FROM fault_injection"))
    with TestClient(create_app(make_settings(database_url, admin_token=TOKEN))) as client:
        yield client


def test_admin_is_disabled_without_a_token(client):
    assert_problem(client.get("/admin/faults"), 404, "not_found")


def test_admin_needs_the_token(admin_client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = admin_client.put("/admin/faults", json={"error_rate": 1}, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert admin_client.get("/admin/faults", headers=AUTH).json() == {
        "latency_ms": 0, "error_rate": 0.0, "routes": [], "methods": [], "expires_at": None}


@pytest.mark.parametrize("token", ["change-me", "changeme", "", "short"])
def test_placeholder_tokens_are_refused(token):
    with pytest.raises(ValidationError, match="ADMIN_TOKEN"):
        Settings(admin_token=token)


def test_errors_on_chosen_route_only(admin_client):
    account = open_account(admin_client)
    response = admin_client.put("/admin/faults", headers=AUTH, json={
        "error_rate": 1.0, "routes": ["/accounts/{account_id}"]})
    assert response.status_code == 200
    assert_problem(admin_client.get(f"/accounts/{account['id']}"), 500, "fault_injected")
    assert admin_client.get("/accounts").status_code == 200
    assert admin_client.get("/health/ready").status_code == 200
    assert admin_client.delete("/admin/faults", headers=AUTH).status_code == 200
    assert admin_client.get(f"/accounts/{account['id']}").status_code == 200


def test_latency_on_every_route(admin_client):
    admin_client.put("/admin/faults", headers=AUTH, json={"latency_ms": 300})
    start = time.perf_counter()
    assert admin_client.get("/accounts").status_code == 200
    assert time.perf_counter() - start >= 0.3
    start = time.perf_counter()
    admin_client.get("/health/live")  # exempt
    assert time.perf_counter() - start < 0.3


def test_errors_on_chosen_method_only(admin_client):
    """One route template serves the history (GET) and credits/debits (POST): a method
    narrows the switch to the money movements."""
    account = open_account(admin_client)
    path = f"/accounts/{account['id']}/transactions"
    admin_client.put("/admin/faults", headers=AUTH, json={
        "error_rate": 1.0, "routes": ["/accounts/{account_id}/transactions"],
        "methods": ["POST"]})
    assert admin_client.get(path).status_code == 200
    credit = {"direction": "credit", "amount": 100}
    assert_problem(admin_client.post(path, json=credit), 500, "fault_injected")
    assert admin_client.get(path).json()["items"] == []  # the refused credit moved nothing


def test_a_deadline_turns_the_switch_off_by_itself(admin_client):
    """Whoever set it may be gone: past duration_s the switch reads as off, with no DELETE."""
    account = open_account(admin_client)
    state = admin_client.put("/admin/faults", headers=AUTH, json={
        "error_rate": 1.0, "routes": ["/accounts/{account_id}"], "duration_s": 1}).json()
    assert state["expires_at"] is not None
    assert_problem(admin_client.get(f"/accounts/{account['id']}"), 500, "fault_injected")
    time.sleep(1 + fault_injection.REFRESH_SECONDS + 0.2)
    assert admin_client.get(f"/accounts/{account['id']}").status_code == 200
    assert admin_client.get("/admin/faults", headers=AUTH).json()["error_rate"] == 0


@pytest.mark.parametrize("body", [{"error_rate": 1.5}, {"latency_ms": -1},
                                  {"latency_ms": 60_000}, {"routes": ["/nope"]},
                                  {"routes": ["/admin/faults"]}, {"methods": ["TRACE"]},
                                  {"duration_s": 0}, {"duration_s": 100_000}])
def test_invalid_fault_settings(admin_client, body):
    response = admin_client.put("/admin/faults", headers=AUTH, json=body)
    assert response.status_code == 422
