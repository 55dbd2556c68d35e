"""Overload, security headers and secrets."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from pydantic import ValidationError
from test_metrics import scrape, value

from bank_api.core.config import Settings
from helpers import LiveServer, assert_problem, open_account

TOKEN = "a-real-admin-token-for-tests"


@pytest.fixture
def small_server(database_url, db):
    from sqlalchemy import text
    with db.begin() as connection:
        connection.execute(text("DELETE FROM fault_injection"))
    server = LiveServer(database_url, MAX_IN_FLIGHT="2", QUEUE_TIMEOUT="0.3", ADMIN_TOKEN=TOKEN)
    yield server
    server.stop()
    with db.begin() as connection:
        connection.execute(text("DELETE FROM fault_injection"))


def test_overload_is_shed_with_503_and_retry_after(small_server):
    """2 slots, every account read made slow: of 8 at once, the surplus is refused fast."""
    with httpx.Client(base_url=small_server.url, timeout=30) as http:
        account = open_account(http)
        http.put("/admin/faults", headers={"Authorization": f"Bearer {TOKEN}"},
                 json={"latency_ms": 1500, "routes": ["/accounts/{account_id}"]})

        # Clients made and connected first, then all eight sent at once: on a busy machine,
        # making a client (its TLS context) can take longer than a slow request's 1.5 s.
        clients = [httpx.Client(base_url=small_server.url, timeout=30) for _ in range(8)]
        for own in clients:
            own.get("/health/live")
        start = threading.Barrier(8)

        def read(own: httpx.Client) -> httpx.Response:
            start.wait()
            return own.get(f"/accounts/{account['id']}")

        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                responses = list(pool.map(read, clients))
        finally:
            for own in clients:
                own.close()
        shed = [r for r in responses if r.status_code == 503]
        served = [r for r in responses if r.status_code == 200]
        assert len(shed) + len(served) == 8
        assert 1 <= len(served) <= 4 and len(shed) >= 4, [r.status_code for r in responses]
        for response in shed:
            assert_problem(response, 503, "overloaded")
            assert response.headers["retry-after"] == "1"
        # Health checks are never shed, even now.
        assert http.get("/health/live").status_code == 200
    assert value(scrape(small_server.url), "bank_requests_shed_total",
                 reason="overload") == len(shed)


def test_security_headers(client):
    response = client.get("/accounts")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'")
    assert response.headers["cache-control"] == "no-store"
    assert "content-security-policy" not in client.get("/docs").headers  # Swagger UI's scripts
    assert client.get("/accounts/0").headers["x-content-type-options"] == "nosniff"


def test_no_server_header(live_server):
    assert "server" not in httpx.get(f"{live_server.url}/health/live").headers


@pytest.mark.parametrize("url", ["postgresql+psycopg2://bank:change-me@db/bank",
                                 "postgresql+psycopg2://bank:@db/bank"])
def test_placeholder_database_password_is_refused(url):
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(database_url=url)
