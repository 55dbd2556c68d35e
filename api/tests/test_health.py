"""Liveness, readiness and a clean shutdown."""

import threading
import time

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import text

from bank_api.main import create_app
from helpers import LiveServer, assert_problem, make_settings, open_account


def test_live_and_ready(client):
    assert client.get("/health/live").json() == {"status": "ok"}
    assert client.get("/health/ready").json() == {"status": "ok"}


def test_ready_is_503_when_the_database_is_unreachable(tmp_path):
    # A Unix socket directory with no server in it: connecting fails at once.
    url = f"postgresql+psycopg2://postgres@/bank?host={tmp_path}"
    with TestClient(create_app(make_settings(url))) as client:
        assert client.get("/health/live").status_code == 200
        response = client.get("/health/ready")
        assert_problem(response, 503, "database_unavailable")
        assert response.headers["retry-after"] == "2"
        assert_problem(client.get("/accounts/1"), 503, "database_unavailable")


def test_shutdown_lets_in_flight_requests_finish_and_closes_the_pool(database_url, db):
    """SIGTERM while a credit waits on a row lock: the credit still completes, then the
    server exits and leaves no database connection behind."""
    server = LiveServer(database_url)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            account = open_account(http)
            results = {}
            with db.connect() as blocker:
                blocker.execute(text("SELECT 1 FROM accounts WHERE id = :id FOR UPDATE"),
                                {"id": account["id"]})

                def credit():
                    results["response"] = http.post(
                        f"/accounts/{account['id']}/transactions",
                        json={"direction": "credit", "amount": 42})

                thread = threading.Thread(target=credit)
                thread.start()
                time.sleep(0.5)  # the credit is now waiting for the row lock
                assert thread.is_alive()
                server.process.terminate()
                time.sleep(0.5)
                blocker.rollback()  # release the lock; the in-flight credit proceeds
            thread.join(30)
        assert results["response"].status_code == 201
        assert server.process.wait(30) == 0
        assert "Application shutdown complete" in server.log()
    finally:
        server.stop()
    with db.connect() as connection:
        left = connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bank-api'")).scalar()
        balance = connection.execute(text("SELECT balance FROM accounts")).scalar()
    assert left == 0
    assert balance == 42
