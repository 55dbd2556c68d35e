"""uvicorn's HTTP/1.1 protocol (httptools) with a deadline and a size limit for a request's
head: its request line and headers.

uvicorn bounds neither: a connection that sends its headers a byte a second stays open for as
long as the client likes (a "slowloris"), and one that sends megabytes of headers has them all
buffered. Here the head must arrive within HEADER_TIMEOUT seconds, counted from the moment the
connection opens (for its first request) or from the first byte of a later request on a kept-
alive connection (the wait between requests is uvicorn's own keep-alive timeout); otherwise the
connection is closed. A head that grows past MAX_HEADER_BYTES is answered 431 and the
connection closed. And a worker keeps at most MAX_CONNECTIONS connections open: one more is
closed as soon as it is accepted, so the heads a worker holds are bounded in all. Each is
counted in bank_http_request_heads_refused_total.

Nothing else changes: once the head is in, uvicorn handles the request exactly as before.
cli.py hands this class to uvicorn (its `http` option), in every worker.
"""

import asyncio
import json

from prometheus_client import Counter
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bank_api.api import security_headers
from bank_api.api.problems import PROBLEM_JSON, problem_body
from bank_api.core.config import get_settings

HEADS_REFUSED = Counter(
    "bank_http_request_heads_refused",
    "Connections closed before a request's head (request line and headers) was complete: "
    "too slow (header_timeout), too large (header_too_large), or one connection too many "
    "(too_many_connections)",
    ["reason"],
)


class BoundedHeadProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState,
                 app_state: dict, _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout = settings.header_timeout
        self.max_header_bytes = settings.max_header_bytes
        self.max_connections = settings.max_connections
        self.in_head = False  # between a request's first byte (or the connection) and its head
        self.head_started = 0.0
        self.head_bytes = 0
        self.head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:  # this one included
            HEADS_REFUSED.labels("too_many_connections").inc()
            transport.close()
            return
        self.in_head, self.head_started = True, self.loop.time()
        self._arm_deadline()  # even if not one byte ever comes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.in_head:  # a later request on a kept-alive connection
            self.in_head, self.head_started, self.head_bytes = True, self.loop.time(), 0

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._disarm_deadline()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # After parsing: a head that arrived whole in this chunk (the usual case) costs no
        # timer, and only what is still part of an unfinished head counts against the size.
        if self.in_head and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > self.max_header_bytes:
                self._disarm_deadline()
                HEADS_REFUSED.labels("header_too_large").inc()
                self._refuse_431()
            elif self.head_deadline is None:
                self._arm_deadline()

    def _arm_deadline(self) -> None:
        self.head_deadline = self.loop.call_at(self.head_started + self.header_timeout,
                                               self._head_too_slow)

    def _disarm_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if not self.transport.is_closing():
            HEADS_REFUSED.labels("header_timeout").inc()
            self.transport.close()

    def _refuse_431(self) -> None:
        # Written here, not by the app, which never sees this request: the API's problem
        # (without a request id, whose header was never read) and its security headers.
        body = json.dumps(problem_body(
            431, "headers_too_large", "Request header fields too large",
            f"The request line and headers must fit in {self.max_header_bytes} bytes.")).encode()
        headers = [(b"content-type", PROBLEM_JSON.encode()),
                   (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        security_headers.add(headers, "")
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                             + b"".join(name + b": " + value + b"\r\n" for name, value in headers)
                             + b"\r\n" + body)
        self.transport.close()
