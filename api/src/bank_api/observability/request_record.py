"""One record per request: everything known about it, told once, when it ends.

The request layer (api/request_layer.py) opens the record when a request comes in (its id,
route, method, client, start time) and keeps it as the current request (`CURRENT`) while the
request is served. What happens on the way is written into it by whoever knows:
- the service layer, with one call per outcome (`moved`, `refused`, `replayed`, `failed`,
  `opened`, `closed`): the operation, the accounts, the amount, the currency, the refusal;
- api/problems.py, with the `code` of the problem the answer carries, if it is one;
- the layer itself: the status and the bytes.
When the request ends the layer emits the record once (the "canonical log line" practice: one
wide line per request, with everything known about it, instead of a trail of small lines):
the request's log line (`log_line`), its server span's attributes and event
(`span_attributes`, `span_event`) and the domain counters (observability/domain_metrics.py).

The record works from any thread: a worker thread runs with a copy of the request's context,
and the copy holds the same record.
"""

import logging
import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass

# A client's own id is kept when it is short and plain; anything else is cut down to what is.
MAX_REQUEST_ID = 128
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._:@/+=-]")

# The outcome of a request that reached the bank, as the line and the counters name it.
MOVED, REPLAYED, REFUSED, FAILED = "moved", "replayed", "refused", "failed"
OPENED, CLOSED = "opened", "closed"
# The fields of the log line beyond those every line has (observability/logs.py: level,
# logger, message, timestamp, request_id, route, trace_id, span_id). The first ones are always
# there; the outcome's only when the request had one (docs/logs.md lists them all).
LINE_FIELDS = ("event", "method", "status", "duration_ms", "client", "request_bytes",
               "response_bytes")
OUTCOME_FIELDS = ("code", "operation", "outcome", "account_id", "destination_account_id",
                  "amount", "currency")

log = logging.getLogger("bank_api.request")


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    route: str | None  # the route template, None when no route matches
    method: str
    client: str | None
    started: float = 0.0  # time.perf_counter() when the request came in
    status: int = 500  # until the answer starts: a request that never answers failed
    request_bytes: int = 0
    response_bytes: int = 0
    code: str | None = None  # the problem's code, when the answer is a problem
    operation: str | None = None  # credit, debit, transfer, open_account, close_account
    outcome: str | None = None  # MOVED, REPLAYED, REFUSED, FAILED, OPENED, CLOSED
    account_id: int | None = None  # the account charged or opened (a transfer's source)
    destination_account_id: int | None = None
    amount: int | None = None  # minor units
    currency: str | None = None
    outcome_at: int = 0  # time.time_ns() of the outcome, for its span event
    # Other libraries' log lines written for it so far (observability/log_limits.py caps them).
    third_party_lines: int = 0

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def log_line(self, seconds: float) -> None:
        """The request's one line: what the HTTP metrics see, and the outcome's fields."""
        fields = {"event": "request", "method": self.method, "status": self.status,
                  "duration_ms": round(seconds * 1000, 2), "client": self.client,
                  "request_bytes": self.request_bytes, "response_bytes": self.response_bytes}
        for name in OUTCOME_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        log.info("%s %s %d%s in %.1f ms", self.method, self.route or "none", self.status,
                 self._summary(), seconds * 1000, extra=fields)

    def _summary(self) -> str:
        """The outcome in words, for a reader of the console format."""
        if self.outcome is None:
            return f" {self.code}" if self.code else ""
        if self.code and self.outcome in (REFUSED, FAILED):
            return f": {self.operation} {self.outcome} {self.code}"
        if self.outcome == MOVED:
            return f": {self.operation} {self.outcome} {self.amount} {self.currency}"
        return f": {self.operation} {self.outcome}"

    def span_attributes(self) -> dict[str, str | int]:
        """The outcome as the server span's attributes (`bank.*`): the same facts as the
        line's fields."""
        attributes = {}
        for name, key in _SPAN_KEYS:
            value = getattr(self, name)
            if value is not None:
                attributes[key] = value
        return attributes

    def span_event(self) -> tuple[str, dict[str, str], int] | None:
        """A refusal or a replay as an event on the server span: (name, attributes, time)."""
        if self.outcome == REFUSED:
            return "refused", {"bank.refusal.code": self.code or ""}, self.outcome_at
        if self.outcome == REPLAYED:
            return "idempotent replay", {}, self.outcome_at
        return None


_SPAN_KEYS = (("operation", "bank.operation"), ("outcome", "bank.outcome"),
              ("account_id", "bank.account.id"),
              ("destination_account_id", "bank.destination_account.id"),
              ("amount", "bank.amount"), ("currency", "bank.currency"),
              ("code", "bank.problem.code"))

CURRENT: ContextVar[RequestRecord | None] = ContextVar("bank_api_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID, sanitised and bounded, or a new id when it gives none (or
    nothing usable). Sanitised rather than refused: a request is never failed over its id."""
    if header:
        cleaned = _NOT_ALLOWED.sub("", header)[:MAX_REQUEST_ID]
        if cleaned:
            return cleaned
    return os.urandom(16).hex()  # 32 hex digits, like a uuid4's, without building a UUID


def current_request_id() -> str | None:
    record = CURRENT.get()
    return record.request_id if record is not None else None


# --- the outcomes, one call each; outside a request (a script, a test) they do nothing


def moved(operation: str, account_id: int, amount: int, currency: str,
          destination_account_id: int | None = None) -> None:
    _outcome(operation, MOVED, account_id=account_id, amount=amount, currency=currency,
             destination_account_id=destination_account_id)


def refused(operation: str, account_id: int, amount: int, code: str) -> None:
    """The bank said no (insufficient funds, a closed account...): nothing moved."""
    _outcome(operation, REFUSED, account_id=account_id, amount=amount, code=code)


def replayed(operation: str, account_id: int) -> None:
    """A retry with a used Idempotency-Key got the first answer again; nothing moved."""
    _outcome(operation, REPLAYED, account_id=account_id)


def failed(operation: str, account_id: int, code: str) -> None:
    """The movement could not be made as asked (an unknown account, a key reused for another
    request): not a refusal of the bank's rules, nothing moved."""
    _outcome(operation, FAILED, account_id=account_id, code=code)


def opened(account_id: int, currency: str) -> None:
    _outcome("open_account", OPENED, account_id=account_id, currency=currency)


def closed(account_id: int) -> None:
    _outcome("close_account", CLOSED, account_id=account_id)


def problem(code: str) -> None:
    """The answer is a problem with this code (api/problems.py)."""
    record = CURRENT.get()
    if record is not None:
        record.code = code


def _outcome(operation: str, outcome: str, **fields) -> None:
    record = CURRENT.get()
    if record is None:
        return
    record.operation, record.outcome, record.outcome_at = operation, outcome, time.time_ns()
    for name, value in fields.items():
        setattr(record, name, value)
