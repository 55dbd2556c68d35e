"""The one ASGI layer around the app: every cross-cutting concern of a request, in four steps.

1. **Begin** (`_begin`): the request's id (the client's `X-Request-ID`, sanitised, or a new
   one), its route template (api/route_index.py, matched once), its record
   (observability/request_record.py), its server span when tracing is on
   (observability/tracing.py) and the in-progress gauge. What the layer does for the route
   comes from one policy (api/paths.py): health checks and /metrics are not shed, faulted,
   traced or logged, and /metrics is not measured.
2. **Admit** (`_admit`): load shedding (api/load_shedding.py), then the body limit
   (api/body_limit.py: a 413 before a body is read), then the fault switch
   (api/fault_injection.py: injected latency holds a slot like real slowness).
3. **Answer**: the app answers. Every answer gets the request id and the security headers
   (`_Exchange.send`, api/security_headers.py). An unexpected exception becomes the 500
   problem here (`_fail`), inside the request's context, so its log line and traceback carry
   the request and trace ids. (Starlette's own handler for it runs outside every middleware,
   after the context is gone.)
4. **Finish** (`_finish`): the record is emitted once: the HTTP and domain metrics (with the
   trace as an exemplar), the request's one log line, its span's outcome; then the span ends.

One layer, not one middleware per concern: each layer costs a call, a send wrapper called for
every message and its own copy of the request's bookkeeping (bankops/bench/PROFILE.md).
"""

import time
from contextlib import AbstractContextManager, nullcontext
from contextvars import Token

from opentelemetry import trace
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bank_api.api import paths, security_headers
from bank_api.api.body_limit import BodyLimit
from bank_api.api.fault_injection import FaultSwitch
from bank_api.api.http_metrics import HttpMetrics
from bank_api.api.load_shedding import LoadShedder, overloaded
from bank_api.api.problems import internal_error
from bank_api.api.route_index import route_index
from bank_api.observability import domain_metrics, events, request_record, tracing
from bank_api.observability.request_record import CURRENT, RequestRecord

HEADER = "X-Request-ID"
_RAW_HEADER = HEADER.lower().encode()


class _Head:
    """What the layer reads from the request's headers, in one pass over them."""

    __slots__ = ("request_id", "content_length", "chunked", "trace_context")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.request_id = self.content_length = self.trace_context = None
        self.chunked = False
        for name, value in headers:
            if name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = value
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name in tracing.CONTEXT_HEADERS:
                self.trace_context = tracing.add_context_header(self.trace_context, name, value)


