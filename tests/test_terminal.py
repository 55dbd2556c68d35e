"""`bank stat` and `bank trace` (bankops/terminal/) against real servers, without the stack.

`trace` reads a real OTLP receiver (the native stack's Tempo-shaped look-up), fed by
OpenTelemetry's own SDK and exporter as the API feeds it, and the native log look-up over a
log file of lines shaped as the API writes them. Each error case runs the installed console
script and checks its message and exit status; the output is checked through the tool's own
functions and on a real pseudo-terminal drawn by a terminal emulator. The live numbers of
`stat` need a Prometheus scraping a loaded API: tests/test_terminal_live.py.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from rich.console import Console

from bankops.otlp_receiver import OtlpReceiver
from bankops.processes import free_ports
from bankops.stack.log_query import LogQueryServer
from bankops.terminal import service_stats, stat_view, trace_view
from bankops.terminal.backends import BackendError, Unreachable
from bankops.terminal.loki import Loki
from bankops.terminal.prometheus import Prometheus
from bankops.terminal.request_story import (
    FLUSH_S,
    Lost,
    NotFlushed,
    NotSampled,
    UnknownId,
    tell,
)
from bankops.terminal.tempo import Tempo
from terminal_screen import run_in_terminal

BANK = str(Path(sys.executable).with_name("bank"))  # the installed console script
SELECT = "SELECT accounts.id, accounts.balance FROM accounts WHERE accounts.id = %(id)s FOR UPDATE"
INSERT = "INSERT INTO ledger_entries (account_id, amount) VALUES (%(account_id)s, %(amount)s)"


@dataclass
class Request:
    """One request as the API leaves it: spans at the receiver, lines in the log."""

    request_id: str
    trace_id: str
    span_names: list[str]
    lines: list[str]  # its own log lines, as written


@dataclass
class Backends:
    receiver: OtlpReceiver
    log: Path
    logs: LogQueryServer

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {"TEMPO_URL": self.receiver.endpoint,
                             "LOKI_URL": self.logs.endpoint, "NO_COLOR": "1",
                             "COLUMNS": "200"}

    def write(self, *records: dict) -> list[str]:
        lines = [json.dumps(record) for record in records]
        with self.log.open("a") as out:
            out.writelines(line + "\n" for line in lines)
        return lines


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    folder = tmp_path_factory.mktemp("terminal")
    log = folder / "api.log"
    log.touch()
    with OtlpReceiver(jsonl=folder / "traces.jsonl") as receiver, \
            LogQueryServer(log) as logs:
        yield Backends(receiver, log, logs)


def now_iso(offset_s: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset_s, UTC).isoformat()


def line(request_id: str, trace_id: str | None, **fields) -> dict:
    record = {"level": "INFO", "logger": "bank_api.request", "event": "request",
              "request_id": request_id, "timestamp": now_iso()} | fields
    if trace_id:
        record["trace_id"] = trace_id
    return record


def serve_transfer(backends: Backends, request_id: str) -> Request:
    """A refused transfer, traced: a server span, the service's span with two SQL statements
    and a refusal event, one failing statement; then its log lines and an unrelated one."""
    provider = TracerProvider(resource=Resource.create({"service.name": "bank-api"}))
    provider.add_span_processor(SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=f"{backends.receiver.endpoint}/v1/traces")))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /transfers", kind=SpanKind.SERVER, attributes={
            "http.request.id": request_id, "http.response.status_code": 409,
            "bank.operation": "transfer"}) as root:
        trace_id = f"{root.get_span_context().trace_id:032x}"
        with tracer.start_as_current_span("transfer") as service:
            with tracer.start_as_current_span("SELECT bank", kind=SpanKind.CLIENT, attributes={
                    "db.system": "postgresql", "db.statement": SELECT}):
                time.sleep(0.002)
            with tracer.start_as_current_span("INSERT bank", kind=SpanKind.CLIENT, attributes={
                    "db.system": "postgresql", "db.statement": INSERT}) as failing:
                failing.set_status(StatusCode.ERROR, "deadlock detected")
            service.add_event("refused", {"bank.refusal.code": "insufficient_funds"})
    provider.shutdown()
    lines = backends.write(
        line(request_id, None, logger="sqlalchemy.engine", level="WARNING",
             message="a library's line inside the request"),
        line(request_id, trace_id, status=409, code="insufficient_funds",
             message="POST /transfers 409: transfer refused insufficient_funds in 9.1 ms"))
    backends.write(line("someone-else", "0" * 31 + "1", message="another request"))
    return Request(request_id, trace_id,
                   ["POST /transfers", "transfer", "SELECT bank", "INSERT bank"], lines)


def recorded(renderable, width: int = 200) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def squeezed(text: str) -> str:
    """Without whitespace and the tree's drawing: a folded cell reads as one string."""
    return re.sub(r"[\s│├└─]", "", text)


