"""Helpers shared by the tests: a live server, request shortcuts, the invariant check."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from bank_api.core.config import Settings


def make_settings(database_url: str, **overrides) -> Settings:
    values = {"database_url": database_url, "page_size_default": 3, "page_size_max": 5}
    return Settings(**(values | overrides))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`bank-api` in a subprocess: real uvicorn, real worker processes."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bank-api-{self.port}.log"
        environment = os.environ | {
            "DATABASE_URL": database_url,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
        } | env
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bank_api.cli"], env=environment,
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> None:  # generous: CI machines are shared
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bank-api exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"bank-api did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode




def open_account(client, currency: str = "EUR", **fields) -> dict:
    body = {"first_name": "Ada", "last_name": "Lovelace", "address": "1 Main St",
            "currency": currency} | fields
    response = client.post("/accounts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def credit(client, account_id: int, amount: int, **headers) -> dict:
    response = client.post(f"/accounts/{account_id}/transactions",
                           json={"direction": "credit", "amount": amount}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:bank-api:problem:{code}"
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


def check_invariants(db: Engine) -> dict:
    """The money invariants, checked in SQL. Returns the totals for further checks."""
    with db.connect() as connection:
        mismatched = connection.execute(text("""
            SELECT a.id, a.balance,
                   COALESCE(SUM(CASE e.direction WHEN 'credit' THEN e.amount ELSE -e.amount END), 0)
            FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
            GROUP BY a.id HAVING a.balance <> COALESCE(
                SUM(CASE e.direction WHEN 'credit' THEN e.amount ELSE -e.amount END), 0)
        """)).all()
        assert mismatched == [], f"balance differs from ledger sum: {mismatched}"
        negative = connection.execute(text("SELECT id FROM accounts WHERE balance < 0")).all()
        assert negative == []
        # balance_after of each account's newest entry is its balance.
        stale = connection.execute(text("""
            SELECT a.id FROM accounts a
            JOIN LATERAL (SELECT balance_after FROM ledger_entries
                          WHERE account_id = a.id ORDER BY id DESC LIMIT 1) last ON true
            WHERE last.balance_after <> a.balance
        """)).all()
        assert stale == [], f"balance_after of the newest entry differs: {stale}"
        # Every transfer has exactly one debit and one credit of its amount.
        unbalanced = connection.execute(text("""
            SELECT t.id FROM transfers t JOIN ledger_entries e ON e.transfer_id = t.id
            GROUP BY t.id, t.amount, t.source_account_id, t.destination_account_id
            HAVING COUNT(*) <> 2
                OR SUM(CASE WHEN e.direction = 'debit' AND e.account_id = t.source_account_id
                            THEN e.amount END) <> t.amount
                OR SUM(CASE WHEN e.direction = 'credit' AND e.account_id = t.destination_account_id
                            THEN e.amount END) <> t.amount
        """)).all()
        assert unbalanced == [], f"transfers without their two entries: {unbalanced}"
        total = connection.execute(text("SELECT COALESCE(SUM(balance), 0) FROM accounts")).scalar()
        external = connection.execute(text("""
            SELECT COALESCE(SUM(CASE direction WHEN 'credit' THEN amount ELSE -amount END), 0)
            FROM ledger_entries WHERE transfer_id IS NULL
        """)).scalar()
        assert total == external, "transfers created or destroyed money"
        return {"total_balance": total}
