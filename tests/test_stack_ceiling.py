"""The stack ceiling (bankops/bench/ceiling_app.py) does the API's work, no less: for the same
account it answers the API's bodies byte for byte, and its money movements leave books the
API reads back as its own and bank_api.audit passes. Otherwise "API ÷ stack ceiling" would
compare unlike things.

Both servers run as the benchmark runs them (bankops.bench.servers) on one embedded
PostgreSQL, migrated and seeded by the benchmark's own code.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bank_api.audit import check_database
from bankops.bench import database, servers
from bankops.processes import free_ports

ACCOUNTS = 20


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[str, httpx.Client, httpx.Client]]:
    """(database URL, a client of the API, a client of the stack ceiling)."""
    work_dir = Path(tempfile.mkdtemp(prefix="stack-ceiling-"))
    url = database.start_embedded(work_dir / "postgres")
    try:
        database.migrate(url, work_dir)
        database.seed(url, ACCOUNTS)
        api_port, ceiling_port = free_ports(2)
        api = servers.api_server(url, api_port, 1, True, work_dir)
        ceiling = servers.ceiling_server(url, ceiling_port, 1, work_dir)
        with api, ceiling, httpx.Client(base_url=api.url, timeout=10) as api_client, \
                httpx.Client(base_url=ceiling.url, timeout=10) as ceiling_client:
            yield url, api_client, ceiling_client
    finally:
        database.stop_embedded(work_dir / "postgres")
        shutil.rmtree(work_dir, ignore_errors=True)


def test_an_account_read_is_the_apis_body(stack) -> None:
    _, api, ceiling = stack
    for account_id in (1, 7, ACCOUNTS):
        ours, theirs = api.get(f"/accounts/{account_id}"), ceiling.get(f"/accounts/{account_id}")
        assert ours.status_code == theirs.status_code == 200
        assert theirs.content == ours.content
        assert theirs.headers["content-type"] == ours.headers["content-type"]
    assert ceiling.get(f"/accounts/{ACCOUNTS + 1}").status_code == 404


def test_a_credit_writes_what_the_api_reads_back(stack) -> None:
    url, api, ceiling = stack
    before = api.get("/accounts/3").json()["balance"]
    answer = ceiling.post("/accounts/3/transactions", json={"direction": "credit", "amount": 250})
    assert answer.status_code == 201, answer.text
    entry = answer.json()
    assert entry["balance_after"] == before + 250
    # The API's own answer for that ledger entry, byte for byte, and the new balance.
    assert api.get(f"/transactions/{entry['id']}").content == answer.content
    assert api.get("/accounts/3").json()["balance"] == before + 250
    assert ceiling.get("/accounts/3").content == api.get("/accounts/3").content

    # A credit through the API answers the same shape.
    ours = api.post("/accounts/3/transactions", json={"direction": "credit", "amount": 1})
    assert list(ours.json()) == list(entry)
    assert check_database(url).verdict()["verdict"] == "pass"


def test_a_transfer_writes_what_the_api_reads_back(stack) -> None:
    url, api, ceiling = stack
    source, destination = (api.get(f"/accounts/{i}").json()["balance"] for i in (4, 5))
    answer = ceiling.post("/transfers", json={"source_account_id": 5,
                                              "destination_account_id": 4, "amount": 999})
    assert answer.status_code == 201, answer.text
    transfer = answer.json()
    assert [e["direction"] for e in transfer["entries"]] == ["debit", "credit"]
    assert api.get(f"/transfers/{transfer['id']}").content == answer.content
    assert api.get("/accounts/4").json()["balance"] == source + 999
    assert api.get("/accounts/5").json()["balance"] == destination - 999

    ours = api.post("/transfers", json={"source_account_id": 4, "destination_account_id": 5,
                                        "amount": 1})
    assert list(ours.json()) == list(transfer)
    assert check_database(url).verdict()["verdict"] == "pass"


def test_a_debit_beyond_the_balance_moves_nothing(stack) -> None:
    url, api, ceiling = stack
    before = api.get("/accounts/6").content
    balance = api.get("/accounts/6").json()["balance"]
    answer = ceiling.post("/accounts/6/transactions",
                          json={"direction": "debit", "amount": balance + 1})
    assert answer.status_code == 409
    assert api.get("/accounts/6").content == before
    assert check_database(url).verdict()["verdict"] == "pass"
