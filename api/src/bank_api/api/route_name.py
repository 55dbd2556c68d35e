"""The request's route template, matched once per request and kept in the ASGI scope.

Several middleware layers need it (the HTTP metrics, the fault switch), and matching walks the
whole route table, so the first layer that asks matches and the others read the answer.
"""

from prometheus_fastapi_instrumentator import routing
from starlette.requests import HTTPConnection
from starlette.types import Scope

SCOPE_KEY = "bank_api.route_name"
_UNSET = object()


def route_name(scope: Scope) -> str | None:
    """The route template (`/accounts/{account_id}`), or None when no route matches: the
    instrumentator's own answer (root path not included), so metric labels do not change.

    Call it before the router has run (from a middleware), as every caller does: the scope
    is the same dict through all the middleware layers, so they share what is stored here."""
    name = scope.get(SCOPE_KEY, _UNSET)
    if name is _UNSET:
        name = scope[SCOPE_KEY] = routing.get_route_name(HTTPConnection(scope),
                                                         should_include_root_path=False)
    return name
