"""Each SQL statement, observed by the psycopg2 cursor that runs it: its duration in
`bank_db_query_duration_seconds` (metrics on) and, inside a sampled request, its span (tracing
on: observability/tracing.py's `sql_span`, with the statement's text, placeholders and all).

One cursor rather than SQLAlchemy's cursor-execute events (several times the cost, about
20 µs a statement) or OpenTelemetry's psycopg2 instrumentation (a wrapped connection and
cursor that cost every statement of every request, sampled or not, about 0.05 ms a credit:
bankops/bench/PROFILE.md). Here a request the sampler left out pays one check per statement.
core/db.py makes it the engine's cursor when metrics or tracing are on.
"""

from time import perf_counter

from psycopg2.extensions import cursor as Psycopg2Cursor

from bank_api.observability import tracing
from bank_api.observability.db_metrics import query_timer


class ObservedCursor(Psycopg2Cursor):
    timed = False  # into the statement duration histogram
    traced = False  # a span, when the current span is recording

    def execute(self, query, vars=None):
        span = tracing.sql_span(query) if self.traced else None
        start = perf_counter()
        try:
            return super().execute(query, vars)
        except Exception as error:
            if span is not None:
                tracing.failed(span, error)
            raise
        finally:
            if self.timed:
                query_timer(query).observe(perf_counter() - start)
            if span is not None:
                span.end()


def cursor_class(*, timed: bool, traced: bool) -> type[Psycopg2Cursor] | None:
    """The cursor for an engine: None (psycopg2's own, in C) when nothing observes it."""
    if not (timed or traced):
        return None
    return type("ObservedCursor", (ObservedCursor,), {"timed": timed, "traced": traced})
