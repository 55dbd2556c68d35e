"""Alembic owns the schema: it upgrades, downgrades and agrees with the models."""

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.exc import DBAPIError

from bank_api.cli import migrate
from bank_api.models import Base
from helpers import open_account


@pytest.fixture
def scratch_database(database_url):
    """An empty database of its own, so downgrades do not disturb the other tests."""
    server = make_url(database_url)
    name = f"bank_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "bank_api:migrations")
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def test_upgrade_downgrade_upgrade(scratch_database):
    config = alembic_config(scratch_database)
    engine = create_engine(scratch_database)
    tables = {"accounts", "ledger_entries", "transfers", "refusals", "idempotency_keys"}
    command.upgrade(config, "head")
    assert tables <= set(inspect(engine).get_table_names())
    command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert tables <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_idempotency_keys_survive_0003_both_ways(scratch_database):
    """Keys written before 0003 (a stored answer) point at their movement after it, and keys
    written after it get their answer back on a downgrade: a retry moves nothing either way."""
    config = alembic_config(scratch_database)
    command.upgrade(config, "0002")
    engine = create_engine(scratch_database)
    with engine.begin() as connection:
        connection.execute(text("""
            INSERT INTO accounts (id, first_name, last_name, address, currency, balance)
            VALUES (1, 'A', 'B', 'C', 'EUR', 40), (2, 'D', 'E', 'F', 'EUR', 60);
            INSERT INTO ledger_entries (id, account_id, direction, amount, balance_after)
            VALUES (1, 1, 'credit', 100, 100);
            INSERT INTO transfers (id, source_account_id, destination_account_id, amount,
                                   currency) VALUES (1, 1, 2, 60, 'EUR');
            INSERT INTO ledger_entries (id, account_id, direction, amount, balance_after,
                                        transfer_id)
            VALUES (2, 1, 'debit', 60, 40, 1), (3, 2, 'credit', 60, 60, 1);
            INSERT INTO idempotency_keys (key, request_hash, response_status, response_body,
                                          location)
            VALUES ('credit-key', 'h1', 201, '{"id": 1}', '/transactions/1'),
                   ('transfer-key', 'h2', 201, '{"id": 1}', '/transfers/1');
        """))
    command.upgrade(config, "head")
    with engine.connect() as connection:
        refs = connection.execute(text("SELECT key, ledger_entry_id, transfer_id "
                                       "FROM idempotency_keys ORDER BY key")).all()
    assert [tuple(r) for r in refs] == [("credit-key", 1, None), ("transfer-key", None, 1)]
    command.downgrade(config, "0002")
    with engine.connect() as connection:
        bodies = dict(connection.execute(text(
            "SELECT key, response_body FROM idempotency_keys")).all())
    assert bodies["credit-key"]["balance_after"] == 100
    assert [e["id"] for e in bodies["transfer-key"]["entries"]] == [2, 3]
    assert bodies["transfer-key"]["amount"] == 60
    engine.dispose()


def test_models_and_migrations_agree(database_url):
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_cli_migrate_is_idempotent(database_url):
    migrate(database_url)  # already at head: nothing to do, no error


def test_ledger_is_append_only(client, db):
    account = open_account(client)
    client.post(f"/accounts/{account['id']}/transactions",
                json={"direction": "credit", "amount": 5})
    for statement in ("UPDATE ledger_entries SET amount = 1", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"), db.begin() as connection:
            connection.execute(text(statement))


@pytest.mark.parametrize("statement", [
    "UPDATE accounts SET balance = -1",
    "UPDATE accounts SET currency = 'eur'",
    "UPDATE accounts SET status = 'closed', closed_at = now()",  # balance is not zero
    "UPDATE accounts SET status = 'frozen'",
    "INSERT INTO ledger_entries (account_id, direction, amount, balance_after) "
    "VALUES (1, 'credit', 0, 5)",
    "INSERT INTO ledger_entries (account_id, direction, amount, balance_after) "
    "VALUES (1, 'refund', 5, 5)",
    "INSERT INTO ledger_entries (account_id, direction, amount, balance_after) "
    "VALUES (1, 'debit', 5, -1)",
    "INSERT INTO transfers (source_account_id, destination_account_id, amount, currency) "
    "VALUES (1, 1, 5, 'EUR')",
])
def test_check_constraints_back_the_money_rules(client, db, statement):
    account = open_account(client)
    assert account["id"] == 1
    client.post("/accounts/1/transactions", json={"direction": "credit", "amount": 5})
    with pytest.raises(DBAPIError), db.begin() as connection:
        connection.execute(text(statement))


def test_read_only_role_can_read_but_not_write(db):
    with db.begin() as connection:
        connection.execute(text("SET LOCAL ROLE bank_readonly"))
        connection.execute(text("SELECT count(*) FROM accounts, ledger_entries, transfers, "
                                "refusals"))
    with pytest.raises(DBAPIError, match="permission denied"), db.begin() as connection:
        connection.execute(text("SET LOCAL ROLE bank_readonly"))
        connection.execute(text("SELECT * FROM idempotency_keys"))
    with pytest.raises(DBAPIError, match="permission denied"), db.begin() as connection:
        connection.execute(text("SET LOCAL ROLE bank_readonly"))
        connection.execute(text("UPDATE accounts SET first_name = 'x'"))
