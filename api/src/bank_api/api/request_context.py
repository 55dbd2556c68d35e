"""The outermost layer of the API's own: each request's id, its log line, and the 500 problem
for an error nothing else caught.

- The request id is the client's `X-Request-ID` (sanitised, observability/correlation.py) or a
  new one; it goes back in the answer's `X-Request-ID`, in every problem body, on every log
  line written for the request, and on the request's span, so one id finds the request in
  Locust, the logs and the traces.
- One log line per request (ACCESS_LOG): method, route template, status, duration, client;
  none for health checks and scrapes, which come every few seconds and say nothing new.
- An unexpected exception becomes the 500 problem here, inside the request's context, so its
  log line and traceback carry the request and trace ids. (Starlette's own handler for it runs
  outside every middleware, after the context is gone.)
- Paths that are not traced (health checks, /metrics), and requests whose trace is not
  sampled, get no database spans either.
"""

import logging
import time

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bank_api.api.paths import NOT_TRACED
from bank_api.api.problems import internal_error
from bank_api.api.route_name import route_name
from bank_api.observability import correlation, domain_events
from bank_api.observability.correlation import RequestInfo

HEADER = "X-Request-ID"
access_log = logging.getLogger("bank_api.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, log_requests: bool, tracing: bool) -> None:
        self.app = app
        self.log_requests = log_requests
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = correlation.request_id_from(_header(scope, b"x-request-id"))
        info = RequestInfo(request_id, route_name(scope))
        token = correlation.CURRENT.set(info)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("http.request.id", request_id)
            if info.route is not None:
                # FastAPI names the span when its router picks the route; an answer given
                # before that (an injected fault, a shed request, a 413) is named here.
                span.update_name(f"{scope['method']} {info.route}")
                span.set_attribute("http.route", info.route)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        routine = scope["path"].startswith(NOT_TRACED)
        try:
            # No database spans where there is no trace to put them in: paths that are not
            # traced, and requests the sampler left out (their spans would be dropped anyway;
            # skipping the instrumentation saves a tenth of a millisecond per request).
            if routine or (self.tracing and not span.is_recording()):
                with suppress_instrumentation():
                    await self.app(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as error:
            domain_events.unhandled_error(error)
            span.record_exception(error)
            if response_started:
                raise  # too late for a 500 problem; the server closes the connection
            await internal_error(Request(scope))(scope, receive, send_with_id)
        finally:
            if self.log_requests and not routine:
                _log_request(scope, info, status, time.perf_counter() - started)
            correlation.CURRENT.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _log_request(scope: Scope, info: RequestInfo, status: int, seconds: float) -> None:
    client = scope.get("client")
    route = info.route or "none"
    access_log.info(
        "%s %s %d in %.1f ms", scope["method"], route, status, seconds * 1000,
        extra={"event": "request", "method": scope["method"], "status": status,
               "duration_ms": round(seconds * 1000, 2),
               "client": client[0] if client else None},
    )
