"""The HTTP answer to a money movement, first time or replayed."""

from fastapi.responses import JSONResponse

from bank_api.services.movements import Outcome


def money_response(outcome: Outcome) -> JSONResponse:
    stored = outcome.response
    headers = {"Location": stored.location} if stored.location else {}
    if outcome.replayed:
        # The first answer again, with a header that tells the client it is a replay.
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(stored.body, status_code=stored.status, headers=headers)
