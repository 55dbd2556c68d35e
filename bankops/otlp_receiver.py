"""A small OTLP/HTTP trace receiver: what an OpenTelemetry collector does first, decoded with
the protocol's own classes (opentelemetry-proto). It keeps the latest spans in memory and can
append every span to a JSON-lines file.

It also answers Tempo's trace-by-id look-up, `GET /api/traces/<trace id>`, from those spans
(the ones in memory, else the JSON-lines file), in Tempo's shape: protobuf when asked for
`application/protobuf` (Tempo's Trace, whose field 1 is OTLP's repeated ResourceSpans: the
same wire format as TracesData), else JSON; 404 "trace not found" as Tempo. `GET /ready`
answers 200 "ready". So the native stack serves the same look-ups as compose's Tempo, on its
port.

The tests point the API's OTEL_EXPORTER_OTLP_ENDPOINT at it to check its spans on the wire;
the native stack and the benchmark use it where compose has Alloy and Tempo.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status, TracesData
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

from bankops.local_server import TEXT, LocalServer, QuietHandler

PATH = "/v1/traces"
TRACE_PATH = "/api/traces/"  # Tempo's trace by id (its v1 path)
# Tempo takes ids of 1 to 32 hex digits, left-padded with zeros to 32.
TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")
PROTOBUF = "application/protobuf"


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
    event_times_ns: list[int] = field(default_factory=list)  # events[i] happened at [i]
    status_message: str = ""
    children: list[Span] = field(default_factory=list, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Span:
        """A span from its line in the JSON-lines file (older lines lack the newer fields)."""
        known = {f.name for f in fields(cls)} - {"children"}
        span = cls(**{k: v for k, v in record.items() if k in known})
        span.events = [(name, attributes) for name, attributes in span.events]
        return span

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(pairs) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _any_value(value: Any) -> AnyValue:
    """The reverse of _value."""
    if isinstance(value, bool):  # before int: a bool is an int
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        any_value = AnyValue()
        any_value.array_value.values.extend(_any_value(item) for item in value)
        return any_value
    if isinstance(value, dict):
        any_value = AnyValue()
        any_value.kvlist_value.values.extend(_key_values(value))
        return any_value
    return AnyValue()  # None: an empty value


def _key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_any_value(value)) for key, value in attributes.items()]


def decode(body: bytes, message: type[Message] = ExportTraceServiceRequest) -> list[Span]:
    """The spans of an export request, or of any message of the same shape (field 1, the
    ResourceSpans): TracesData, Tempo's Trace."""
    request = message()
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
                    event_times_ns=[event.time_unix_nano for event in span.events],
                    status_message=span.status.message,
                ))
    return spans


def _span_proto(span: Span) -> SpanProto:
    proto = SpanProto(
        trace_id=bytes.fromhex(span.trace_id),
        span_id=bytes.fromhex(span.span_id),
        parent_span_id=bytes.fromhex(span.parent_span_id),
        name=span.name,
        kind=SpanProto.SpanKind.Value(span.kind),
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=_key_values(span.attributes),
        status=Status(code=Status.StatusCode.Value(span.status), message=span.status_message),
    )
    # A line written before event times were kept has none: 0, OTLP's "unknown".
    times = span.event_times_ns if len(span.event_times_ns) == len(span.events) else []
    for index, (name, attributes) in enumerate(span.events):
        proto.events.add(name=name, attributes=_key_values(attributes),
                         time_unix_nano=times[index] if times else 0)
    return proto


def encode(spans: list[Span]) -> TracesData:
    """The spans as OTLP's TracesData, one ResourceSpans per resource."""
    by_resource: dict[str, ResourceSpans] = {}
    for span in spans:
        key = json.dumps(span.resource, sort_keys=True, default=str)
        if key not in by_resource:
            by_resource[key] = ResourceSpans(
                resource=Resource(attributes=_key_values(span.resource)),
                scope_spans=[ScopeSpans()])
        by_resource[key].scope_spans[0].spans.append(_span_proto(span))
    return TracesData(resource_spans=list(by_resource.values()))


def trace_answer(spans: list[Span], accept: str) -> tuple[str, bytes]:
    """Tempo's answer: (content type, body), protobuf if the client accepts it, else JSON."""
    data = encode(spans)
    if PROTOBUF in accept:
        return PROTOBUF, data.SerializeToString()
    return "application/json", MessageToJson(data).encode()


class OtlpReceiver(LocalServer):
    """Listens on 127.0.0.1:`port` (0: any free port) for OTLP/HTTP protobuf trace exports;
    keeps the last `keep` spans, and appends each to `jsonl` when given. Its `endpoint` is the
    value for OTEL_EXPORTER_OTLP_ENDPOINT (the SDK appends /v1/traces)."""

    def __init__(self, port: int = 0, *, keep: int = 100_000, jsonl: Path | None = None) -> None:
        self.spans: deque[Span] = deque(maxlen=keep)
        self.count = 0  # spans received in all
        self._jsonl_path = jsonl
        self._jsonl = jsonl.open("a", encoding="utf-8") if jsonl else None
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
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
                self.reply(200, "application/x-protobuf",
                           ExportTraceServiceResponse().SerializeToString())

            def answer(self) -> tuple[int, str, bytes]:
                return receiver._get(self.path, self.headers.get("Accept", ""))

        super().__init__(Handler, port)

    def stop(self) -> None:
        super().stop()
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

    def _get(self, url: str, accept: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET: Tempo's trace by id."""
        path = url.split("?", 1)[0]
        if not path.startswith(TRACE_PATH):
            return 404, TEXT, b"not found"
        trace_id = path[len(TRACE_PATH):]
        if not TRACE_ID.fullmatch(trace_id):
            return 400, TEXT, b"invalid trace id"
        spans = self.find(trace_id)
        if not spans:
            return 404, TEXT, b"trace not found"
        return 200, *trace_answer(spans, accept)

    def find(self, trace_id: str) -> list[Span]:
        """The trace's spans: the ones in memory, or else those in the JSON-lines file."""
        trace_id = trace_id.lower().rjust(32, "0")
        with self._lock:
            spans = [span for span in self.spans if span.trace_id == trace_id]
        if spans or self._jsonl_path is None or not self._jsonl_path.exists():
            return spans
        needle = trace_id.encode()
        with self._jsonl_path.open("rb") as lines:
            for line in lines:
                if needle not in line:  # most lines: no JSON parsing for them
                    continue
                try:
                    record = json.loads(line)
                except ValueError:  # a line being written right now
                    continue
                if record.get("trace_id") == trace_id:
                    spans.append(Span.from_record(record))
        return spans

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
