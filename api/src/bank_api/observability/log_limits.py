"""Bounds on what the API writes to its log, whatever a client sends.

Client input reaches code that logs: OpenTelemetry's W3C parsers warn once per malformed
`tracestate` or `baggage` entry, quoting it; uvicorn warns about each malformed request. Left
alone, one 8 KB header made 182 lines, and a flood of such requests grew the log queue by
hundreds of megabytes. The API's own lines are few per request and of bounded size by
construction (the request's line, its outcome, an unexpected error); lines from other
libraries' loggers pass these limits before they are queued (logs.py):

- while a request is served, at most THIRD_PARTY_PER_REQUEST of them count for it, the rest
  are dropped;
- each logger draws from a token bucket of its own: THIRD_PARTY_BURST at once,
  THIRD_PARTY_PER_SECOND after that, so a flood of requests makes no flood of lines;
- a message is cut to MAX_MESSAGE_CHARS.

So a request writes at most LINES_PER_REQUEST lines, whatever its headers. The queue itself is
bounded too (logs.py): when the writer cannot keep up, records are dropped rather than held.

Every drop is counted by reason in `bank_log_records_dropped_total`, and a line with the event
`log_records_dropped` says how many were dropped, at most once every REPORT_EVERY seconds
while drops go on, and once more at exit.
"""

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import Counter

from bank_api.observability.request_record import CURRENT

THIRD_PARTY_PER_REQUEST = 10
# The API's own lines for one request: its line, at most a few outcome events, an error.
LINES_PER_REQUEST = THIRD_PARTY_PER_REQUEST + 6
THIRD_PARTY_BURST = 20
THIRD_PARTY_PER_SECOND = 5.0
MAX_MESSAGE_CHARS = 1_000
REPORT_EVERY = 10.0  # seconds
OWN_LOGGERS = "bank_api"

DROPPED = Counter(
    "bank_log_records_dropped",
    "Log records not written, by reason: request_cap (another library wrote more lines for "
    "one request than it may), rate_limit (another library logged faster than it may), "
    "queue_full (the writer could not keep up)",
    ["reason"],
)


class Drops:
    """Records dropped since the last report, by reason; the report is due at most every
    REPORT_EVERY seconds. One per process, shared by the filter and the handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._reported_at = time.monotonic()

    def add(self, reason: str) -> None:
        DROPPED.labels(reason).inc()
        with self._lock:
            self._pending[reason] = self._pending.get(reason, 0) + 1

    def report(self, deliver: Callable[[logging.LogRecord], bool], *,
               force: bool = False) -> None:
        """Hand `deliver` the `log_records_dropped` line when drops are pending and one is due
        (or forced, at exit). Once it is delivered, its counts are no longer pending; if it
        could not be, a later line says them."""
        if not self._pending:  # the usual case, asked for every line: no lock
            return
        now = time.monotonic()
        with self._lock:
            if not self._pending or (not force and now - self._reported_at < REPORT_EVERY):
                return
            counts = dict(self._pending)
        total = sum(counts.values())
        record = logging.getLogger("bank_api.logs").makeRecord(
            "bank_api.logs", logging.WARNING, __file__, 0,
            "%d log records dropped: %s", (total, ", ".join(
                f"{count} {reason}" for reason, count in sorted(counts.items()))),
            None, extra={"event": "log_records_dropped", "dropped": total} | {
                f"dropped_{reason}": count for reason, count in counts.items()})
        if deliver(record):
            with self._lock:  # drops counted meanwhile stay pending
                for reason, count in counts.items():
                    self._pending[reason] -= count
                    if not self._pending[reason]:
                        del self._pending[reason]
                self._reported_at = now


DROPS = Drops()


class _Bucket:
    __slots__ = ("tokens", "refilled_at")

    def __init__(self) -> None:
        self.tokens = float(THIRD_PARTY_BURST)
        self.refilled_at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(THIRD_PARTY_BURST,
                          self.tokens + (now - self.refilled_at) * THIRD_PARTY_PER_SECOND)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class LogLimits(logging.Filter):
    """The limits on other libraries' records, before they are queued (a handler filter: it
    runs in the thread that logs, inside the request's context)."""

    def __init__(self) -> None:
        super().__init__()
        self._buckets: dict[str, _Bucket] = {}  # logger names: a fixed set, not client input

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(OWN_LOGGERS):
            return True
        request = CURRENT.get()
        if request is not None:
            request.third_party_lines += 1
            if request.third_party_lines > THIRD_PARTY_PER_REQUEST:
                DROPS.add("request_cap")
                return False
        bucket = self._buckets.get(record.name)
        if bucket is None:
            bucket = self._buckets[record.name] = _Bucket()
        if not bucket.take():
            DROPS.add("rate_limit")
            return False
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            record.msg = f"{message[:MAX_MESSAGE_CHARS]}... ({len(message)} characters, cut)"
            record.args = None
        return True
