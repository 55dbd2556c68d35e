"""Domain events, logged once each: money moved, a refusal, an idempotent replay, the fault
switch changed, the database unavailable, an unexpected error.

Each line has a stable `event` name and plain fields (never a body or a secret), beside the
request id, route and trace id every line carries (observability/logs.py). The same events are
counted in observability/domain_metrics.py; these lines say which request it was.
"""

import logging

log = logging.getLogger("bank_api.events")


def money_moved(operation: str, account_id: int, amount: int, currency: str) -> None:
    log.info("%s of %d %s on account %d", operation, amount, currency, account_id,
             extra={"event": "money_moved", "operation": operation, "account_id": account_id,
                    "amount": amount, "currency": currency})


def refused(operation: str, account_id: int, amount: int, code: str) -> None:
    log.info("%s refused: %s", operation, code,
             extra={"event": "refused", "operation": operation, "account_id": account_id,
                    "amount": amount, "code": code})


def replayed(operation: str, account_id: int) -> None:
    log.info("%s replayed for a repeated Idempotency-Key; nothing moved", operation,
             extra={"event": "replayed", "operation": operation, "account_id": account_id})


def fault_switch_changed(latency_ms: int, error_rate: float, routes: list[str]) -> None:
    state = "on" if latency_ms or error_rate else "off"
    log.warning("fault switch %s: +%d ms, %.0f %% errors, routes %s", state, latency_ms,
                error_rate * 100, routes or "all",
                extra={"event": "fault_switch_changed", "latency_ms": latency_ms,
                       "error_rate": error_rate, "routes": routes})


def database_unavailable(error: str) -> None:
    log.warning("database unavailable: %s", error,
                extra={"event": "database_unavailable", "error": error})


def unhandled_error(error: BaseException) -> None:
    log.error("unhandled %s", type(error).__name__, exc_info=error,
              extra={"event": "unhandled_error", "error": type(error).__name__})
