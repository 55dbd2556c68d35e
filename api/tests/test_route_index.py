"""api/route_index.py: the app's route templates, the methods served on a path, and the route
names of requests on apps shaped unlike ours (tests/test_metrics.py checks the API's own)."""

import re

import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from prometheus_fastapi_instrumentator import routing
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from bank_api.api.paths import NOT_FAULTED
from bank_api.api.route_index import RouteIndex, route_index, route_path
from bank_api.core.config import Settings
from bank_api.main import create_app

UNUSED_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # routes only: never connected
NOT_IN_THE_DOCUMENT = {"/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
                       "/docs/assets"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(database_url=UNUSED_DATABASE))


def test_one_index_per_app(app):
    index = route_index(app)
    assert isinstance(index, RouteIndex) and app.state.route_index is index
    assert route_index(app) is index
    assert route_index(create_app(Settings(database_url=UNUSED_DATABASE))) is not index


def test_templates_are_every_route(app):
    """The documented routes, and those the OpenAPI document leaves out: the fault switch
    can still target only the documented ones, as when it read the document (api/paths.py
    keeps /metrics, health, admin and the docs out)."""
    templates, documented = route_index(app).templates, set(app.openapi()["paths"])
    assert templates == documented | NOT_IN_THE_DOCUMENT
    faultable = {t for t in templates if not t.startswith(NOT_FAULTED)}
    assert faultable == {t for t in documented if not t.startswith(NOT_FAULTED)} == {
        "/accounts", "/accounts/{account_id}", "/accounts/{account_id}/close",
        "/accounts/{account_id}/transactions", "/transactions/{transaction_id}",
        "/transfers", "/transfers/{transfer_id}"}


@pytest.mark.parametrize(("path", "methods"), [
    ("/accounts", {"GET", "HEAD", "POST"}),
    ("/accounts/7", {"GET", "HEAD", "PATCH"}),
    ("/accounts/7/transactions", {"GET", "HEAD", "POST"}),
    ("/accounts/7/close", {"POST"}),
    ("/admin/faults", {"GET", "HEAD", "PUT", "DELETE"}),
    ("/metrics", {"GET", "HEAD"}),  # out of the OpenAPI document, still served
    ("/openapi.json", {"GET", "HEAD"}),
    ("/docs/assets/swagger-ui.css", {"GET", "HEAD"}),  # static files
    ("/docs/assets", set()),  # a redirect, to /docs/assets/
    ("/accounts/7/", set()),
    ("/nope", set()),
    ("", set()),
])
def test_allowed_methods(app, path, methods):
    assert route_index(app).allowed_methods(path) == methods


@pytest.mark.parametrize(("scope", "path"), [
    ({"path": "/accounts/7"}, "/accounts/7"),
    ({"path": "/bank/accounts/7", "root_path": "/bank"}, "/accounts/7"),
    ({"path": "/accounts/7", "root_path": "/bank"}, "/accounts/7"),  # not under it: as is
    ({"path": "/banking/accounts", "root_path": "/bank"}, "/banking/accounts"),
    ({"path": "/bank", "root_path": "/bank"}, ""),
    # After the router went into a mount (the docs' static files): the app's root path.
    ({"path": "/bank/docs/assets/a.css", "root_path": "/bank/docs/assets",
      "app_root_path": "/bank"}, "/docs/assets/a.css"),
])
def test_route_path(scope, path):
    assert route_path(scope) == path


def test_the_405_problem_names_every_method(app):
    """Past the router: what problems.py's 405 handler gets."""
    scope = {"path": "/bank/docs/assets/a.css", "root_path": "/bank/docs/assets",
             "app_root_path": "/bank"}
    assert route_index(app).allowed_methods(route_path(scope)) == {"GET", "HEAD"}


def _ok(request):
    return PlainTextResponse("ok")


class _AnyMethod:
    async def __call__(self, scope, receive, send):
        await PlainTextResponse("ok")(scope, receive, send)


async def _socket(websocket: WebSocket):
    await websocket.close()


