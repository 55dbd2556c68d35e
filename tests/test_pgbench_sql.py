"""The benchmark's pgbench scripts send the SQL the API sends (bankops/bench/pgbench/*.sql).

Each script says it is the statements of services/ledger.py (and idempotency.py, accounts.py)
for one operation, as psycopg2 sends them. This holds it to that. The API runs in-process on a
real PostgreSQL, seeded as the benchmark seeds it, and serves the operation's request while
SQLAlchemy's cursor events on its engine record what psycopg2 sends: each statement as sent,
values inlined (`cursor.query`), and the BEGIN, COMMIT and ROLLBACK psycopg2 sends around them
by its own rule (a BEGIN before the first statement on an idle connection; a COMMIT or
ROLLBACK only when a transaction is open). The script's statements, its variables given that
request's values, must read the same, statement by statement and in order.

What does not count: whitespace (and its absence) between tokens, the `;` and `\\gset` that end
a pgbench command, and the value of the request hash the credit with a key stores (pgbench
stores a fixed one; the API hashes each request's body). The transfer's one difference, which
its script states (it reads the locked balances itself where the API sends the numbers), is
undone by edits that must each apply exactly where the script says.

pgbench's meta-commands (`\\set`, `\\if`) are not run here: every variable a statement uses gets
the request's value from the test. Running the scripts, and the books balancing afterwards, is
tests/test_bench.py's (slow). bankops/bench/pgbench/whatif/ holds SQL that is by design not the
API's (hand-run measurements for PROFILE.md), so nothing ties it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2.extensions
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from bank_api.cli import migrate
from bank_api.core import embedded
from bank_api.core.config import Settings
from bank_api.main import create_app
from bankops.bench import database as bench_database
from bankops.bench import run as bench_run

SCRIPTS = bench_database.SCRIPTS
ACCOUNTS = 3  # seeded by the benchmark's own seed(): EUR accounts, same opening balance
AMOUNT = 250
KEY = 4242  # credit_key.sql's :key; the API gets the Idempotency-Key 'pgbench-4242'


# The database and the API ----------------------------------------------------------------


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh database, migrated and seeded as the benchmark's: on TEST_DATABASE_URL's
    server when set, otherwise on an embedded PostgreSQL of this module's own."""
    if server := os.environ.get("TEST_DATABASE_URL"):
        name = f"bank_pgbench_sql_{uuid.uuid4().hex[:8]}"
        url = bench_database.create_database(server, name)
        migrate(url)
        yield url
        bench_database.drop_database(server, name)
        return
    # Not under pytest's tmp_path (see api/tests/conftest.py): a short Unix socket path.
    data_dir = Path(tempfile.mkdtemp(prefix="bank-pgbench-sql-")) / "postgres"
    url = embedded.start(data_dir)
    migrate(url)
    yield url
    embedded.stop(data_dir)
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def ids(database_url: str) -> tuple[int, int]:
    """The first and last seeded account id (pgbench's :first_id and :last_id)."""
    return bench_database.seed(database_url, ACCOUNTS)


@pytest.fixture(scope="module")
def client(database_url: str, ids: tuple[int, int]) -> Iterator[TestClient]:
    """The API in-process, with its default settings (the benchmark runs it with no .env)."""
    settings = Settings(_env_file=None, database_url=database_url)
    with TestClient(create_app(settings)) as test_client:
        # A first request, so the engine's first connection is made before any recording.
        assert test_client.get(f"/accounts/{ids[0]}").status_code == 200
        yield test_client


# What psycopg2 sends --------------------------------------------------------------------


def _begin(dbapi_connection) -> str:
    """The BEGIN psycopg2 sends: plain, unless the session has characteristics of its own
    (then something no script's BEGIN matches)."""
    characteristics = (dbapi_connection.isolation_level, dbapi_connection.readonly,
                       dbapi_connection.deferrable)
    return "BEGIN" if characteristics == (None, None, None) else f"BEGIN {characteristics}"


def _in_transaction(dbapi_connection) -> bool:
    """psycopg2 sends COMMIT or ROLLBACK only inside a transaction it began."""
    return dbapi_connection.status == psycopg2.extensions.STATUS_BEGIN


class Sent(list[str]):
    """The statements, as sent, of its listeners on an engine (see sent_by)."""

    def before_cursor_execute(self, connection, *_) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        if not dbapi_connection.autocommit and not _in_transaction(dbapi_connection):
            self.append(_begin(dbapi_connection))

    def after_cursor_execute(self, connection, cursor, *_) -> None:
        self.append(cursor.query.decode())

    def commit(self, connection) -> None:
        if _in_transaction(connection.connection.dbapi_connection):
            self.append("COMMIT")

    def rollback(self, connection) -> None:
        if _in_transaction(connection.connection.dbapi_connection):
            self.append("ROLLBACK")

    def reset(self, dbapi_connection, connection_record, reset_state) -> None:
        """The pool's rollback of a connection given back."""
        if _in_transaction(dbapi_connection):
            self.append("ROLLBACK")


@contextmanager
def sent_by(engine: Engine) -> Iterator[Sent]:
    """Every statement psycopg2 sends on the engine's connections meanwhile, as sent."""
    sent = Sent()
    listeners = [(engine, name, getattr(sent, name)) for name in
                 ("before_cursor_execute", "after_cursor_execute", "commit", "rollback")]
    listeners.append((engine.pool, "reset", sent.reset))
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield sent
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


