"""Fixtures: a real PostgreSQL for every test, and a real uvicorn server where it matters.

The database is TEST_DATABASE_URL when set (any PostgreSQL server), otherwise an embedded
PostgreSQL started once per test session. Each test session works in a fresh database,
migrated with Alembic exactly like production; tables are emptied before every test.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, make_url, text

from bank_api.cli import migrate
from bank_api.core import embedded
from bank_api.main import create_app
from helpers import LiveServer, make_settings

TABLES = "ledger_entries, transfers, refusals, idempotency_keys, accounts"


@pytest.fixture(scope="session")
def database_server() -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    # Not under pytest's tmp_path: pytest prunes old tmp dirs, and the server outlives them.
    data_dir = Path(tempfile.mkdtemp(prefix="bank-api-tests-")) / "postgres"
    yield embedded.start(data_dir, database="postgres")
    embedded.stop(data_dir)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(database_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test session; dropped at the end."""
    server = make_url(database_server)
    name = f"bank_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Engine]:
    """Direct SQL access for checking what the API wrote."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _empty_tables(request: pytest.FixtureRequest) -> None:
    if "database_url" not in request.fixturenames:
        return
    engine = request.getfixturevalue("db")
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """The app in-process, on the real database."""
    with TestClient(create_app(make_settings(database_url))) as test_client:
        yield test_client


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    server = LiveServer(database_url)
    yield server
    server.stop()
