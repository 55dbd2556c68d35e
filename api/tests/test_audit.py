"""The books check (bank_api.audit) catches each broken invariant it claims to catch.

Real books are written through the API, then copied, without the schema's constraints and
trigger, into a schema of their own; each test corrupts the copy in one way and checks that
the audit reports exactly the findings that corruption must cause, no fewer and no more.
"""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from bank_api import audit
from helpers import credit, open_account

COPY = "books_copy"


@dataclass(frozen=True)
class Books:
    """The ids of what the scenario wrote: accounts a, b, c and the entries of each."""

    a: int
    b: int
    c: int
    a_salary: int  # credit 10,000 on a
    a_cash: int  # debit 2,500 on a
    b_salary: int  # credit 1,000 on b
    c_salary: int  # credit 500 on c
    transfer: int  # 3,000 from a to b: the newest entry of both
    transfer_debit: int
    transfer_credit: int
    external_net: int = 10_000 - 2_500 + 1_000 + 500  # what the clients were told moved


@pytest.fixture
def books(client) -> Books:
    a, b, c = (open_account(client)["id"] for _ in range(3))
    a_salary = credit(client, a, 10_000)["id"]
    response = client.post(f"/accounts/{a}/transactions",
                           json={"direction": "debit", "amount": 2_500})
    assert response.status_code == 201, response.text
    a_cash = response.json()["id"]
    b_salary = credit(client, b, 1_000)["id"]
    c_salary = credit(client, c, 500)["id"]
    response = client.post("/transfers", json={"source_account_id": a,
                                               "destination_account_id": b, "amount": 3_000})
    assert response.status_code == 201, response.text
    debit, credit_entry = response.json()["entries"]
    return Books(a, b, c, a_salary, a_cash, b_salary, c_salary, response.json()["id"],
                 debit["id"], credit_entry["id"])


@pytest.fixture
def copy(db, books):
    """A connection that sees a copy of the books (tables without constraints or triggers)."""
    with db.connect() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {COPY} CASCADE; CREATE SCHEMA {COPY}"))
        for table in ("accounts", "ledger_entries", "transfers"):
            connection.execute(text(f"CREATE TABLE {COPY}.{table} AS TABLE public.{table}"))
        connection.execute(text(f"SET search_path TO {COPY}"))
        connection.commit()
        yield connection
        connection.rollback()
        # The connection goes back to the pool: as it was.
        connection.execute(text(f"RESET search_path; DROP SCHEMA {COPY} CASCADE"))
        connection.commit()


def corrupt(connection, *statements: str, **ids: int) -> None:
    for statement in statements:
        connection.execute(text(statement), ids)
    connection.commit()


def findings(connection, **options) -> dict[str, audit.Finding]:
    books = audit.check(connection, **options)
    return {finding.code: finding for finding in books.findings}


def test_real_books_pass(db, books):
    with db.connect() as connection:
        checked = audit.check(connection, expected_external_net=books.external_net)
    assert checked.passed, audit.describe(checked)
    assert (checked.accounts, checked.ledger_entries, checked.transfers) == (3, 6, 1)
    assert checked.total_balance == checked.external_net == books.external_net


def test_the_untouched_copy_passes(copy, books):
    assert findings(copy, expected_external_net=books.external_net) == {}


def test_balance_that_differs_from_its_ledger(copy, books):
    corrupt(copy, "UPDATE accounts SET balance = balance + 1 WHERE id = :c", c=books.c)
    found = findings(copy)
    assert set(found) == {"balance_vs_ledger", "latest_balance_after", "money_created"}
    assert found["balance_vs_ledger"].ids == (books.c,)


def test_transfer_that_lost_its_credit(copy, books):
    """The credit entry is gone and b's balance agrees with what is left: every account is
    consistent, but the transfer has one leg and the money it moved has vanished."""
    corrupt(copy, "DELETE FROM ledger_entries WHERE id = :entry",
            "UPDATE accounts SET balance = balance - 3000 WHERE id = :b",
            entry=books.transfer_credit, b=books.b)
    found = findings(copy)
    assert set(found) == {"unbalanced_transfer", "money_created"}
    assert found["unbalanced_transfer"].ids == (books.transfer,)


def test_transfer_booked_as_two_credits(copy, books):
    """Its debit turned into a credit, with a's balance following: a transfer check that
    only compares sums of matching rows (NULL <> amount is not true) would let this pass."""
    corrupt(copy, "UPDATE ledger_entries SET direction = 'credit', balance_after = 10500 "
                  "WHERE id = :entry",
            "UPDATE accounts SET balance = 10500 WHERE id = :a",
            entry=books.transfer_debit, a=books.a)
    found = findings(copy)
    assert set(found) == {"unbalanced_transfer", "money_created"}
    assert found["unbalanced_transfer"].ids == (books.transfer,)


def test_negative_balance(copy, books):
    """c's salary rewritten as a debit it could not afford, consistently everywhere: only the
    sign of the balance is wrong."""
    corrupt(copy, "UPDATE ledger_entries SET direction = 'debit', balance_after = -500 "
                  "WHERE id = :entry",
            "UPDATE accounts SET balance = -500 WHERE id = :c",
            entry=books.c_salary, c=books.c)
    found = findings(copy)
    assert set(found) == {"negative_balance"}
    assert found["negative_balance"].ids == (books.c,)


def test_running_balance_broken_inside_the_ledger(copy, books):
    corrupt(copy, "UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE id = :e",
            e=books.a_cash)
    found = findings(copy)
    # The entry itself, and the next one, which no longer follows from it.
    assert set(found) == {"running_balance"}
    assert found["running_balance"].ids == (books.a_cash, books.transfer_debit)


def test_external_totals_off_by_one(copy, books):
    """a's salary grew by one unit, with every balance_after and the balance following: the
    books agree with themselves, and only what the clients were told gives it away."""
    corrupt(copy, "UPDATE ledger_entries SET amount = amount + 1 WHERE id = :salary",
            "UPDATE ledger_entries SET balance_after = balance_after + 1 "
            "WHERE account_id = :a",
            "UPDATE accounts SET balance = balance + 1 WHERE id = :a",
            salary=books.a_salary, a=books.a)
    assert findings(copy) == {}  # nothing inside the books shows it
    found = findings(copy, expected_external_net=books.external_net)
    assert set(found) == {"external_net"}
    assert str(books.external_net + 1) in found["external_net"].what


def test_bank_api_audit_command(database_url, copy, books):
    """`bank-api audit` passes on the real books and fails, naming the finding, on a broken
    copy (the copy is reached with libpq's search_path option)."""
    command = [str(Path(sys.executable).with_name("bank-api")), "audit"]
    passed = subprocess.run(command, env={"DATABASE_URL": database_url, "PATH": "/usr/bin"},
                            capture_output=True, text=True, timeout=60)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "books: PASS: 3 accounts, 6 ledger entries, 1 transfers" in passed.stdout

    corrupt(copy, "UPDATE accounts SET balance = -1 WHERE id = :c", c=books.c)
    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={COPY}"})
    failed = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            env={"DATABASE_URL": url.render_as_string(hide_password=False),
                                 "PATH": "/usr/bin"})
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "books: FAIL" in failed.stdout and "negative_balance" in failed.stdout
