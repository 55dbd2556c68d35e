"""One trace by its id, from Tempo's HTTP API (GET /api/traces/<id>).

Asked for in protobuf: Tempo's answer is then its tempopb.Trace, whose one field (1, repeated
ResourceSpans) is OTLP's TracesData on the wire, so OpenTelemetry's own classes decode it (no
guessing at JSON renderings of ids and enums), into the spans the native stack's receiver
keeps (bankops/otlp_receiver.py), which answers the same request the same way.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from bankops.otlp_receiver import Span, decode
from bankops.terminal.backends import Backend, BackendError, setting

PROTOBUF = "application/protobuf"


class Tempo(Backend):
    def __init__(self, url: str | None = None) -> None:
        super().__init__("Tempo", url or setting("TEMPO_URL"))

    def trace(self, trace_id: str) -> list[Span] | None:
        """The trace's spans, or None when Tempo has no trace with this id."""
        response = self.get(f"/api/traces/{trace_id}", headers={"Accept": PROTOBUF})
        if response.status_code == 404:
            return None
        kind = response.headers.get("content-type", "")
        try:
            if PROTOBUF not in kind:
                raise DecodeError(kind)
            return decode(response.content, TracesData)
        except DecodeError:
            raise BackendError(f"Tempo at {self.url} did not answer a protobuf trace "
                               f"(Content-Type {kind or 'none'}): is it Tempo?") from None


def tree(spans: list[Span]) -> list[Span]:
    """The roots (spans whose parent is not in the trace), each linked to its children, all
    in start order."""
    by_id = {span.span_id: span for span in spans}
    roots = []
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        span.children = []
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        parent = by_id.get(span.parent_span_id)
        (parent.children if parent else roots).append(span)
    return roots