# ------------------------------------------------------------------ trace: the story


def test_a_trace_id_tells_every_span_its_sql_events_errors_and_lines(backends: Backends):
    request = serve_transfer(backends, "req-trace-1")
    story = tell(request.trace_id, Tempo(backends.receiver.endpoint),
                 Loki(backends.logs.endpoint), within_s=600)
    assert sorted(s.name for s in story.spans) == sorted(request.span_names)
    assert story.request_ids == [request.request_id]
    assert [line.raw for line in story.lines] == request.lines  # its own, in time order

    text = recorded(trace_view.render(story))
    rows = [row for row in text.splitlines() if "█" in row]  # one waterfall row per span
    assert len(rows) == 4
    names = [re.sub(r"^[\s│├└─]*", "", row).split("  ")[0].rstrip(" ✗") for row in rows]
    assert names == ["POST /transfers", "transfer", "SELECT bank", "INSERT bank"]  # the tree
    assert rows[0].split()[-1] == "█" * trace_view.BAR_WIDTH  # the root spans the trace
    for statement in (SELECT, INSERT):
        assert squeezed(statement) in squeezed(text)
    assert "✗ error: deadlock detected" in text
    assert "⚑ refused" in text and "bank.refusal.code=insufficient_funds" in text
    assert "a library's line inside the request" in text
    assert "transfer refused insufficient_funds" in text
    assert "another request" not in text
    assert f"request {request.request_id}" in text


def test_a_request_id_resolves_to_the_same_story(backends: Backends):
    request = serve_transfer(backends, "client-chosen.42")
    env = backends.env
    by_trace = subprocess.run([BANK, "trace", request.trace_id], env=env, capture_output=True,
                              text=True, timeout=60)
    by_request = subprocess.run([BANK, "trace", request.request_id], env=env,
                                capture_output=True, text=True, timeout=60)
    assert by_trace.returncode == by_request.returncode == 0, by_trace.stderr
    assert by_request.stdout == by_trace.stdout
    assert request.trace_id in by_trace.stdout


def test_the_waterfall_on_a_real_terminal(backends: Backends):
    request = serve_transfer(backends, "req-terminal")
    screen = run_in_terminal([BANK, "trace", request.request_id], backends.env, columns=160)
    assert screen.returncode == 0, screen.text
    assert b"\x1b[" in screen.raw  # a terminal: rich drew in colour
    shown = [row for row in screen.lines if "█" in row]
    assert len(shown) == 4
    assert any(row.lstrip().startswith("POST /transfers") for row in shown)
    assert any("└─ INSERT bank ✗" in row for row in shown)
    assert screen.text.index("Log lines (2)") > screen.text.index("INSERT bank")


def test_waterfall_bars_are_placed_by_time():
    assert trace_view.bar(0, 100, 100, width=10) == "█" * 10
    assert trace_view.bar(50, 10, 100, width=10) == " " * 5 + "█"
    assert trace_view.bar(99, 0, 100, width=10) == " " * 9 + "█"  # never invisible


