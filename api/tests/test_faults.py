"""The fault switch: off by default, guarded by ADMIN_TOKEN, applied per route."""

import time

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

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
        "latency_ms": 0, "error_rate": 0.0, "routes": []}


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


@pytest.mark.parametrize("body", [{"error_rate": 1.5}, {"latency_ms": -1},
                                  {"latency_ms": 60_000}, {"routes": ["/nope"]},
                                  {"routes": ["/admin/faults"]}])
def test_invalid_fault_settings(admin_client, body):
    response = admin_client.put("/admin/faults", headers=AUTH, json=body)
    assert response.status_code == 422
