"""Helpers shared by the tests: a live server, request shortcuts, the invariant check."""

import sys
import tempfile
from pathlib import Path

from sqlalchemy import Engine

from bank_api import audit
from bank_api.audit import Books
from bank_api.core.config import Settings
from bankops.processes import Service, free_port


def make_settings(database_url: str, **overrides) -> Settings:
    values = {"database_url": database_url, "page_size_default": 3, "page_size_max": 5}
    return Settings(**(values | overrides))


class LiveServer(Service):
    """`bank-api` in a subprocess: real uvicorn, real worker processes; started at once."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_dir = Path(tempfile.mkdtemp(prefix="bank-api-test-"))
        super().__init__(
            "bank-api", [sys.executable, "-m", "bank_api.cli"], log_path=log_dir / "server.log",
            env={"DATABASE_URL": database_url, "PORT": str(self.port), "HOST": "127.0.0.1"}
            | env,
            ready_url=f"{self.url}/health/ready",
            timeout=120,  # generous: CI machines are shared
        )
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


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


def check_invariants(db: Engine, *, expected_external_net: int | None = None) -> Books:
    """The money invariants (bank_api.audit), asserted; the books, for further checks."""
    with db.connect() as connection:
        books = audit.check(connection, expected_external_net=expected_external_net)
    assert books.passed, audit.describe(books)
    return books
