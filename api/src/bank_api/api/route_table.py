"""The API's route templates and their methods, read from the OpenAPI document.

FastAPI keeps included routers as nested objects; the OpenAPI document is the public, flat
list of every documented route.
"""

import re
from functools import cache

from fastapi import FastAPI


@cache
def _templates(app: FastAPI) -> dict[str, tuple[re.Pattern, frozenset[str]]]:
    table = {}
    for template, operations in app.openapi()["paths"].items():
        pattern = re.compile(re.sub(r"\{[^/]+\}", "[^/]+", template))
        methods = {method.upper() for method in operations}
        if "GET" in methods:
            methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
        table[template] = (pattern, frozenset(methods))
    return table


def route_templates(app: FastAPI) -> set[str]:
    return set(_templates(app))


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """Every method any route serves on this concrete path."""
    return {method for pattern, methods in _templates(app).values()
            if pattern.fullmatch(path) for method in methods}
