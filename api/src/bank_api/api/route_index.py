"""The app's routes, flattened once per app: each request's route template, every template,
and the methods served on a path.

Everything that labels or names a request needs its template (the HTTP metrics, the fault
switch, the log line, the span): the request layer asks `name` once per request, before the
router runs, and the others read its answer. The admin endpoint lists the templates the fault
switch may target; the 405 problem names every method served on the path (Starlette names
only the first matching route's).

FastAPI keeps included routers as a tree (app.routes holds one entry per included router);
`fastapi.routing.iter_route_contexts`, FastAPI's public way to walk it, gives each route with
its full path, pattern and methods. The tree is flattened, and mounts read, once per app, the
first time the index is used (main.create_app adds every route before the first request), and
a request is answered by matching each route's compiled path pattern, not by asking every route
object to match (which builds its path parameters at every request).

`name` answers what prometheus-fastapi-instrumentator's `routing.get_route_name` answers with
the root path left out, so metric labels are the library's (api/tests/test_metrics.py checks
it on every route of the app): the first route whose path and method match; else the first
whose path matches (Starlette's partial match, a 405 to come); a mount whose routes cannot be
read (a static files app) is named by its own path, one with routes by its path followed by the
matching route's template. Paths are matched as Starlette matches them, less the root path.

One deliberate difference: for a path no route matches but that would match with its trailing
slash added or removed (Starlette answers it with a redirect), the library returns the raw
path, an account id and all: a label that grows with the data. Here it is None, like any path
no route matches (the metrics' `none`).
"""

import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope


class _Entry(NamedTuple):
    pattern: re.Pattern[str]  # the route's path_regex (a mount's ends in its `path` group)
    template: str  # the route's path; a mount's path, without its trailing slash
    methods: frozenset[str] | None  # what a route answers; None: every method, or a mount
    routes: tuple["_Entry", ...] | None  # a mount's routes (empty: an opaque app); None: a route
    allowed: frozenset[str]  # what allowed_methods reports for it


class RouteIndex:
    """The routes of one app (see the module's docstring); `route_index(app)` keeps one."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._entries: tuple[_Entry, ...] | None = None
        self._templates: frozenset[str] | None = None

    @property
    def _table(self) -> tuple[_Entry, ...]:
        if self._entries is None:
            self._entries = _entries(getattr(self._app, "routes", ()))
        return self._entries

    def name(self, scope: Scope) -> str | None:
        """The template of the route an HTTP request goes to (`/accounts/{account_id}`), or
        None when no route matches. Call it before the router has run (the request layer does,
        once per request): a mount of the app changes the scope's root path."""
        return _find(self._table, scope["path"], scope.get("root_path", ""), scope["method"])

    @property
    def templates(self) -> frozenset[str]:
        """Every route template, the routes left out of the OpenAPI document (the docs,
        /metrics) and mounts included: every answer `name` can give."""
        if self._templates is None:
            self._templates = frozenset(_templates(self._table))
        return self._templates

    def allowed_methods(self, path: str) -> set[str]:
        """Every method some route serves on this path, as the routes see it (`route_path`):
        HEAD wherever GET; GET and HEAD under a static files mount. A route that takes every
        method, or an app mounted whole, adds none (there is nothing to name).

        HEAD wherever GET is what Starlette's own routes do; FastAPI's path operations do not
        (their methods are the declared ones: a HEAD on one is itself a 405), yet it is listed
        for them too, as the API always has (tests/test_accounts.py pins `GET, HEAD, PATCH`)."""
        return _allowed(self._table, path)


def route_index(app: ASGIApp) -> RouteIndex:
    """The app's index, made on the first call and kept on app.state."""
    try:
        return app.state.route_index
    except AttributeError:
        index = app.state.route_index = RouteIndex(app)
        return index


def route_path(scope: Scope) -> str:
    """The request's path as the app's routes see it: less the root path the app is served
    under (Starlette's get_route_path). Once the router has gone into one of the app's mounts,
    root_path has the mount's prefix added; app_root_path still holds the app's own."""
    return _strip(scope["path"], scope.get("app_root_path", scope.get("root_path", "")))


def _strip(path: str, root_path: str) -> str:
    """Starlette's get_route_path: the root path is removed only as a whole path segment."""
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path):] if path[len(root_path)] == "/" else path


def _entries(routes: Sequence[BaseRoute]) -> tuple[_Entry, ...]:
    """The routes in matching order, included routers flattened, with their full paths.
    Routes that never answer an HTTP request by a path template (websocket routes, Host) are
    left out: the library skips them too."""
    entries = []
    for context in iter_route_contexts(routes):
        original = context.original_route
        if isinstance(original, Mount):
            app = context.app
            entries.append(_Entry(context.path_regex, context.path, None,
                                  _entries(context.routes),
                                  frozenset({"GET", "HEAD"}) if isinstance(app, StaticFiles)
                                  else frozenset()))
        elif isinstance(original, Route):
            methods = frozenset(context.methods) if context.methods else None
            allowed = methods | {"HEAD"} if methods and "GET" in methods else methods
            entries.append(_Entry(context.path_regex, context.path, methods, None,
                                  allowed or frozenset()))
    return tuple(entries)


def _find(entries: tuple[_Entry, ...], path: str, root_path: str, method: str) -> str | None:
    """The library's walk: a full match wins at once, else the first partial one; a mount
    matches every method, and its routes are matched with its prefix added to the root path
    (Starlette's Mount.matches), so a partial match inside it is its answer."""
    route_path = _strip(path, root_path)
    partial = None
    for entry in entries:
        match = entry.pattern.match(route_path)
        if match is None:
            continue
        if entry.routes is None:
            if entry.methods is None or method in entry.methods:
                return entry.template
            if partial is None:
                partial = entry.template
        elif not entry.routes:
            return entry.template
        else:
            remaining = "/" + match["path"]
            child = _find(entry.routes, path, root_path + route_path[:-len(remaining)], method)
            if child is not None:
                return entry.template + child
    return partial


def _templates(entries: tuple[_Entry, ...], prefix: str = "") -> Iterator[str]:
    for entry in entries:
        if entry.routes:
            yield from _templates(entry.routes, prefix + entry.template)
        else:
            yield prefix + entry.template


def _allowed(entries: tuple[_Entry, ...], path: str) -> set[str]:
    methods: set[str] = set()
    for entry in entries:
        match = entry.pattern.match(path)
        if match is not None:
            methods |= entry.allowed
            if entry.routes:
                methods |= _allowed(entry.routes, "/" + match["path"])
    return methods
