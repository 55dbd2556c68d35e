"""Many clients moving money on a few hot accounts at once, against a real uvicorn server.

Afterwards the books must balance exactly: every balance equals its ledger sum, the total
equals credits minus debits, nothing is negative, and no request failed with a 5xx.
"""

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from helpers import check_invariants, open_account

THREADS = 16
OPERATIONS_PER_THREAD = 60
HOT_ACCOUNTS = 4


def test_random_movements_keep_the_books_right(live_server, db):
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        ids = [open_account(http)["id"] for _ in range(HOT_ACCOUNTS)]
        for account_id in ids:
            http.post(f"/accounts/{account_id}/transactions",
                      json={"direction": "credit", "amount": 5_000})

    def worker(seed: int) -> Counter:
        rng = random.Random(seed)
        outcomes: Counter = Counter()
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
        return outcomes

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        totals = sum(pool.map(worker, range(THREADS)), Counter())

    statuses = {status for (_, status, _) in totals}
    assert statuses <= {201, 409}, f"unexpected answers: {totals}"
    refusals = {code for (_, status, code) in totals if status == 409}
    assert refusals <= {"insufficient_funds"}, totals
    assert sum(n for (_, status, _), n in totals.items() if status == 201) > THREADS * 10
    books = check_invariants(db)
    assert books["total_balance"] >= 0
    print(f"concurrency: {THREADS} threads x {OPERATIONS_PER_THREAD} operations on "
          f"{HOT_ACCOUNTS} accounts: {dict(totals)}")
