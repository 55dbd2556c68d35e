"""The request's route template, matched once per request and kept in the ASGI scope.

Everything that labels or names a request needs it (the HTTP metrics, the fault switch, the log
line, the span), so it is matched once, by the request layer, and the others read the answer.

The answer is prometheus-fastapi-instrumentator's (routing.get_route_name, root path not
included), so metric labels are the library's. Its function flattens the app's routers and
asks each route to match, building the route's path parameters, at every request; here the
flattened table is built once per app and a route's path pattern is matched directly (a fifth
of the time). Anything the table cannot answer the same way (a root path, a mount with routes
of its own) goes to the library; api/tests/test_metrics.py checks both agree.

One deliberate difference: for a path no route matches but that would match with its trailing
slash added or removed (Starlette answers it with a redirect), the library returns the raw
path, an account id and all: a label that grows with the data. Here it is None, like any path
no route matches (the metrics' `none`).
"""

from typing import NamedTuple
from weakref import WeakKeyDictionary

from prometheus_fastapi_instrumentator import routing
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.types import ASGIApp, Scope

SCOPE_KEY = "bank_api.route_name"
_UNSET = object()


class _Route(NamedTuple):
    pattern: object  # the route's compiled path_regex
    methods: frozenset[str] | None  # None: every method (a mount)
    template: str


_tables: WeakKeyDictionary[ASGIApp, list[_Route] | None] = WeakKeyDictionary()


def route_name(scope: Scope) -> str | None:
    """The route template (`/accounts/{account_id}`), or None when no route matches.

    Call it before the router has run (from a middleware), as every caller does: the scope
    is the same dict through all the layers, so they share what is stored here."""
    name = scope.get(SCOPE_KEY, _UNSET)
    if name is _UNSET:
        name = scope[SCOPE_KEY] = _match(scope)
    return name


def _match(scope: Scope) -> str | None:
    app = scope.get("app")
    table = _tables.get(app, _UNSET) if app is not None else None
    if table is _UNSET:
        table = _tables[app] = _table(app)
    if table is None or scope.get("root_path"):
        name = routing.get_route_name(HTTPConnection(scope), should_include_root_path=False)
        return name if table is None or name in {route.template for route in table} else None
    path, method = scope["path"], scope["method"]
    partial = None
    for route in table:
        if route.pattern.match(path):
            if route.methods is None or method in route.methods:
                return route.template  # a full match: path and method
            partial = partial or route.template  # the path only: the first one wins
    return partial


def _table(app: ASGIApp) -> list[_Route] | None:
    """The app's routes, flattened as the library flattens them (every route exists before
    the first request: main.create_app adds them all); None if the library must answer."""
    table = []
    for route in routing._effective_routes(getattr(app, "routes", [])):
        pattern, template = getattr(route, "path_regex", None), getattr(route, "path", None)
        if pattern is None or template is None or (isinstance(route, Mount) and route.routes):
            return None
        methods = None if isinstance(route, Mount) else getattr(route, "methods", None)
        table.append(_Route(pattern, frozenset(methods) if methods else None, template))
    return table
