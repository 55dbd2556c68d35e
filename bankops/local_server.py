"""A small HTTP server on 127.0.0.1 in a thread of this process: what the trace receiver
(bankops/otlp_receiver.py) and the native stack's log look-up (bankops/stack/log_query.py)
are built on."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import urlsplit

from bankops.processes import LOOPBACK

TEXT = "text/plain; charset=utf-8"


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that answers in one call and writes no access log (the stack's logs
    are its services'; one line per span export would drown them). GET /ready answers
    "ready", as Tempo's and Loki's do; any other GET is answer()'s."""

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/ready":
            self.reply(200, TEXT, b"ready")
        else:
            self.reply(*self.answer())

    def answer(self) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET other than /ready."""
        return 404, TEXT, b"not found"

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class LocalServer:
    """Serves `handler` on 127.0.0.1:`port` (0: any free port) from start() to stop(), or
    within a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self._server = ThreadingHTTPServer((LOOPBACK, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
