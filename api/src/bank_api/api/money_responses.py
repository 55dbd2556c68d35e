"""What the money POSTs share in HTTP terms: the movement a request asks for, and its 201.

A first answer and a replay (a retry with the same Idempotency-Key) are rendered by the same
function from what the movement wrote, so the replay is the first answer again, byte for byte,
marked with Idempotent-Replayed: true.
"""

import hashlib

from fastapi import Request, Response
from pydantic import BaseModel

from bank_api.api.rendering import json_response
from bank_api.schemas import TransactionCreate, TransferCreate
from bank_api.services.movements import Movement

# The OpenAPI description of a money POST's 201.
MOVEMENT_CREATED = {
    "description": "The movement, written. A retry with the same Idempotency-Key and body gets "
    "this first answer again, with Idempotent-Replayed: true, and moves nothing.",
    "headers": {
        "Location": {"schema": {"type": "string"}, "description": "The new resource"},
        "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                "description": "Present on a replayed answer"},
    },
}


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """What makes two requests 'the same' for an Idempotency-Key: method, path and the
    validated body. Hashing the parsed model, not the raw bytes, makes key order and
    whitespace irrelevant."""
    canonical = f"{method} {path}\n{body.model_dump_json()}"
    return hashlib.sha256(canonical.encode()).hexdigest()


def movement(request: Request, body: TransactionCreate | TransferCreate, *, operation: str,
             account_id: int, idempotency_key: str | None,
             destination_id: int | None = None) -> Movement:
    return Movement(
        operation=operation,
        account_id=account_id,
        destination_id=destination_id,
        amount=body.amount,
        idempotency_key=idempotency_key,
        # Only a key needs it (a hash of the body, a few microseconds).
        request_hash=fingerprint(request.method, request.url.path, body)
        if idempotency_key is not None else None,
    )


def created(resource: BaseModel, location: str, *, replayed: bool) -> Response:
    """The 201 of a money POST, first time or replayed."""
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(resource, status_code=201, headers=headers)
