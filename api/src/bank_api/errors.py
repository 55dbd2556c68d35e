"""Domain errors: what the bank refuses, each with a stable machine code.

The services raise these; api/problems.py turns them into application/problem+json answers.
"""


class BankError(Exception):
    """A request the bank refuses. `code` is stable and documented; the message is for people."""

    code = "bank_error"
    status = 400
    title = "Request refused"

    headers: dict[str, str] | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(BankError):
    code, status, title = "not_found", 404, "Not found"


class AccountClosed(BankError):
    code, status, title = "account_closed", 409, "Account is closed"


class AccountNotEmpty(BankError):
    code, status, title = "account_not_empty", 409, "Account balance is not zero"


class InsufficientFunds(BankError):
    code, status, title = "insufficient_funds", 409, "Insufficient funds"


class BalanceLimitExceeded(BankError):
    code, status, title = "balance_limit_exceeded", 409, "Balance limit exceeded"


class CurrencyMismatch(BankError):
    code, status, title = "currency_mismatch", 409, "Currency mismatch"


class SameAccount(BankError):
    code, status, title = "same_account", 422, "Source and destination are the same account"


class IdempotencyConflict(BankError):
    code, status, title = (
        "idempotency_conflict",
        409,
        "Idempotency-Key reused with a different request",
    )


class Unauthorized(BankError):
    code, status, title = "unauthorized", 401, "Authentication required"
    headers = {"WWW-Authenticate": "Bearer"}


class UnknownRoute(BankError):
    code, status, title = "unknown_route", 422, "Unknown route template"


# Refusals of a money movement that are logged in the refusals table and counted by outcome.
MOVEMENT_REFUSALS = (
    AccountClosed,
    InsufficientFunds,
    BalanceLimitExceeded,
    CurrencyMismatch,
    SameAccount,
)
