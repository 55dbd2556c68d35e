"""Many clients moving money on a few hot accounts at once, against a real uvicorn server.

Afterwards the books must balance exactly (bank_api.audit): every balance equals its ledger
sum, nothing is negative, every transfer has its two legs, and the money held equals the
credits minus the debits the clients were told succeeded; no request failed with a 5xx.
"""

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from helpers import check_invariants, credit, open_account

THREADS = 16
OPERATIONS_PER_THREAD = 60
HOT_ACCOUNTS = 4


def test_random_movements_keep_the_books_right(live_server, db):
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        ids = [open_account(http)["id"] for _ in range(HOT_ACCOUNTS)]
        for account_id in ids:
            credit(http, account_id, 5_000)

    def worker(seed: int) -> tuple[Counter, int]:
        """Random movements: how each was answered, and the net of the acknowledged credits
        and debits (what this client was told moved in or out of the bank)."""
        rng = random.Random(seed)
        outcomes: Counter = Counter()
        net = 0
        with httpx.Client(base_url=live_server.url, timeout=60) as http:
            for _ in range(OPERATIONS_PER_THREAD):
                kind = rng.choice(["transfer", "transfer", "credit", "debit"])
                amount = rng.randint(1, 3_000)
                if kind == "transfer":
                    source, destination = rng.sample(ids, 2)
                    response = http.post("/transfers", json={
                        "source_account_id": source, "destination_account_id": destination,
                        "amount": amount})
                else:
                    response = http.post(f"/accounts/{rng.choice(ids)}/transactions",
                                         json={"direction": kind, "amount": amount})
                code = response.json().get("code", "ok") if response.status_code != 201 else "ok"
                outcomes[(kind, response.status_code, code)] += 1
                if response.status_code == 201 and kind != "transfer":
                    net += amount if kind == "credit" else -amount
        return outcomes, net

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    totals = sum((outcomes for outcomes, _ in results), Counter())
    net = sum(net for _, net in results)

    statuses = {status for (_, status, _) in totals}
    assert statuses <= {201, 409}, f"unexpected answers: {totals}"
    refusals = {code for (_, status, code) in totals if status == 409}
    assert refusals <= {"insufficient_funds"}, totals
    assert sum(n for (_, status, _), n in totals.items() if status == 201) > THREADS * 10
    books = check_invariants(db, expected_external_net=HOT_ACCOUNTS * 5_000 + net)
    assert books.total_balance == HOT_ACCOUNTS * 5_000 + net
    print(f"concurrency: {THREADS} threads x {OPERATIONS_PER_THREAD} operations on "
          f"{HOT_ACCOUNTS} accounts: {dict(totals)}")
