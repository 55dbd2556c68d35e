"""Idempotency-Key: a retry replays the first answer and moves nothing."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from helpers import assert_problem, check_invariants, credit, open_account


def ledger_rows(db) -> int:
    with db.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar()


def test_retry_with_same_key_replays_and_moves_once(client, db):
    account = open_account(client)
    url, key = f"/accounts/{account['id']}/transactions", str(uuid.uuid4())
    first = client.post(url, json={"direction": "credit", "amount": 250},
                        headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    # Same body, written differently: still the same request.
    retry = client.post(url, content=b'{"amount":250,  "direction":"credit"}',
                        headers={"Idempotency-Key": key, "content-type": "application/json"})
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == first.headers["location"]
    assert retry.content == first.content  # the first answer again, byte for byte
    assert ledger_rows(db) == 1
    assert client.get(f"/accounts/{account['id']}").json()["balance"] == 250


def test_same_key_with_different_body_is_refused(client, db):
    account = open_account(client)
    url, key = f"/accounts/{account['id']}/transactions", "key-1"
    credit(client, account["id"], 250, **{"Idempotency-Key": key})
    assert_problem(client.post(url, json={"direction": "credit", "amount": 251},
                               headers={"Idempotency-Key": key}), 409, "idempotency_conflict")
    # The same key on another endpoint is another request too.
    other = open_account(client)
    assert_problem(client.post("/transfers", json={"source_account_id": account["id"],
                                                   "destination_account_id": other["id"],
                                                   "amount": 1},
                               headers={"Idempotency-Key": key}), 409, "idempotency_conflict")
    assert ledger_rows(db) == 1


def test_transfer_replay(client, db):
    a, b = open_account(client), open_account(client)
    credit(client, a["id"], 100)
    body = {"source_account_id": a["id"], "destination_account_id": b["id"], "amount": 60}
    first = client.post("/transfers", json=body, headers={"Idempotency-Key": "t-1"})
    retry = client.post("/transfers", json=body, headers={"Idempotency-Key": "t-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.headers["location"] == first.headers["location"]
    assert retry.content == first.content
    assert client.get(f"/accounts/{a['id']}").json()["balance"] == 40
    check_invariants(db)


def test_refused_request_does_not_store_the_key(client, db):
    """A refusal moves nothing, so the key stays free: after a deposit the retry can succeed."""
    a = open_account(client)
    url = f"/accounts/{a['id']}/transactions"
    body = {"direction": "debit", "amount": 50}
    assert_problem(client.post(url, json=body, headers={"Idempotency-Key": "d-1"}), 409,
                   "insufficient_funds")
    credit(client, a["id"], 50)
    assert client.post(url, json=body, headers={"Idempotency-Key": "d-1"}).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode"])
def test_invalid_keys_are_refused(client, key):
    a = open_account(client)
    response = client.post(f"/accounts/{a['id']}/transactions",
                           json={"direction": "credit", "amount": 1},
                           headers={"Idempotency-Key": key.encode()})
    assert_problem(response, 422, "validation_error")


def test_expired_key_runs_again(client, db):
    a = open_account(client)
    credit(client, a["id"], 10, **{"Idempotency-Key": "old"})
    with db.begin() as connection:
        connection.execute(text(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"))
    credit(client, a["id"], 10, **{"Idempotency-Key": "old"})
    assert ledger_rows(db) == 2


def test_same_key_sent_concurrently_moves_money_once(live_server, db):
    """40 identical requests at once, on a real server: exactly one movement."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        account = open_account(http)
        key = str(uuid.uuid4())

        def send(_):
            return http.post(f"/accounts/{account['id']}/transactions",
                             json={"direction": "credit", "amount": 700},
                             headers={"Idempotency-Key": key})

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(send, range(40)))
        assert {r.status_code for r in responses} == {201}
        assert len({r.content for r in responses}) == 1
        assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
        assert http.get(f"/accounts/{account['id']}").json()["balance"] == 700
    assert ledger_rows(db) == 1


def test_retry_after_a_connection_reset_posts_once(live_server, db):
    """The client sends a credit and the connection drops before any answer; it retries with
    the same key. Whether the first attempt landed or not, the money moves exactly once."""
    import json
    import socket
    from urllib.parse import urlsplit

    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        account = open_account(http)
        path = f"/accounts/{account['id']}/transactions"
        body = json.dumps({"direction": "credit", "amount": 900}).encode()
        host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
        for _ in range(5):
            key = str(uuid.uuid4())
            raw = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            with socket.create_connection((host, port)) as connection:
                connection.sendall(raw + body)
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
            retry = http.post(path, content=body, headers={"Idempotency-Key": key,
                                                           "content-type": "application/json"})
            assert retry.status_code == 201
        assert http.get(f"/accounts/{account['id']}").json()["balance"] == 5 * 900
    assert ledger_rows(db) == 5