# ------------------------------------------------------------------ trace: what went wrong


def bank(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BANK, *args], env=env, capture_output=True, text=True, timeout=60)


def test_an_unknown_id_says_so_and_exits_1(backends: Backends):
    done = bank("trace", "f" * 32, env=backends.env)
    assert done.returncode == 1
    assert "unknown id ffffffffffffffffffffffffffffffff" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(UnknownId):
        tell("no-such-request", Tempo(backends.receiver.endpoint), Loki(backends.logs.endpoint),
             within_s=600)


def test_a_trace_not_flushed_yet_says_how_long_to_wait(backends: Backends):
    trace_id = "ab" * 16  # in the log, its spans not sent yet
    backends.write(line("req-just-now", trace_id, message="POST /accounts 201"))
    done = bank("trace", "req-just-now", env=backends.env)
    assert done.returncode == 1
    assert f"trace {trace_id} is not in Tempo yet" in done.stderr
    wait = int(re.search(r"Try again in a few seconds: it should be there within (\d+) s",
                         done.stderr)[1])
    assert 1 <= wait <= 15
    assert "POST /accounts 201" in done.stdout  # its lines are shown meanwhile
    with pytest.raises(NotFlushed):
        tell("req-just-now", Tempo(backends.receiver.endpoint), Loki(backends.logs.endpoint),
             within_s=600)
    # Long after its request, the trace is not late but lost: another message.
    with pytest.raises(Lost, match="in the API's log but not in Tempo"):
        tell("req-just-now", Tempo(backends.receiver.endpoint), Loki(backends.logs.endpoint),
             within_s=600, now=time.time() + FLUSH_S + 1)


def test_a_request_not_traced_shows_its_lines_and_exits_1(backends: Backends):
    backends.write(line("req-untraced", None, message="GET /accounts/7 200"))
    done = bank("trace", "req-untraced", env=backends.env)
    assert done.returncode == 1
    assert "request req-untraced was not traced" in done.stderr
    assert "GET /accounts/7 200" in done.stdout
    with pytest.raises(NotSampled):
        tell("req-untraced", Tempo(backends.receiver.endpoint), Loki(backends.logs.endpoint),
             within_s=600)


def test_unreachable_backends_are_named_and_exit_3(backends: Backends):
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    for args, env, name in [
        (["stat"], {"PROMETHEUS_URL": closed}, "Prometheus"),
        (["trace", "req-terminal"], {"LOKI_URL": closed}, "Loki"),
        (["trace", "f" * 32], {"TEMPO_URL": closed}, "Tempo"),
        (["trace", "f" * 32], {"LOKI_URL": closed}, "Loki"),  # unknown to Tempo: logs needed
    ]:
        done = bank(*args, env=backends.env | env)
        assert done.returncode == 3, (args, done.stderr)
        assert f"error: {name} is not reachable at {closed} (connection refused)" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_server_that_never_answers_is_a_timeout_not_a_hang():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        prometheus = Prometheus(f"http://127.0.0.1:{silent.getsockname()[1]}")
        prometheus.timeout = 0.5
        with pytest.raises(BackendError, match=r"did not answer /api/v1/query in 0\.5 s"):
            prometheus.instant("up", time.time())


def test_a_trace_is_shown_when_only_the_logs_are_unreachable(backends: Backends):
    request = serve_transfer(backends, "req-no-loki")
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    done = bank("trace", request.trace_id, env=backends.env | {"LOKI_URL": closed})
    assert done.returncode == 3
    assert "INSERT bank" in done.stdout
    assert f"Log lines: Loki is not reachable at {closed}" in done.stdout


def test_bad_arguments_are_usage_errors(backends: Backends):
    for args in (["trace", "has space"], ["trace", "x", "--within", "soon"],
                 ["stat", "--since", "15 minutes"], ["stat", "--window", "-1m"]):
        done = bank(*args, env=backends.env)
        assert done.returncode == 2, args
        assert "Usage: bank" in done.stderr and "Traceback" not in done.stderr


