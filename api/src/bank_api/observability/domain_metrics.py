"""Business metrics under the `bank_` prefix. Labels are small fixed sets: never an account
id or an amount (docs/metrics.md lists every series).

Counted in one place: from the request's record (observability/request_record.py), when the
request layer finishes it, so a counter and the request's log line always tell the same story.
"""

from prometheus_client import Counter, Histogram

from bank_api.observability import request_record
from bank_api.observability.request_record import RequestRecord

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


def count(record: RequestRecord) -> None:
    """The record's outcome, if it has one, in the counters."""
    outcome = record.outcome
    if outcome is None:
        return
    if outcome == request_record.OPENED:
        ACCOUNTS_OPENED.labels(record.currency).inc()
    elif outcome == request_record.CLOSED:
        ACCOUNTS_CLOSED.inc()
    elif outcome == request_record.MOVED:
        OPERATIONS.labels(record.operation, "ok").inc()
        MONEY_MOVED.labels(record.operation, record.currency).inc(record.amount)
        AMOUNTS.labels(record.operation).observe(record.amount)
    elif outcome == request_record.REPLAYED:
        OPERATIONS.labels(record.operation, "replayed").inc()
    else:  # refused or failed: the counter's outcome is the code
        OPERATIONS.labels(record.operation, record.code).inc()
