"""One simulated bank customer: opens an account, then reads and moves money like a person would.

Reads dominate (balance and statement), deposits come more often than withdrawals, and a few
actions are transfers to other customers. Requests are named by the API's route templates
(`/accounts/{account_id}`), so Locust's `name` matches the API's `handler` label and the two
views of the same traffic can be put side by side.

Judging answers: a refusal the bank is allowed to give (409 `insufficient_funds`) is a success
from the client's point of view; anything else unexpected (a 5xx, another 4xx, a body that is
not what the API documents) is a failure with the reason attached. The reason is stable
(`unexpected status 500 (fault_injected)`), so Locust's failure table keeps one row per name
and reason however many requests fail.

Every request carries a fresh `X-Request-ID` (uuid4, 32 hex digits), which the API echoes and
logs; request_ids.py keeps the ids of the slowest and of the failed requests.
"""

import functools
import os
import random
import uuid

from locust import FastHttpUser, between, task

REQUEST_ID_HEADER = "X-Request-ID"  # request_ids.py keeps the slowest and failed ones

# Known accounts of this Locust process, by currency: the people a customer can pay.
# Bounded so a long run does not grow it without limit.
KNOWN_ACCOUNTS: dict[str, list[int]] = {}
KNOWN_ACCOUNTS_MAX = 10_000

CURRENCIES = ["EUR"] * 8 + ["USD", "GBP"]
FIRST_NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Niklaus"]
LAST_NAMES = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Wirth"]
STREETS = ["Main Street", "Station Road", "Rue de la Paix", "Hauptstrasse", "Via Roma"]

# A connection error leaves us not knowing whether the server moved the money; resending with
# the same Idempotency-Key and body is safe, the server answers the first result again.
MONEY_POST_ATTEMPTS = 4
MONEY_POST_OK = {200, 201}  # 200: a replay of an earlier attempt that did reach the server


def think_time_bounds() -> tuple[float, float]:
    """Seconds a customer waits between actions, from LOAD_THINK_TIME ("0.5-2" or "0")."""
    low, _, high = os.environ.get("LOAD_THINK_TIME", "0.5-2").partition("-")
    return float(low), float(high or low)


def remember_account(currency: str, account_id: int) -> None:
    accounts = KNOWN_ACCOUNTS.setdefault(currency, [])
    if len(accounts) < KNOWN_ACCOUNTS_MAX:
        accounts.append(account_id)
    else:
        accounts[random.randrange(KNOWN_ACCOUNTS_MAX)] = account_id


def problem_code(response) -> str | None:
    try:
        return response.json().get("code")
    except Exception:
        return None


def unexpected(response) -> str:
    """Why an answer is a failure, for Locust's error report (grouped by this text)."""
    if response.status_code == 0:
        return f"connection error: {type(response.error).__name__}"
    return f"unexpected status {response.status_code} ({problem_code(response) or 'no code'})"


def json_body(response, *required: str) -> dict | None:
    """The response's JSON object if it has every required field, else None."""
    try:
        body = response.json()
    except Exception:
        return None
    if not isinstance(body, dict) or any(field not in body for field in required):
        return None
    return body


def needs_account(action):
    """Run the task once the customer has an account; until then, try to open one."""

    @functools.wraps(action)
    def wrapper(self):
        if self.account_id is None:
            self.open_account()
        else:
            action(self)

    return wrapper


