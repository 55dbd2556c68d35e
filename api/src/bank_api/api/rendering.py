"""JSON answers rendered once, by pydantic-core, from what the database returned.

A route that returns a Response skips FastAPI's own response handling (validate the returned
object against response_model, then serialise it): the model below does both in two calls,
and the route keeps its response_model for the OpenAPI document.
"""

from typing import Any

from fastapi import Response
from pydantic import BaseModel


def render(model: type[BaseModel], source: Any, *, status_code: int = 200,
           headers: dict[str, str] | None = None) -> Response:
    """`source` (a row or an object with the model's fields as attributes) as `model`."""
    return json_response(model.model_validate(source, from_attributes=True),
                         status_code=status_code, headers=headers)


def json_response(resource: BaseModel, *, status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(resource.model_dump_json(), status_code=status_code, headers=headers,
                    media_type="application/json")