class _Exchange:
    """One request in the layer: its record, span and policy, and the `send` the app answers
    through (it notes the status and size, and adds the request id and security headers)."""

    __slots__ = ("record", "span", "policy", "path", "downstream", "response_started")

    def __init__(self, record: RequestRecord, span: trace.Span | None, policy: paths.Policy,
                 path: str, downstream: Send) -> None:
        self.record, self.span, self.policy, self.path = record, span, policy, path
        self.downstream = downstream
        self.response_started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.record.status, self.response_started = message["status"], True
            # A copy: the list may be the Response object's own.
            headers = message["headers"] = list(message.get("headers", ()))
            headers.append((_RAW_HEADER, self.record.request_id.encode()))
            security_headers.add(headers, self.path)
            self.record.response_bytes = _content_length(headers)
        await self.downstream(message)

    def span_context(self) -> AbstractContextManager:
        """A sampled request's span is the current span, the parent of every span inside it.
        A span no one keeps need not be current: without a recording current span, the
        steps and the SQL statements make no spans (tracing.step, tracing.sql_span), which
        would be dropped anyway."""
        if self.span is not None and self.span.is_recording():
            return trace.use_span(self.span, record_exception=False,
                                  set_status_on_exception=False)
        return nullcontext()

    def end_span(self, error: BaseException | None) -> None:
        span = self.span
        if span is None:
            return
        if span.is_recording():
            tracing.end_server_span(span, self.record.status, error,
                                    self.record.span_attributes(), self.record.span_event())
        else:
            span.end()


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
        exchange, head, token = self._begin(scope, send)
        error = None
        try:
            with exchange.span_context():
                try:
                    await self._admit(scope, receive, exchange, head)
                except Exception as exc:
                    error = exc
                    await self._fail(scope, receive, exchange, exc)
                finally:
                    # Still inside the span: the log line carries its ids, the latency its
                    # exemplar.
                    self._finish(exchange)
        finally:
            exchange.end_span(error)
            CURRENT.reset(token)

    def _begin(self, scope: Scope, send: Send) -> tuple[_Exchange, _Head, Token]:
        """The request's record, current from here on (whatever is logged from now on, the
        trace context's parsing included, is the request's), its span and its gauge."""
        head = _Head(scope["headers"])
        method = scope["method"]
        route = route_index(scope["app"]).name(scope)
        client = scope.get("client")
        record = RequestRecord(request_record.request_id_from(head.request_id), route, method,
                               client[0] if client else None, time.perf_counter())
        record.request_bytes = _int(head.content_length)
        token = CURRENT.set(record)
        policy = paths.policy(route)
        span = None
        if self.tracing and policy.traced:
            span = tracing.start_server_span(method, route, head.trace_context)
            if span.is_recording():
                span.set_attributes(_http_attributes(scope, record))
        if self.metrics is not None and policy.measured:
            self.metrics.started(method, route or "none")
        return _Exchange(record, span, policy, scope["path"], send), head, token

    async def _admit(self, scope: Scope, receive: Receive, exchange: _Exchange,
                     head: _Head) -> None:
        """Load shedding, then the body limit and the fault switch, then the app."""
        shed = exchange.policy.shed
        if shed and not await self.shedder.admit():
            await overloaded()(scope, receive, exchange.send)
            return
        try:
            await self._answer(scope, receive, exchange, head)
        finally:
            if shed:
                self.shedder.release()

    async def _answer(self, scope: Scope, receive: Receive, exchange: _Exchange,
                      head: _Head) -> None:
        send = exchange.send
        if head.content_length is not None and self.body_limit.declared_too_large(
                head.content_length):
            await self.body_limit.too_large()(scope, receive, send)
            return
        if head.chunked:
            receive, send = self.body_limit.guard(scope, receive, send)
        if exchange.policy.faulted:
            fault = await self.faults.inject(scope, exchange.record.route)
            if fault is not None:
                await fault(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _fail(self, scope: Scope, receive: Receive, exchange: _Exchange,
                    error: Exception) -> None:
        """An exception no handler answered: logged with its traceback, answered with the
        500 problem if the answer has not started (else the server closes the connection)."""
        events.unhandled_error(error)
        if exchange.response_started:
            raise error
        await internal_error(Request(scope))(scope, receive, exchange.send)

    def _finish(self, exchange: _Exchange) -> None:
        record, policy = exchange.record, exchange.policy
        seconds = record.seconds()
        if self.metrics is not None and policy.measured:
            self.metrics.finished(record, seconds, tracing.exemplar(exchange.span))
            domain_metrics.count(record)
        if self.log_requests and policy.traced:
            record.log_line(seconds)


def _int(value: bytes | None) -> int:
    return int(value) if value is not None and value.isdigit() else 0


def _content_length(raw_headers: list[tuple[bytes, bytes]]) -> int:
    for name, value in raw_headers:
        if name == b"content-length":
            return _int(value)
    return 0


def _http_attributes(scope: Scope, record: RequestRecord) -> dict[str, str | int]:
    """The server span's HTTP attributes (OpenTelemetry's semantic conventions), built only
    for a span the sampler keeps."""
    attributes = {"http.request.method": record.method, "url.scheme": scope.get("scheme", "http"),
                  "url.path": scope["path"], "http.request.id": record.request_id}
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    host, port = scope.get("server") or (None, None)
    if host:
        attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
    if record.route is not None:
        attributes["http.route"] = record.route
    return attributes