class BankCustomer(FastHttpUser):
    wait_time = between(*think_time_bounds())

    def on_start(self) -> None:
        self.account_id: int | None = None
        self.currency = random.choice(CURRENCIES)
        self.transaction_ids: list[int] = []
        self.transfer_ids: list[int] = []
        self.open_account()

    # Tasks. The weights are the traffic mix: about 70 % reads.

    @task(10)
    @needs_account
    def check_balance(self) -> None:
        with self.request("GET", f"/accounts/{self.account_id}",
                          "/accounts/{account_id}") as response:
            body = json_body(response, "balance") if response.status_code == 200 else None
            if response.status_code != 200:
                response.failure(unexpected(response))
            elif body is None or not isinstance(body["balance"], int):
                response.failure("malformed account body")
            elif body["balance"] < 0:
                response.failure(f"negative balance {body['balance']}")
            else:
                response.success()

    @task(6)
    @needs_account
    def read_history(self) -> None:
        with self.request("GET", f"/accounts/{self.account_id}/transactions",
                          "/accounts/{account_id}/transactions") as response:
            body = json_body(response, "items", "next_cursor")
            if response.status_code != 200:
                response.failure(unexpected(response))
            elif body is None or not isinstance(body["items"], list):
                response.failure("malformed ledger page")
            else:
                response.success()

    @task(3)
    @needs_account
    def deposit(self) -> None:
        self.move_money("credit", random.randint(1_000, 50_000))

    @task(2)
    @needs_account
    def withdraw(self) -> None:
        # Sometimes more than the balance: the bank refuses, which is a normal answer.
        self.move_money("debit", random.randint(500, 40_000))

    @task(2)
    @needs_account
    def transfer(self) -> None:
        others = [a for a in KNOWN_ACCOUNTS.get(self.currency, []) if a != self.account_id]
        if not others:
            return  # nobody to pay yet in this currency
        body = {"source_account_id": self.account_id,
                "destination_account_id": random.choice(others),
                "amount": random.randint(100, 30_000)}
        result = self.money_post("/transfers", "/transfers", body, ("id", "entries"))
        if result is not None:
            self.transfer_ids = [result["id"], *self.transfer_ids[:9]]

    @task(1)
    @needs_account
    def read_receipt(self) -> None:
        """Open one earlier movement: a transfer if there is one, else a ledger entry."""
        if self.transfer_ids and random.random() < 0.5:
            path = f"/transfers/{random.choice(self.transfer_ids)}"
            name = "/transfers/{transfer_id}"
        elif self.transaction_ids:
            path = f"/transactions/{random.choice(self.transaction_ids)}"
            name = "/transactions/{transaction_id}"
        else:
            return
        with self.request("GET", path, name) as response:
            if response.status_code != 200:
                response.failure(unexpected(response))
            elif json_body(response, "id", "amount") is None:
                response.failure("malformed body")
            else:
                response.success()

    # Building blocks.

    def request(self, method: str, path: str, name: str, headers: dict | None = None, **kwargs):
        """Send one request with a fresh X-Request-ID (a resend too: it is another request),
        named by its route template; judged by the caller (catch_response).

        The id also goes into the request event's context, where request_ids.py finds it.
        """
        request_id = uuid.uuid4().hex
        return self.client.request(method, path, name=name, catch_response=True,
                                   headers={**(headers or {}), REQUEST_ID_HEADER: request_id},
                                   context={"request_id": request_id}, **kwargs)

    def open_account(self) -> None:
        body = {"first_name": random.choice(FIRST_NAMES), "last_name": random.choice(LAST_NAMES),
                "address": f"{random.randint(1, 300)} {random.choice(STREETS)}",
                "currency": self.currency}
        with self.request("POST", "/accounts", "/accounts", json=body) as response:
            account = json_body(response, "id", "balance")
            if response.status_code != 201:
                response.failure(unexpected(response))
            elif account is None or account["balance"] != 0:
                response.failure("malformed new account")
            else:
                response.success()
                self.account_id = account["id"]
                remember_account(self.currency, self.account_id)
        if self.account_id is not None:
            self.move_money("credit", random.randint(20_000, 200_000))  # the first salary

    def move_money(self, direction: str, amount: int) -> None:
        entry = self.money_post(f"/accounts/{self.account_id}/transactions",
                                "/accounts/{account_id}/transactions",
                                {"direction": direction, "amount": amount},
                                ("id", "balance_after"))
        if entry is not None:
            self.transaction_ids = [entry["id"], *self.transaction_ids[:9]]

    def money_post(self, path: str, name: str, body: dict, fields: tuple[str, ...]) -> dict | None:
        """POST a movement with an Idempotency-Key; resend the same request on connection errors.

        Returns the created resource, or None when it was refused or failed.
        """
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        for _attempt in range(MONEY_POST_ATTEMPTS):
            with self.request("POST", path, name, json=body, headers=headers) as response:
                status = response.status_code
                if status == 0:
                    response.failure(unexpected(response))
                    continue
                if status in MONEY_POST_OK:
                    created = json_body(response, *fields)
                    if created is None:
                        response.failure("malformed movement body")
                    elif created.get("balance_after", 0) < 0:
                        response.failure("negative balance_after")
                    else:
                        response.success()
                    return created
                if status == 409 and problem_code(response) == "insufficient_funds":
                    response.success()
                else:
                    response.failure(unexpected(response))
                return None
        return None
