"""A small OTLP/HTTP trace receiver: what an OpenTelemetry collector does first, decoded with
the protocol's own classes (opentelemetry-proto). It keeps the latest spans in memory and can
append every span to a JSON-lines file.

The tests point the API's OTEL_EXPORTER_OTLP_ENDPOINT at it to check its spans on the wire;
the native stack and the benchmark use it where compose has Alloy and Tempo.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status

PATH = "/v1/traces"


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: str  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_INTERNAL...
    status: str  # STATUS_CODE_UNSET, STATUS_CODE_OK, STATUS_CODE_ERROR
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    duration_ns: int = 0
    start_ns: int = 0  # unix nanoseconds
    children: list[Span] = field(default_factory=list, repr=False)


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(pairs) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(
                    name=span.name,
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    kind=SpanProto.SpanKind.Name(span.kind),
                    status=Status.StatusCode.Name(span.status.code),
                    attributes=_attributes(span.attributes),
                    events=[(event.name, _attributes(event.attributes))
                            for event in span.events],
                    resource=resource,
                    duration_ns=span.end_time_unix_nano - span.start_time_unix_nano,
                    start_ns=span.start_time_unix_nano,
                ))
    return spans


class OtlpReceiver:
    """Listens on 127.0.0.1:`port` (0: any free port) for OTLP/HTTP protobuf trace exports;
    keeps the last `keep` spans, and appends each to `jsonl` when given."""

    def __init__(self, port: int = 0, *, keep: int = 100_000, jsonl: Path | None = None) -> None:
        self.spans: deque[Span] = deque(maxlen=keep)
        self.count = 0  # spans received in all
        self._jsonl = jsonl.open("a", encoding="utf-8") if jsonl else None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != PATH:
                    self.send_error(404)
                    return
                try:
                    spans = decode(body)
                except Exception:  # noqa: BLE001 - any undecodable body is the sender's error
                    self.send_error(400, "not an ExportTraceServiceRequest")
                    return
                receiver._add(spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:  # one line per export would drown the logs
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._jsonl:
            self._jsonl.close()

    def _add(self, spans: list[Span]) -> None:
        with self._lock:
            self.spans.extend(spans)
            self.count += len(spans)
            if self._jsonl:
                for span in spans:
                    record = asdict(span)
                    del record["children"]
                    self._jsonl.write(json.dumps(record) + "\n")
                self._jsonl.flush()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def received(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def traces(self) -> dict[str, list[Span]]:
        """Spans by trace id, each span linked to its children."""
        spans = self.received()
        by_id = {span.span_id: span for span in spans}
        for span in spans:
            span.children = []
        for span in spans:
            if span.parent_span_id in by_id:
                by_id[span.parent_span_id].children.append(span)
        traces: dict[str, list[Span]] = {}
        for span in spans:
            traces.setdefault(span.trace_id, []).append(span)
        return traces
