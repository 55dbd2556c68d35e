"""From an id a user pastes (a trace id, or a request id from a problem body or a log line)
to that request's spans and log lines, or to the reason there are none.

The id is first looked for in the API's log lines, which carry both ids (docs/logs.md): a line
whose `trace_id` is the id makes it a trace id; a line whose `request_id` is the id gives the
trace id (when the request was sampled). Then Tempo is asked for the trace, and the lines of
every request in it are gathered. A trace id Tempo knows is shown even when no line is found.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bankops.otlp_receiver import Span
from bankops.terminal.backends import Unreachable
from bankops.terminal.loki import LogLine, Loki
from bankops.terminal.tempo import Tempo

# A request's spans reach Tempo after the API's batch exporter sends them (every 5 s,
# OTEL_BSP_SCHEDULE_DELAY) and the collector forwards them: give it this long after the line.
FLUSH_S = 15
TRACE_ID = re.compile(r"[0-9a-f]{32}")
# What the API keeps of a client's X-Request-ID (observability/request_record.py).
ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class StoryError(Exception):
    """The request's story cannot be told: the message says why and what to do, and `lines`
    holds the log lines found on the way (shown anyway)."""

    def __init__(self, message: str, lines: list[LogLine] | None = None) -> None:
        super().__init__(message)
        self.lines = lines or []


class UnknownId(StoryError):
    pass


class NotSampled(StoryError):
    def __init__(self, request_id: str, lines: list[LogLine]) -> None:
        super().__init__(
            f"request {request_id} was not traced: the API samples a share of requests "
            "(OTEL_TRACES_SAMPLER_ARG in .env; parentbased_always_on traces every one). "
            "Its log lines are below.", lines)


class NotFlushed(StoryError):
    def __init__(self, trace_id: str, age_s: float, lines: list[LogLine]) -> None:
        wait = max(1, round(FLUSH_S - age_s))
        super().__init__(
            f"trace {trace_id} is not in Tempo yet: its request ended {age_s:.0f} s ago and "
            f"the API sends its spans every 5 s. Try again in a few seconds: it should be "
            f"there within {wait} s.", lines)


class Lost(StoryError):
    def __init__(self, trace_id: str, lines: list[LogLine]) -> None:
        super().__init__(
            f"trace {trace_id} is in the API's log but not in Tempo: its spans were not "
            "delivered (bank_spans_dropped_total counts those the API could not send) or are "
            "past Tempo's retention.", lines)


@dataclass
class Story:
    trace_id: str
    spans: list[Span]
    lines: list[LogLine]
    request_ids: list[str]
    logs_error: str | None = None  # Loki could not be read: the trace is shown without lines


def tell(asked: str, tempo: Tempo, loki: Loki, *, within_s: float,
         now: float | None = None) -> Story:
    now = time.time() if now is None else now
    start_ns, end_ns = int((now - within_s) * 1e9), int((now + 60) * 1e9)
    logs_failure: Unreachable | None = None
    try:
        lines = loki.lines_with(asked, start_ns, end_ns)
    except Unreachable as error:
        if not TRACE_ID.fullmatch(asked):
            raise  # a request id needs the logs to be resolved
        lines, logs_failure = [], error
    trace_id = _trace_id(asked, lines)
    if trace_id is None:
        if lines:
            raise NotSampled(asked, lines)
        raise UnknownId(f"unknown id {asked}: no API log line in the last {_period(within_s)} "
                        "carries it (a request id is found through its lines; --within looks "
                        "further back).")
    spans = tempo.trace(trace_id)
    if spans is None and logs_failure:
        raise logs_failure  # neither says anything: the logs might have
    if spans is None:
        own = [line for line in lines if line.get("trace_id") == trace_id]
        if not own:
            raise UnknownId(f"unknown id {asked}: Tempo has no such trace and no API log line "
                            f"in the last {_period(within_s)} carries it (--within looks further "
                            "back).")
        age = now - own[-1].time_ns / 1e9
        raise (NotFlushed(trace_id, age, lines) if age < FLUSH_S else Lost(trace_id, lines))
    request_ids = sorted({str(s.attributes["http.request.id"]) for s in spans
                          if "http.request.id" in s.attributes}
                         | {str(line.get("request_id")) for line in lines
                            if line.get("trace_id") == trace_id and line.get("request_id")})
    if logs_failure is None:
        lines = _lines_of(loki, asked, trace_id, request_ids, lines, start_ns, end_ns)
    return Story(trace_id, spans, lines, request_ids,
                 str(logs_failure) if logs_failure else None)


def _trace_id(asked: str, lines: list[LogLine]) -> str | None:
    if any(line.get("trace_id") == asked for line in lines):
        return asked
    for line in lines:
        if line.get("request_id") == asked and line.get("trace_id"):
            return str(line.get("trace_id"))
    if not lines and TRACE_ID.fullmatch(asked):
        return asked  # Tempo may know it though the logs do not (older than --within)
    return None


def _lines_of(loki: Loki, asked: str, trace_id: str, request_ids: list[str],
              found: list[LogLine], start_ns: int, end_ns: int) -> list[LogLine]:
    """Every line of the trace's requests (each carries its request id, docs/logs.md) or
    with its trace id, once, in time order."""

    def ours(line: LogLine) -> bool:
        return line.get("trace_id") == trace_id or line.get("request_id") in request_ids

    lines = {(line.time_ns, line.raw): line for line in found if ours(line)}
    for request_id in request_ids:
        if request_id != asked:  # the asked id's lines came with the first look-up
            lines |= {(line.time_ns, line.raw): line
                      for line in loki.lines_with(request_id, start_ns, end_ns) if ours(line)}
    return sorted(lines.values(), key=lambda line: line.time_ns)


def _period(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"