# What a script sends ----------------------------------------------------------------------

# A pgbench command ends at a `;` or at a \gset or \aset, which keep the row's values.
COMMAND_END = re.compile(r"(;|\\[ga]set\b.*)\s*$")
# :name, not the `::` of a cast.
VARIABLE = re.compile(r"(?<!:):([A-Za-z_]\w*)")


def script_statements(script: Path, variables: dict[str, object]) -> list[str]:
    """The script's SQL commands in order, variables replaced by their values; comments and
    meta-commands (\\set, \\if, \\endif) left out."""
    statements, lines = [], []
    for line in script.read_text().splitlines():
        if line.lstrip().startswith("--") or not (lines or line.strip()):
            continue
        if not lines and line.startswith("\\"):
            continue
        lines.append(line)
        if COMMAND_END.search(line):
            statements.append(COMMAND_END.sub("", "\n".join(lines)))
            lines = []
    assert not lines, f"{script.name} ends inside a command: {lines}"
    return [_substitute(statement, variables, script.name) for statement in statements]


def _substitute(statement: str, variables: dict[str, object], script: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in variables, f"{script} uses :{name}, which this test gives no value"
        return str(variables[name])

    return VARIABLE.sub(value, statement)


def flat(sql: str) -> str:
    """One space wherever the SQL had whitespace; no trailing `;`."""
    return re.sub(r"\s+", " ", sql).strip().removesuffix(";").rstrip()


REQUEST_HASH = re.compile(r"'[0-9a-f]{64}'")


def normal(sql: str) -> str:
    """The SQL as compared: flat, no space beside a parenthesis or a comma, any request hash
    (a SHA-256 literal) as one placeholder."""
    sql = re.sub(r" ?([(),]) ?", r"\1", flat(sql))
    return REQUEST_HASH.sub("'<request hash>'", sql)


def undo_transfer_difference(statements: list[str], values: dict[str, object]) -> list[str]:
    """transfer.sql's write, as the API sends it: without the `balances` part that reads the
    two locked balances, with the balances the API computed in its place."""
    source, destination, amount = values["source"], values["destination"], values["amount"]
    edits = [
        (rf"\), balances AS \( SELECT \(SELECT balance FROM accounts WHERE id = {source}\) - "
         rf"{amount} AS source_after, \(SELECT balance FROM accounts WHERE id = "
         rf"{destination}\) \+ {amount} AS destination_after \)", ")", 1),
        (r" FROM balances WHERE id = ", " WHERE id = ", 2),  # debited, credited
        (r"FROM transfer, balances, LATERAL \(VALUES ", "FROM transfer, (VALUES ", 1),
        (r"balances\.source_after\b", str(values["source_after"]), 2),
        (r"balances\.destination_after\b", str(values["destination_after"]), 2),
    ]
    (write,) = [i for i, statement in enumerate(statements) if "balances AS" in statement]
    sql = flat(statements[write])
    for pattern, replacement, count in edits:
        sql, made = re.subn(pattern, replacement, sql)
        assert made == count, f"transfer.sql's stated difference changed: {pattern!r}"
    return statements[:write] + [sql] + statements[write + 1:]


# The operations, as the benchmark's wrk scripts send them ---------------------------------


def read(client: TestClient, first: int, last: int) -> dict[str, object]:
    response = client.get(f"/accounts/{first}")
    assert response.status_code == 200, response.text
    return {"id": first}


def credit(client: TestClient, first: int, last: int, **headers: str) -> dict[str, object]:
    response = client.post(f"/accounts/{last}/transactions",
                           json={"direction": "credit", "amount": AMOUNT}, headers=headers)
    assert response.status_code == 201, response.text
    entry = response.json()
    return {"id": last, "amount": AMOUNT, "balance": entry["balance_after"],
            "entry_id": entry["id"]}


def credit_key(client: TestClient, first: int, last: int) -> dict[str, object]:
    return credit(client, first, last, **{"Idempotency-Key": f"pgbench-{KEY}"}) | {"key": KEY}


def transfer(client: TestClient, first: int, last: int) -> dict[str, object]:
    # From the higher id to the lower: the API locks them in ascending order all the same.
    response = client.post("/transfers", json={
        "source_account_id": last, "destination_account_id": first, "amount": AMOUNT})
    assert response.status_code == 201, response.text
    debit, credit_ = response.json()["entries"]
    return {"source": last, "destination": first, "amount": AMOUNT,
            "low": first, "high": last,
            "source_after": debit["balance_after"], "destination_after": credit_["balance_after"]}


OPERATIONS = {"read": read, "credit": credit, "credit_key": credit_key, "transfer": transfer}
# A script's difference from the API's SQL that the script itself states, undone.
STATED_DIFFERENCES = {"transfer": undo_transfer_difference}


def test_every_benchmark_script_is_tied_to_the_api():
    assert set(OPERATIONS) == set(bench_run.OPERATIONS) == {
        script.stem for script in SCRIPTS.glob("*.sql")}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_the_script_sends_the_apis_statements(operation, client, ids):
    with sent_by(client.app.state.engine) as sent:
        values = OPERATIONS[operation](client, *ids)
    script = script_statements(SCRIPTS / f"{operation}.sql", values)
    if operation in STATED_DIFFERENCES:
        script = STATED_DIFFERENCES[operation](script, values)
    assert [normal(statement) for statement in script] == [normal(s) for s in sent]
