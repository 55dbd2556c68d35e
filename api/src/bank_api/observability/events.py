"""What is not one request's outcome, logged as a line of its own: the fault switch changed,
the database became unavailable, an unexpected error (with its traceback).

A request's own outcome (money moved, a refusal, a replay) is a field of its one line
(observability/request_record.py), not a line here. Each line has a stable `event` name and
plain fields (never a body or a secret), beside the request id, route and trace id every line
written during a request carries (observability/logs.py).
"""

import logging

log = logging.getLogger("bank_api.events")


def fault_switch_changed(latency_ms: int, error_rate: float, routes: list[str],
                         methods: list[str], duration_s: int | None) -> None:
    state = "on" if latency_ms or error_rate else "off"
    log.warning("fault switch %s: +%d ms, %.0f %% errors, routes %s, methods %s, for %s",
                state, latency_ms, error_rate * 100, routes or "all", methods or "all",
                f"{duration_s} s" if duration_s is not None else "ever",
                extra={"event": "fault_switch_changed", "latency_ms": latency_ms,
                       "error_rate": error_rate, "routes": routes, "methods": methods,
                       "duration_s": duration_s})


def database_unavailable(error: str) -> None:
    log.warning("database unavailable: %s", error,
                extra={"event": "database_unavailable", "error": error})


def unhandled_error(error: BaseException) -> None:
    log.error("unhandled %s", type(error).__name__, exc_info=error,
              extra={"event": "unhandled_error", "error": type(error).__name__})
