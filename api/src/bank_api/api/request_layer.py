"""The one ASGI layer around the app: every cross-cutting concern of a request, in one pass.

In order, for each HTTP request:
- Its id: the client's `X-Request-ID` (sanitised, observability/correlation.py) or a new one.
  It goes back in the answer's `X-Request-ID`, in every problem body, on every log line
  written for the request, and on the request's span, so one id finds the request in Locust,
  the logs and the traces.
- Its route template, matched once (api/route_name.py) and used by everything below.
- The HTTP metrics (api/http_metrics.py) see every answer: shed requests, 413s and injected
  faults included; /metrics itself is not measured.
- Load shedding (api/load_shedding.py), except for health checks and /metrics.
- The body limit (api/body_limit.py): a 413 before a body is read.
- The fault switch (api/fault_injection.py): injected latency holds a slot like real
  slowness.
- Security headers (api/security_headers.py) and the request id on every answer.
- An unexpected exception becomes the 500 problem here, inside the request's context, so its
  log line and traceback carry the request and trace ids. (Starlette's own handler for it runs
  outside every middleware, after the context is gone.)
- One log line per request (ACCESS_LOG): method, route template, status, duration, client;
  none for health checks and scrapes, which come every few seconds and say nothing new.
- Its server span (observability/tracing.py), when tracing is on: not for health checks and
  /metrics, and, when the sampler leaves the request out, no database spans either.

One layer, not one middleware per concern: each layer costs a call, a send wrapper called for
every message and its own copy of the request's bookkeeping (bankops/bench/PROFILE.md).
"""

import logging
import time
from contextlib import nullcontext

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bank_api.api import security_headers
from bank_api.api.body_limit import BodyLimit
from bank_api.api.fault_injection import FaultSwitch
from bank_api.api.http_metrics import HttpMetrics
from bank_api.api.load_shedding import LoadShedder, overloaded
from bank_api.api.paths import NOT_MEASURED, NOT_SHED, NOT_TRACED
from bank_api.api.problems import internal_error
from bank_api.api.route_name import route_name
from bank_api.observability import correlation, domain_events, tracing
from bank_api.observability.correlation import RequestInfo

HEADER = "X-Request-ID"
_RAW_HEADER = HEADER.lower().encode()
access_log = logging.getLogger("bank_api.access")


class RequestLayer:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics | None, shedder: LoadShedder,
                 body_limit: BodyLimit, faults: FaultSwitch, log_requests: bool,
                 tracing: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.shedder = shedder
        self.body_limit = body_limit
        self.faults = faults
        self.log_requests = log_requests
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path, method = scope["path"], scope["method"]
        request_id_header = content_length = chunked = trace_context = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id_header = value
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                chunked = value
            elif name in tracing.CONTEXT_HEADERS:
                trace_context = tracing.add_context_header(trace_context, name, value)
        request_id = correlation.request_id_from(
            request_id_header.decode("latin-1") if request_id_header is not None else None)
        route = route_name(scope)
        info = RequestInfo(request_id, route)
        token = correlation.CURRENT.set(info)
        routine = path.startswith(NOT_TRACED)
        span = None
        if self.tracing and not routine:
            span = tracing.start_server_span(scope, route, request_id, trace_context)
        measured = self.metrics is not None and not path.startswith(NOT_MEASURED)
        handler = route or "none"
        if measured:
            self.metrics.started(method, handler)
        status = 500
        response_started = False
        response_bytes = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started, response_bytes
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                # A copy: the list may be the Response object's own.
                headers = message["headers"] = list(message.get("headers", ()))
                headers.append((_RAW_HEADER, request_id.encode()))
                security_headers.add(headers, path)
                if measured:
                    response_bytes = _content_length(headers)
            await send(message)

        # A sampled request's span is the current span, the parent of every span inside it.
        # Paths that are not traced and requests the sampler left out get no database spans
        # and no steps (their spans would be dropped anyway; skipping the instrumentation saves
        # a tenth of a millisecond per request); a span no one keeps need not be current.
        if span is not None and span.is_recording():
            context = trace.use_span(span, record_exception=False, set_status_on_exception=False)
        else:
            context = suppress_instrumentation() if self.tracing else nullcontext()
        error = None
        try:
            with context:
                try:
                    await self._answer(scope, receive, send_with_headers, route,
                                       content_length, chunked is not None)
                except Exception as exc:
                    error = exc
                    domain_events.unhandled_error(error)
                    if response_started:
                        raise  # too late for a 500 problem; the server closes the connection
                    await internal_error(Request(scope))(scope, receive, send_with_headers)
                finally:
                    # Still inside the span: the log line carries its ids, the latency its
                    # exemplar.
                    seconds = time.perf_counter() - started
                    if measured:
                        self.metrics.finished(method, handler, status, seconds,
                                              _int(content_length), response_bytes,
                                              tracing.exemplar(span))
                    if self.log_requests and not routine:
                        _log_request(scope, info, status, seconds)
        finally:
            if span is not None:
                tracing.end_server_span(span, status, error)
            correlation.CURRENT.reset(token)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, route: str | None,
                      content_length: bytes | None, chunked: bool) -> None:
        """Shedding, the body limit and the fault switch, then the app."""
        shed = not scope["path"].startswith(NOT_SHED)
        if shed and not await self.shedder.admit():
            await overloaded()(scope, receive, send)
            return
        try:
            if content_length is not None and self.body_limit.declared_too_large(content_length):
                await self.body_limit.too_large()(scope, receive, send)
                return
            if chunked:
                receive, send = self.body_limit.guard(scope, receive, send)
            fault = await self.faults.inject(scope, route)
            if fault is not None:
                await fault(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            if shed:
                self.shedder.release()


def _int(value: bytes | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


def _content_length(raw_headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in raw_headers:
        if name == b"content-length":
            return _int(value)
    return 0


def _log_request(scope: Scope, info: RequestInfo, status: int, seconds: float) -> None:
    client = scope.get("client")
    route = info.route or "none"
    access_log.info(
        "%s %s %d in %.1f ms", scope["method"], route, status, seconds * 1000,
        extra={"event": "request", "method": scope["method"], "status": status,
               "duration_ms": round(seconds * 1000, 2),
               "client": client[0] if client else None},
    )
