"""The money invariants checked through the public API, after a load run without database
access: did the books survive the load?

    every account's balance equals the sum of its ledger entries (credits minus debits);
    the newest entry's balance_after is the balance; no balance is negative;
    every transfer wrote exactly one debit and one credit of its amount;
    the sum of all balances equals external credits minus external debits (transfers only
    move money, they never create or destroy it).

With a database URL the load runner checks in SQL instead, with the API's own books check
(bank_api.audit: exact, any size, more rules). Through the API it is one request per ledger
page, so bounded (API_ACCOUNT_LIMIT accounts). Both report the same findings (bank_api.audit's
codes) in the same verdict dictionary, Books.verdict() (invariants.json, read by the report).
Run it when no load is running, or movements in between will show up as differences.
"""

from collections import defaultdict
from datetime import UTC, datetime

import httpx

from bank_api.audit import CHECKS, SHOWN, Books, Finding, totals_findings

API_ACCOUNT_LIMIT = 5_000


def not_checked(method: str, reason: str, **facts) -> dict:
    """The verdict of a check that could not run (too many accounts, or it crashed)."""
    return {"verdict": "not_checked", "method": method, "reason": reason,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"), "problems": [],
            **facts}


def _pages(client: httpx.Client, path: str):
    """Every item of a paginated list, following next_cursor."""
    params: dict = {"limit": 100}
    while True:
        response = client.get(path, params=params)
        if response.status_code == 422 and "limit" in params:  # a server with a smaller cap
            del params["limit"]
            continue
        response.raise_for_status()
        page = response.json()
        yield from page["items"]
        if not page["next_cursor"]:
            return
        params["cursor"] = page["next_cursor"]


def _read_account(client: httpx.Client, account_id: int) -> tuple[int, list[dict]]:
    """The balance and the ledger, read so that both describe the same moment.

    The balance is read before and after the ledger; if it moved, read again.
    """
    for _ in range(3):
        before = client.get(f"/accounts/{account_id}").raise_for_status().json()["balance"]
        entries = list(_pages(client, f"/accounts/{account_id}/transactions"))
        after = client.get(f"/accounts/{account_id}").raise_for_status().json()["balance"]
        if before == after:
            return after, entries
    raise RuntimeError(f"account {account_id} keeps moving: is load still running?")


def check_api(host: str, limit: int = API_ACCOUNT_LIMIT) -> dict:
    """The books' verdict, read account by account through the API; not_checked when there
    are more than `limit` accounts."""
    with httpx.Client(base_url=host, timeout=30) as client:
        accounts = _account_ids(client, limit)
        if accounts is None:
            return not_checked(
                "api", f"more than {limit} accounts: too many to check one by one through "
                "the API; give --database-url to check in SQL", accounts=f">{limit}")
        books = _read_books(client, accounts)
    return books.verdict(method="api")


def _account_ids(client: httpx.Client, limit: int) -> list[int] | None:
    """Every account's id; None as soon as there are more than `limit` (no need to page on)."""
    accounts = []
    for account in _pages(client, "/accounts"):
        accounts.append(account["id"])
        if len(accounts) > limit:
            return None
    return accounts


def _read_books(client: httpx.Client, accounts: list[int]) -> Books:
    """Read every account's balance and ledger, and note what breaks the invariants."""
    offending: dict[str, list[int]] = defaultdict(list)  # finding code -> ids
    # transfer id -> its legs (direction, amount, account id), from both accounts' ledgers
    transfer_legs: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    total = external = entry_count = 0
    for account_id in accounts:
        balance, entries = _read_account(client, account_id)
        entry_count += len(entries)
        total += balance
        external += sum(_signed(e) for e in entries if e["transfer_id"] is None)
        for code in _account_findings(balance, entries):
            offending[code].append(account_id)
        for e in entries:
            if e["transfer_id"] is not None:
                transfer_legs[e["transfer_id"]].append(
                    (e["direction"], e["amount"], e["account_id"]))
    for transfer_id in _unbalanced_transfers(transfer_legs):
        offending["unbalanced_transfer"].append(transfer_id)
    findings = [Finding(code, CHECKS[code][0], len(ids), tuple(ids[:SHOWN]))
                for code, ids in offending.items()]
    return Books(len(accounts), entry_count, len(transfer_legs), total, external,
                 findings + totals_findings(total, external))


def _signed(entry: dict) -> int:
    """The entry's effect on its balance: credits add, debits subtract."""
    return entry["amount"] if entry["direction"] == "credit" else -entry["amount"]


def _account_findings(balance: int, entries: list[dict]) -> list[str]:
    """The codes of the invariants one account breaks (entries newest first)."""
    codes = []
    if balance != sum(_signed(e) for e in entries):
        codes.append("balance_vs_ledger")
    if balance < 0:
        codes.append("negative_balance")
    if entries and entries[0]["balance_after"] != balance:  # newest first
        codes.append("latest_balance_after")
    return codes


def _unbalanced_transfers(transfer_legs: dict[int, list[tuple[str, int, int]]]) -> list[int]:
    """The transfers that did not write exactly one debit and one credit of one amount."""
    unbalanced = []
    for transfer_id, legs in sorted(transfer_legs.items()):
        directions = sorted(direction for direction, _, _ in legs)
        if directions != ["credit", "debit"] or legs[0][1] != legs[1][1]:
            unbalanced.append(transfer_id)
    return unbalanced
