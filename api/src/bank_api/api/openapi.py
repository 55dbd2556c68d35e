"""Make the OpenAPI document say what the API really answers on errors.

FastAPI documents its own 422 body and `application/json` for every response; ours are
problem+json with the Problem schema. The schema is a tested contract (api/tests/test_openapi.py).
"""

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from bank_api.api.paths import NOT_FAULTED
from bank_api.api.problems import PROBLEM_JSON
from bank_api.schemas import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# Error answers any operation can give, besides the ones a route declares.
COMMON_ERRORS = {
    "422": "Invalid request (validation_error)",
    "503": "Database unavailable (database_unavailable) or server overloaded (overloaded); "
    "see Retry-After",
}
# The fault switch's injected answers (PUT /admin/faults).
FAULTABLE_ERRORS = {"500": "Injected by the fault switch (fault_injected)"}
BODY_ERRORS = {
    "400": "Body is not valid JSON (invalid_json)",
    "413": "Body too large (payload_too_large)",
    "415": "Body is not application/json (unsupported_media_type)",
}
MONEY_ERRORS = {
    "404": "Unknown account (not_found)",
    "409": "Refused: insufficient_funds, account_closed, currency_mismatch, "
    "balance_limit_exceeded or idempotency_conflict",
}


def problem_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` with one that documents our problem+json error answers."""

    def openapi() -> dict:
        # FastAPI caches the document on the app; build it only on the first call.
        if not app.openapi_schema:
            app.openapi_schema = build_problem_schema(app)
        return app.openapi_schema

    app.openapi = openapi


def build_problem_schema(app: FastAPI) -> dict:
    """FastAPI's document for `app`, with every error answer described as a Problem."""
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary,
        description=app.description, routes=app.routes,
    )
    use_problem_schema(schema)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            document_errors(operation, errors_of(path, method, operation))
    return schema


def use_problem_schema(schema: dict) -> None:
    """Add the Problem schema and drop FastAPI's own 422 schemas, which we never send."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema()
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def errors_of(path: str, method: str, operation: dict) -> dict[str, str]:
    """The error answers (status -> description) one operation can give.

    Later rules win on purpose: e.g. /admin's 404 means "disabled", not "unknown id".
    """
    errors = dict(COMMON_ERRORS)
    if not path.startswith(NOT_FAULTED):
        errors.update(FAULTABLE_ERRORS)
    if "requestBody" in operation:
        errors.update(BODY_ERRORS)
    if "{" in path:
        errors["404"] = "Not found (not_found)"
    if method == "post" and path != "/accounts":
        errors.update(MONEY_ERRORS)
    if path.endswith(("/close",)) or method == "patch":
        errors["409"] = "Refused: account_not_empty or account_closed"
    if path.startswith("/admin"):
        errors["401"] = "Missing or wrong token (unauthorized)"
        errors["404"] = "Admin endpoints disabled: ADMIN_TOKEN is not set"
    return errors


def document_errors(operation: dict, errors: dict[str, str]) -> None:
    """Write `errors` into the operation and give every 4xx/5xx a problem+json body."""
    responses = operation.setdefault("responses", {})
    for status, description in errors.items():
        responses[status] = {"description": description}
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
