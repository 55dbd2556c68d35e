"""Idempotency-Key handling for money-moving POSTs.

A client that does not know whether its POST landed (timeout, connection reset) sends it again
with the same Idempotency-Key. The first answer is stored in the same database transaction as
the movement, so the key exists exactly when the movement does; a retry finds it and gets the
same answer back, and nothing moves twice.

Concurrent requests with the same key queue on a transaction-scoped advisory lock on the key:
the second one waits until the first commits (then replays its answer) or rolls back (then
runs itself). Keys expire after `idempotency_key_ttl` (settings); an expired key is forgotten
and the request runs as new.
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import Interval, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from bank_api.errors import IdempotencyConflict
from bank_api.models import IdempotencyKey


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict
    location: str | None


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """What makes two requests 'the same': method, path and the validated body.

    Hashing the parsed model, not the raw bytes, makes key order and whitespace irrelevant.
    """
    canonical = f"{method} {path}\n{body.model_dump_json()}"
    return hashlib.sha256(canonical.encode()).hexdigest()


LOCK_KEY = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")

FIND_KEY = select(
    IdempotencyKey.request_hash,
    IdempotencyKey.response_status,
    IdempotencyKey.response_body,
    IdempotencyKey.location,
    (IdempotencyKey.created_at < func.now() - bindparam("ttl", type_=Interval)).label("expired"),
).where(IdempotencyKey.key == bindparam("key"))


def claim(session: Session, key: str, request_hash: str, ttl: timedelta) -> StoredResponse | None:
    """Take the key's lock for this transaction; return the stored answer if there is one."""
    session.execute(LOCK_KEY, {"key": key})
    # A separate statement after the lock, so its snapshot sees a commit we waited for.
    stored = session.execute(FIND_KEY, {"key": key, "ttl": ttl}).one_or_none()
    if stored is None:
        return None
    if stored.expired:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.key == key))
        return None
    if stored.request_hash != request_hash:
        raise IdempotencyConflict(
            "this Idempotency-Key was first used with a different request; "
            "use a new key for a new request"
        )
    return StoredResponse(stored.response_status, stored.response_body, stored.location)


def remember(
    session: Session, key: str, request_hash: str, response: StoredResponse
) -> None:
    """Store the answer; the caller commits it together with the movement."""
    session.execute(
        insert(IdempotencyKey).values(
            key=key,
            request_hash=request_hash,
            response_status=response.status,
            response_body=response.body,
            location=response.location,
        )
    )
