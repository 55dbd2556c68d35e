"""Database metrics: the pool's gauges and checkout wait, each statement's duration, errors.

- The pool gauges are read from the pool's own counts when /metrics is scraped, in a single
  process; with several workers (multiprocess mode: each worker writes its own values to its
  files) they are set at every checkout, checkin, connect and close, and they are `livesum`,
  so the scrape shows the sum over live workers.
- Statement durations are timed by the psycopg2 cursor itself
  (observability/sql_statements.py), into `query_timer`'s histogram.
- Errors come from SQLAlchemy's handle_error event, which costs nothing until one happens.
"""

import logging
from functools import lru_cache
from time import perf_counter

from prometheus_client import Counter, Gauge, Histogram
from psycopg2 import errors as pg_errors
from sqlalchemy import Engine, event, exc
from sqlalchemy.pool import QueuePool

from bank_api.observability import multiprocess

POOL_SIZE = Gauge("bank_db_pool_size", "Configured connection pool size",
                  multiprocess_mode="livesum")
POOL_CHECKED_OUT = Gauge("bank_db_pool_checked_out", "Pool connections in use",
                         multiprocess_mode="livesum")
POOL_IDLE = Gauge("bank_db_pool_idle", "Pool connections open and idle",
                  multiprocess_mode="livesum")
POOL_OVERFLOW = Gauge("bank_db_pool_overflow", "Connections opened beyond the pool size",
                      multiprocess_mode="livesum")
CHECKOUT_SECONDS = Histogram(
    "bank_db_pool_checkout_seconds", "Time spent waiting for a pool connection",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUERY_SECONDS = Histogram(
    "bank_db_query_duration_seconds", "Duration of SQL statements", ["statement"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ERRORS = Counter("bank_db_errors", "Database errors by kind", ["kind"])

# `with`: a statement that starts with a WITH clause, e.g. a money movement, which writes the
# balances and the ledger rows in one statement (services/ledger.py).
STATEMENTS = frozenset({"select", "insert", "update", "delete", "with"})


@lru_cache(maxsize=1024)
def query_timer(statement: str):
    """The duration histogram of a statement's kind (its first word). SQLAlchemy hands over
    the same cached string for each compiled statement, so each distinct statement is split
    and its label child looked up once, not at every execution."""
    words = statement.split(None, 1)
    verb = words[0].lower() if words else "other"
    return QUERY_SECONDS.labels(verb if verb in STATEMENTS else "other")


class TimedQueuePool(QueuePool):
    """A QueuePool that measures how long a checkout waits for a connection.

    `_do_get` is the method pool classes implement to hand out a connection; SQLAlchemy has
    no event before a checkout, and the wait is the one number that says the pool is too
    small. A private hook, so it is pinned: api/tests/test_metrics.py fails when checkouts
    stop reaching it (bank_db_pool_checkout_seconds_count stays 0).
    """

    # SQLAlchemy names a pool's logger after its class; keep it as quiet as QueuePool's.
    logging.getLogger(f"{__name__}.TimedQueuePool").setLevel(logging.WARNING)

    def _do_get(self):
        start = perf_counter()
        try:
            return super()._do_get()
        finally:
            CHECKOUT_SECONDS.observe(perf_counter() - start)


def error_kind(error: BaseException) -> str:
    original = getattr(error, "orig", error)
    if isinstance(error, exc.TimeoutError) or isinstance(
        original, pg_errors.QueryCanceled | pg_errors.LockNotAvailable
    ):
        return "timeout"
    if isinstance(error, exc.IntegrityError):
        return "integrity"
    if isinstance(original, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return "serialization"
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return "connection"
    return "other"


def instrument(engine: Engine) -> None:
    pool = engine.pool
    POOL_SIZE.set(pool.size())
    if multiprocess.enabled():
        _update_pool_gauges_on_events(pool)
    else:  # read when scraped: exact, and nothing to do per request
        POOL_CHECKED_OUT.set_function(pool.checkedout)
        POOL_IDLE.set_function(pool.checkedin)
        POOL_OVERFLOW.set_function(lambda: max(pool.overflow(), 0))

    @event.listens_for(engine, "handle_error")
    def _error(context):
        ERRORS.labels(error_kind(context.sqlalchemy_exception or context.original_exception)).inc()


def _update_pool_gauges_on_events(pool: QueuePool) -> None:
    """Multiprocess mode: each worker writes its pool's counts to its files as they change."""

    def update_pool_gauges(*_) -> None:
        POOL_CHECKED_OUT.set(pool.checkedout())
        POOL_IDLE.set(pool.checkedin())
        POOL_OVERFLOW.set(max(pool.overflow(), 0))

    def on_checkin(*_) -> None:
        # The event fires just before the pool takes the connection back: count it as
        # returned. It goes back to the queue if there is room, else it is closed.
        kept = pool.checkedin() < pool.size()
        POOL_CHECKED_OUT.set(max(pool.checkedout() - 1, 0))
        POOL_IDLE.set(pool.checkedin() + kept)
        POOL_OVERFLOW.set(max(pool.overflow() - (not kept), 0))

    for name in ("checkout", "connect", "close", "invalidate"):
        event.listen(pool, name, update_pool_gauges)
    event.listen(pool, "checkin", on_checkin)


def count_pool_timeout() -> None:
    """Pool checkout timeouts are not DBAPI errors, so handle_error never sees them."""
    ERRORS.labels("timeout").inc()
