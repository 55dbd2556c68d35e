"""The trace receiver answers Tempo's trace-by-id look-up (bankops/otlp_receiver.py).

Spans are sent by OpenTelemetry's own SDK and OTLP/HTTP exporter, as the API sends them; what
the look-up answers is decoded with OTLP's TracesData (the wire format of Tempo's protobuf
answer) and compared with what the SDK recorded: ids, parents, times, attributes, events with
their times, status. A new receiver on the same JSON-lines file, with nothing in memory, finds
the trace in the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, StatusCode

from bankops.otlp_receiver import OtlpReceiver, _value

PROTOBUF = {"Accept": "application/protobuf"}
STATEMENT = "SELECT balance FROM accounts WHERE id = %(id)s FOR UPDATE"
ROOT_ATTRIBUTES = {"http.route": "/transfers", "http.response.status_code": 500,
                   "bank.amount": 12.5, "bank.replayed": False,
                   "bank.accounts": ["1", "2"]}
EVENT_ATTRIBUTES = {"exception.type": "OperationalError", "bank.attempt": 2}
EVENT_TIME = 1_700_000_000_123_456_789


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpReceiver]:
    """One for the module (each test sends its own trace): stopping one takes half a second."""
    jsonl = tmp_path_factory.mktemp("receiver") / "traces.jsonl"
    with OtlpReceiver(jsonl=jsonl) as running:
        yield running


def send_trace(receiver: OtlpReceiver) -> list[ReadableSpan]:
    """A server span with a SQL child, an event and an error, sent over OTLP/HTTP; the spans
    as the SDK recorded them."""
    recorded = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bank-api-test"}))
    provider.add_span_processor(SimpleSpanProcessor(recorded))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /transfers", kind=SpanKind.SERVER,
                                      attributes=ROOT_ATTRIBUTES,
                                      record_exception=False,
                                      set_status_on_exception=False) as root:
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={
                "db.system": "postgresql", "db.statement": STATEMENT}):
            pass
        root.add_event("retry", EVENT_ATTRIBUTES, timestamp=EVENT_TIME)
        root.set_status(StatusCode.ERROR, "the database went away")
    provider.shutdown()
    return list(recorded.get_finished_spans())


def plain(attributes) -> dict:
    """The SDK's attributes with its tuples as lists, as OTLP's arrays decode."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}


def hex_id(number: int, digits: int) -> str:
    return f"{number:0{digits}x}"


def test_a_trace_comes_back_as_the_sdk_sent_it(receiver: OtlpReceiver) -> None:
    sent = send_trace(receiver)
    trace_id = hex_id(sent[0].context.trace_id, 32)
    answer = httpx.get(f"{receiver.endpoint}/api/traces/{trace_id}", headers=PROTOBUF)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/protobuf"
    data = TracesData.FromString(answer.content)

    [resource_spans] = data.resource_spans
    resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "bank-api-test"
    got = {span.name: span for scope in resource_spans.scope_spans for span in scope.spans}
    assert set(got) == {"POST /transfers", "SELECT"}
    for expected in sent:
        span = got[expected.name]
        assert span.trace_id.hex() == trace_id
        assert span.span_id.hex() == hex_id(expected.context.span_id, 16)
        assert span.parent_span_id.hex() == (hex_id(expected.parent.span_id, 16)
                                             if expected.parent else "")
        assert span.start_time_unix_nano == expected.start_time
        assert span.end_time_unix_nano == expected.end_time
        assert {kv.key: _value(kv.value) for kv in span.attributes} == plain(expected.attributes)

    root, child = got["POST /transfers"], got["SELECT"]
    assert root.kind == SpanProto.SPAN_KIND_SERVER and child.kind == SpanProto.SPAN_KIND_CLIENT
    assert child.parent_span_id == root.span_id and root.parent_span_id == b""
    assert {kv.key: _value(kv.value) for kv in root.attributes} == ROOT_ATTRIBUTES
    assert {kv.key: _value(kv.value) for kv in child.attributes}["db.statement"] == STATEMENT
    [event] = root.events
    assert event.name == "retry" and event.time_unix_nano == EVENT_TIME
    assert {kv.key: _value(kv.value) for kv in event.attributes} == EVENT_ATTRIBUTES
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert root.status.message == "the database went away"
    assert child.status.code == Status.STATUS_CODE_UNSET and not child.events