@pytest.fixture(scope="module")
def odd_app(tmp_path_factory) -> FastAPI:
    """Every kind of route the API does not have (yet): nested routers with prefixes, a plain
    Starlette route in an included router, a route taking every method, mounts with routes
    (nested, included with a prefix, shadowing a later route), a mounted FastAPI app with its
    own included router, a websocket route."""
    inner = APIRouter(prefix="/items")
    inner.add_api_route("/{item_id}", _ok, methods=["GET", "PUT"])
    inner.add_route("/plain/{n}", _ok, methods=["POST"])
    inner.mount("/m", Router(routes=[Route("/{k}", _ok, methods=["DELETE"])]))
    outer = APIRouter(prefix="/v1")
    outer.include_router(inner)
    sub = FastAPI(openapi_url=None)
    sub_router = APIRouter()
    sub_router.add_api_route("/r/{rid}", _ok, methods=["PATCH"])
    sub.include_router(sub_router, prefix="/s")

    app = FastAPI()
    app.include_router(outer)
    # A mount's partial match is its answer: POST /q/zz is /q/{z}, not the route below.
    app.mount("/q", Router(routes=[Route("/{z}", _ok, methods=["GET"])]))
    app.add_api_route("/q/zz", _ok, methods=["POST"])
    # Two partial matches (PUT /o/b): the first one's.
    app.add_api_route("/o/{a}", _ok, methods=["GET"])
    app.add_api_route("/o/b", _ok, methods=["POST"])
    app.mount("/sub", Router(routes=[Route("/a/{x}", _ok, methods=["POST"]),
                                     Mount("/deep", routes=[Route("/b", _ok)])]))
    app.add_route("/any", _AnyMethod())  # every method
    app.mount("/api2", sub)
    app.mount("/static", StaticFiles(directory=tmp_path_factory.mktemp("static")))
    app.add_api_websocket_route("/ws", _socket)
    return app


# FastAPI leaves a router's own prefix off the routes its add_route and mount add (not off
# its include prefix): /v1/plain/{n}, not /v1/items/plain/{n}, as FastAPI serves them.
ODD_TEMPLATES = {"/v1/items/{item_id}", "/v1/plain/{n}", "/v1/m/{k}", "/q/{z}", "/q/zz",
                 "/o/{a}", "/o/b", "/sub/a/{x}", "/sub/deep/b", "/any", "/api2/s/r/{rid}",
                 "/static", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def test_templates_of_nested_routers_and_mounts(odd_app):
    assert route_index(odd_app).templates == ODD_TEMPLATES  # no websocket route


@pytest.mark.parametrize(("path", "methods"), [
    ("/v1/items/3", {"GET", "HEAD", "PUT"}),
    ("/v1/plain/3", {"POST"}),
    ("/v1/m/3", {"DELETE"}),
    ("/q/zz", {"GET", "HEAD", "POST"}),
    ("/o/b", {"GET", "HEAD", "POST"}),
    ("/sub/deep/b", {"GET", "HEAD"}),
    ("/api2/s/r/1", {"PATCH"}),
    ("/static/a.css", {"GET", "HEAD"}),
    ("/any", set()),  # every method: nothing to name
    ("/ws", set()),
])
def test_allowed_methods_in_nested_routers_and_mounts(odd_app, path, methods):
    assert route_index(odd_app).allowed_methods(path) == methods


def _the_libraries(scope: dict) -> str | None:
    return routing.get_route_name(HTTPConnection(dict(scope)), should_include_root_path=False)


def _cases(index: RouteIndex, root_path: str) -> set[tuple[str, str]]:
    concrete = {re.sub(r"\{[^}]+\}", "1", template) for template in index.templates}
    paths = {path + tail for path in concrete for tail in ("", "/", "/x", "/x/y")}
    paths |= {"", "/", "/ws", "/api2", "/api2/", "/api2/s/r", "/sub/deep"}
    return {(method, full_path)
            for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
            for path in paths for full_path in (root_path + path, path)}


@pytest.mark.parametrize("root_path", ["", "/r00t"])
def test_names_are_the_libraries_on_nested_routers_and_mounts(odd_app, root_path):
    index = route_index(odd_app)
    named = set()
    for method, path in _cases(index, root_path):
        scope = {"type": "http", "method": method, "path": path, "root_path": root_path,
                 "headers": [], "query_string": b"", "app": odd_app}
        ours, library = index.name(dict(scope)), _the_libraries(scope)
        named.add(ours)
        # The library's raw path for a path only a redirect answers is the one difference.
        assert ours == library or (ours is None and library == path), (method, path, ours)
    # /q/zz is shadowed by the /q mount (Starlette sends it every /q/zz request), but when a
    # root path is set and the path lacks it: the mount's routes then see the whole path.
    assert ODD_TEMPLATES - {"/q/zz"} | {None} <= named <= ODD_TEMPLATES | {None}
    scope = {"type": "http", "method": "POST", "path": root_path + "/q/zz",
             "root_path": root_path, "app": odd_app}
    assert index.name(scope) == _the_libraries(scope) == "/q/{z}"
    scope = {**scope, "method": "PUT", "path": root_path + "/o/b"}
    assert index.name(scope) == _the_libraries(scope) == "/o/{a}"
