"""Business metrics under the `bank_` prefix. Labels are small fixed sets: never an account
id or an amount (docs/metrics.md lists every series)."""

from prometheus_client import Counter, Histogram

OPERATIONS = Counter(
    "bank_operations",
    "Money-moving requests that reached the ledger, by operation and outcome",
    ["operation", "outcome"],
)
MONEY_MOVED = Counter(
    "bank_money_moved_minor_units",
    "Sum of successfully moved amounts, in minor units (cents)",
    ["operation", "currency"],
)
AMOUNTS = Histogram(
    "bank_operation_amount_minor_units",
    "Size of successful movements, in minor units (cents)",
    ["operation"],
    buckets=(100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000),
)
ACCOUNTS_OPENED = Counter("bank_accounts_opened", "Accounts opened", ["currency"])
ACCOUNTS_CLOSED = Counter("bank_accounts_closed", "Accounts closed")


def count_operation(operation: str, outcome: str) -> None:
    OPERATIONS.labels(operation, outcome).inc()


def count_movement(operation: str, currency: str, amount: int) -> None:
    OPERATIONS.labels(operation, "ok").inc()
    MONEY_MOVED.labels(operation, currency).inc(amount)
    AMOUNTS.labels(operation).observe(amount)