def test_json_unless_protobuf_is_asked_for(receiver: OtlpReceiver) -> None:
    sent = send_trace(receiver)
    trace_id = hex_id(sent[0].context.trace_id, 32)
    answer = httpx.get(f"{receiver.endpoint}/api/traces/{trace_id.upper()}",
                       headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    spans = [span for batch in body["resourceSpans"] for scope in batch["scopeSpans"]
             for span in scope["spans"]]
    assert len(spans) == len(sent) == 2
    protobuf = httpx.get(f"{receiver.endpoint}/api/traces/{trace_id}", headers=PROTOBUF)
    assert body == MessageToDict(TracesData.FromString(protobuf.content))


def test_short_ids_are_left_padded_as_tempo_does(receiver: OtlpReceiver) -> None:
    provider = TracerProvider(id_generator=SmallIds())
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
    with provider.get_tracer("test").start_as_current_span("small"):
        pass
    provider.shutdown()
    answer = httpx.get(f"{receiver.endpoint}/api/traces/abc", headers=PROTOBUF)
    assert answer.status_code == 200, answer.text
    [span] = TracesData.FromString(answer.content).resource_spans[0].scope_spans[0].spans
    assert span.trace_id.hex() == "abc".rjust(32, "0")


class SmallIds(RandomIdGenerator):
    """An id generator whose trace id is 0xabc."""

    def generate_trace_id(self) -> int:
        return 0xABC

    def generate_span_id(self) -> int:
        return 0x1


@pytest.mark.parametrize(("trace_id", "status", "body"), [
    ("0" * 31 + "1", 404, "trace not found"),
    ("xyz", 400, "invalid trace id"),
    ("0" * 33, 400, "invalid trace id"),
    ("", 400, "invalid trace id"),
])
def test_unknown_and_invalid_ids(receiver: OtlpReceiver, trace_id: str, status: int,
                                 body: str) -> None:
    answer = httpx.get(f"{receiver.endpoint}/api/traces/{trace_id}", headers=PROTOBUF)
    assert (answer.status_code, answer.text) == (status, body)


def test_ready(receiver: OtlpReceiver) -> None:
    answer = httpx.get(f"{receiver.endpoint}/ready")
    assert (answer.status_code, answer.text) == (200, "ready")


def test_a_new_receiver_finds_the_trace_in_the_file(tmp_path: Path) -> None:
    jsonl = tmp_path / "traces.jsonl"
    with OtlpReceiver(jsonl=jsonl) as receiver:
        sent = send_trace(receiver)
        send_trace(receiver)  # another trace in the file, not to be returned
        trace_id = hex_id(sent[0].context.trace_id, 32)
        first = httpx.get(f"{receiver.endpoint}/api/traces/{trace_id}", headers=PROTOBUF)
    # A line of an older receiver (no event times, no status message) and a half-written one.
    with jsonl.open("a") as lines:
        lines.write(json.dumps({
            "name": "old", "trace_id": "f" * 32, "span_id": "1" * 16, "parent_span_id": "",
            "kind": "SPAN_KIND_INTERNAL", "status": "STATUS_CODE_UNSET", "attributes": {},
            "events": [["e", {}]], "resource": {}, "duration_ns": 5, "start_ns": 10}) + "\n")
        lines.write('{"trace_id": "' + trace_id + '", "na')

    with OtlpReceiver(jsonl=jsonl) as fresh:
        assert fresh.received() == []
        again = httpx.get(f"{fresh.endpoint}/api/traces/{trace_id}", headers=PROTOBUF)
        assert again.status_code == 200, again.text
        assert TracesData.FromString(again.content) == TracesData.FromString(first.content)
        assert [span.name for span in fresh.find(trace_id)] == ["SELECT", "POST /transfers"]

        old = httpx.get(f"{fresh.endpoint}/api/traces/{'F' * 32}", headers=PROTOBUF)
        [span] = TracesData.FromString(old.content).resource_spans[0].scope_spans[0].spans
        assert span.events[0].name == "e" and span.events[0].time_unix_nano == 0
        assert span.end_time_unix_nano == 15