def test_every_command_has_help():
    for args in ([], ["stat"], ["trace"]):
        done = subprocess.run([BANK, *args, "--help"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0
        assert "Usage: bank" in done.stdout and "Exit status" in done.stdout


# ------------------------------------------------------------------ stat: offline parts


def test_durations_are_prometheus_durations():
    assert service_stats.seconds("90s") == 90
    assert service_stats.seconds("1h30m") == 5400
    for bad in ("15", "1.5m", "m", "15 m"):
        with pytest.raises(ValueError):
            service_stats.seconds(bad)


def test_a_path_finds_its_route_template():
    known = ["/accounts", "/accounts/{account_id}", "/accounts/{account_id}/transactions"]
    assert service_stats.match_route("/accounts/42", known) == "/accounts/{account_id}"
    assert service_stats.match_route("/accounts/42/transactions?limit=5", known) == \
        "/accounts/{account_id}/transactions"
    assert service_stats.match_route("/accounts/{account_id}", known) == \
        "/accounts/{account_id}"
    with pytest.raises(service_stats.UnknownRoute, match="Known routes: /accounts, "):
        service_stats.match_route("/accounts/42/owner", known)


def test_sparklines_scale_to_their_highest_point_and_leave_gaps():
    assert stat_view.sparkline([0, 1, 2, 4, 8]) == "▁▂▃▅█"
    assert stat_view.sparkline([math.nan, 0, 0]) == " ▁▁"
    assert stat_view.sparkline([-0.5, 0.5, 1]) == "▁▅█"  # an overspent budget: at the bottom
    assert stat_view.sparkline([]) == ""


def test_the_queries_can_be_printed_without_prometheus():
    done = subprocess.run([BANK, "stat", "/transfers", "--queries"], capture_output=True,
                          text=True, timeout=60, env=os.environ | {
                              "PROMETHEUS_URL": f"http://127.0.0.1:{free_ports(1)[0]}"})
    assert done.returncode == 0, done.stderr
    assert ('sum by (method) (rate(http_requests_total{job="bank-api", '
            'handler="/transfers"}[1m]))') in done.stdout


def test_unreachable_is_a_backend_error_with_a_hint():
    error = Unreachable("Tempo", "http://127.0.0.1:1", "connection refused")
    assert "--tempo URL or TEMPO_URL" in str(error)


def test_sparklines_take_only_the_room_the_numbers_leave():
    history = [math.nan] * 5 + [float(i) for i in range(16)]
    route = service_stats.Row(("/accounts/{account_id}/transactions",),
                              {"rate": 7.25, "p99": 0.0132}, {"rate": history, "p95": history})
    snapshot = service_stats.Snapshot(at=0, window="1m", since="15m", route=None,
                                      sections={"routes": [route]}, warnings=[])
    wide = recorded(stat_view.fitted("routes", stat_view.routes_table, snapshot, 200), width=200)
    assert "req/s, 15m" in wide and "p95, 15m" in wide
    assert re.search(r"\s{5}▁▁▂▂▃▃▄▄▅▅▆▆▇▇██ ", wide)  # every point, the gap before them too
    narrow = recorded(stat_view.fitted("routes", stat_view.routes_table, snapshot, 100), width=100)
    assert "req/s, 15m" not in narrow and "no room for its history on 100 columns" in narrow
    assert "/accounts/{account_id}/transactions" in wide
    assert re.search(r"^ /accounts/\{account_id\}/tr\S*\s+7\.25 ", narrow, re.M)  # folded
    for text in (wide, narrow):  # the numbers whole either way
        assert "7.25" in text and "13.2 ms" in text
    assert stat_view.resample([1, 3, math.nan, math.nan, 5, 7], 3)[0::2] == [2, 6]
    assert math.isnan(stat_view.resample([1, 3, math.nan, math.nan, 5, 7], 3)[1])
