"""Every error leaves the API as application/problem+json (RFC 9457) with a stable `code`.

Unexpected exceptions become a bare 500 without details (api/request_layer.py logs the
traceback); database outages become 503 with Retry-After. Every problem names the request's
`request_id`, the id the logs and traces know it by.
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from bank_api.api.route_index import route_index, route_path
from bank_api.errors import BankError
from bank_api.observability import db_metrics, events, request_record
from bank_api.services.pagination import InvalidCursor

PROBLEM_JSON = "application/problem+json"

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem_body(status: int, code: str, title: str, detail: str) -> dict:
    """The members every problem has; problem() adds the request's own."""
    return {"type": f"urn:bank-api:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    request: Request | None = None,
    *,
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_body(status, code, title, detail)
    request_record.problem(code)
    if request is not None:
        body["instance"] = request.url.path
    if (request_id := request_record.current_request_id()) is not None:
        body["request_id"] = request_id
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict]:
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    if any(e["type"] == "json_invalid" for e in errors):
        return problem(400, "invalid_json", "Body is not valid JSON",
                       "the request body could not be parsed as JSON", request, errors=errors)
    content_type = request.headers.get("content-type", "")
    if any(e["field"] == "body" for e in errors) and not _is_json(content_type):
        return problem(415, "unsupported_media_type", "Unsupported media type",
                       "send the request body as application/json", request)
    fields = ", ".join(sorted({e["field"] for e in errors}))
    return problem(422, "validation_error", "Invalid request",
                   f"invalid fields: {fields}", request, errors=errors)


async def _bank_error(request: Request, exc: BankError) -> JSONResponse:
    return problem(exc.status, exc.code, exc.title, exc.detail, request, headers=exc.headers)


async def _invalid_cursor(request: Request, exc: InvalidCursor) -> JSONResponse:
    errors = [{"field": "query.cursor", "message": str(exc), "type": "invalid_cursor"}]
    return problem(422, "validation_error", "Invalid request", str(exc), request, errors=errors)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    title = code.replace("_", " ").capitalize()
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods.
        allowed = route_index(request.app).allowed_methods(route_path(request.scope))
        headers["Allow"] = ", ".join(sorted(allowed))
    return problem(exc.status_code, code, title, str(exc.detail), request, headers=headers)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, PoolTimeout):
        db_metrics.count_pool_timeout()
    events.database_unavailable(exc.__class__.__name__)
    return problem(503, "database_unavailable", "Database unavailable",
                   "the database did not answer in time; retry shortly", request,
                   headers={"Retry-After": "2"})


def internal_error(request: Request) -> JSONResponse:
    return problem(500, "internal_error", "Internal server error",
                   "an unexpected error occurred; it has been logged", request)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BankError, _bank_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    # Connection lost or refused, statement timeout: the database, not the request, failed.
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    # Any other exception: api/request_layer.py.
