"""Idempotency-Key handling for money-moving POSTs.

A client that does not know whether its POST landed (timeout, connection reset) sends it again
with the same Idempotency-Key. The key is stored in the same database transaction as the
movement, pointing at what that movement wrote (a ledger entry or a transfer), so the key
exists exactly when the movement does; a retry finds it and gets the same movement back, and
nothing moves twice.

The caller says what "the same request" is: a hash it computes (the route hashes the method,
the path and the validated body), stored with the key and compared on every retry.

Concurrent requests with the same key queue on a transaction-scoped advisory lock on the key:
the second one waits until the first commits (then gets its movement back) or rolls back (then
runs itself). Keys expire after `idempotency_key_ttl` (settings); an expired key is forgotten
and the request runs as new.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Interval, bindparam, delete, func, insert, select, text

from bank_api.errors import IdempotencyConflict
from bank_api.models import IdempotencyKey


@dataclass(frozen=True)
class Made:
    """What a key's movement wrote: one ledger entry (a credit or debit) or one transfer."""

    ledger_entry_id: int | None = None
    transfer_id: int | None = None


LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")

FIND_KEY = select(
    IdempotencyKey.request_hash,
    IdempotencyKey.ledger_entry_id,
    IdempotencyKey.transfer_id,
    (IdempotencyKey.created_at < func.now() - bindparam("ttl", type_=Interval)).label("expired"),
).where(IdempotencyKey.key == bindparam("key"))


def claim(connection: Connection, key: str, request_hash: str, ttl: timedelta) -> Made | None:
    """Take the key's lock for this transaction; return what it made if it was used before."""
    connection.execute(LOCK_KEY, {"key": key})
    # A separate statement after the lock, so its snapshot sees a commit we waited for.
    stored = connection.execute(FIND_KEY, {"key": key, "ttl": ttl}).one_or_none()
    if stored is None:
        return None
    if stored.expired:
        connection.execute(delete(IdempotencyKey).where(IdempotencyKey.key == key))
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was first used with a different request; "
            "use a new key for a new request"
        )
    return Made(stored.ledger_entry_id, stored.transfer_id)


def remember(connection: Connection, key: str, request_hash: str, made: Made) -> None:
    """Store the key with what it made; the caller commits it together with the movement."""
    connection.execute(
        insert(IdempotencyKey).values(
            key=key,
            request_hash=request_hash,
            ledger_entry_id=made.ledger_entry_id,
            transfer_id=made.transfer_id,
        )
    )
