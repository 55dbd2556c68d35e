"""`bank stat` and `bank trace` on the native stack under a Locust load, checked against
Prometheus queried directly, the trace receiver's own spans and the API's own log file.
The commands run as a user runs them (the console script, on a pseudo-terminal for --watch)
and through their functions."""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from bankops.stack.native import NativeStack, Ports
from bankops.terminal import service_stats, trace_view
from bankops.terminal.loki import Loki
from bankops.terminal.prometheus import Prometheus
from bankops.terminal.request_story import tell
from bankops.terminal.tempo import Tempo
from terminal_screen import run_in_terminal

pytestmark = pytest.mark.slow
BANK = str(Path(sys.executable).with_name("bank"))
WARM_UP_S = 120  # at most, until Prometheus scrapes Locust's first requests


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    with NativeStack(tmp_path_factory.mktemp("terminal-stack"), ports=Ports.free()) as running:
        yield running


def locust_routes(prometheus: Prometheus) -> set[str]:
    """The routes Locust called in the last minute (it names its requests by route)."""
    found = prometheus.instant("sum by (name) (increase(locust_requests_total[1m])) > 0",
                               time.time())
    return {series.labels["name"] for series in found}


@pytest.fixture(scope="module")
def loaded(stack: NativeStack) -> Iterator[NativeStack]:
    """Locust customers calling the API for the module's whole life."""
    log = (stack.log_dir / "locust.out").open("w")
    locust = subprocess.Popen(
        [sys.executable, "-m", "bank_loadtest", "--host", stack.api_url, "--web-port",
         str(stack.ports.locust), "--shape", "steady", "--users", "10", "--duration", "6m",
         "--run-dir", str(stack.work_dir / "run")], stdout=log, stderr=subprocess.STDOUT)
    prometheus = Prometheus(stack.prometheus_url)
    deadline = time.monotonic() + WARM_UP_S
    try:
        while not locust_routes(prometheus) and time.monotonic() < deadline:
            time.sleep(5)
        assert locust_routes(prometheus), (stack.log_dir / "locust.out").read_text()
        time.sleep(70)  # a whole rate window (1m) of customers: every kind of request in it
        assert len(locust_routes(prometheus)) >= 5, locust_routes(prometheus)
        yield stack
    finally:
        locust.terminate()
        locust.wait(timeout=60)
        log.close()


def env(stack: NativeStack) -> dict[str, str]:
    return os.environ | {"PROMETHEUS_URL": stack.prometheus_url, "TEMPO_URL": stack.tempo_url,
                         "LOKI_URL": stack.loki_url, "COLUMNS": "220", "NO_COLOR": "1"}


def bank(stack: NativeStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BANK, *args], env=env(stack), capture_output=True, text=True,
                          timeout=120)


def by_handler(prometheus: Prometheus, expr: str, at: float) -> dict[str, float]:
    return {s.labels["handler"]: s.value for s in prometheus.instant(expr, at)}


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# ------------------------------------------------------------------ stat


def test_stat_rates_agree_with_prometheus_for_every_route_locust_calls(loaded: NativeStack):
    prometheus = Prometheus(loaded.prometheus_url)
    at = time.time() - 1
    snapshot = service_stats.snapshot(prometheus, at=at)
    rows = {row.key[0]: row for row in snapshot.rows("routes")}
    assert locust_routes(prometheus) <= {name for name, row in rows.items()
                                         if row.get("rate") > 0}
    # Asked independently: counts over the same one-minute window, per route.
    api = 'job="bank-api"'
    total = by_handler(prometheus, f"sum by (handler) (increase(http_requests_total{{{api}}}"
                                   "[1m])) / 60", at)
    refused = by_handler(prometheus, "sum by (handler) (increase(http_requests_total"
                                     f'{{{api}, status=~"4.."}}[1m])) / 60', at)
    assert set(total) == set(rows)
    for handler, rate in total.items():
        row = rows[handler]
        assert close(row.get("rate"), rate), handler
        expected_refusals = refused.get(handler, 0.0) / rate if rate else math.nan
        assert close(row.get("refusals"), expected_refusals), handler
        if rate:
            assert row.get("p50") <= row.get("p95") <= row.get("p99"), handler
    [everything] = snapshot.rows("total")
    assert close(everything.get("rate"), sum(total.values()))

    shown = bank(loaded, "stat")
    assert shown.returncode == 0, shown.stderr
    for route in locust_routes(prometheus):
        assert re.search(rf"^ {re.escape(route)}\s+\d+\.\d\d\s", shown.stdout, re.M), route
    for section in ("Processes (scrape targets)", "Database", "Service level objectives"):
        assert section in shown.stdout
    assert re.search(r"^ bank-api\s+127\.0\.0\.1:\d+\s+up\s+\d+\.\d %\s+\d+ MiB",
                     shown.stdout, re.M)


def test_stat_since_draws_each_routes_history(loaded: NativeStack):
    prometheus = Prometheus(loaded.prometheus_url)
    snapshot = service_stats.snapshot(prometheus, since="2m")
    for row in snapshot.rows("routes"):
        if row.key[0] in locust_routes(prometheus):
            history = row.history["rate"]
            assert len(history) == service_stats.SPARK_POINTS + 1  # 2m in 6 s steps
            assert any(not math.isnan(v) for v in history[-3:]), row.key
            if row.key[0] == "/accounts/{account_id}":  # called from the first second on
                assert sum(not math.isnan(v) for v in history) > len(history) // 2
    shown = bank(loaded, "stat", "--since", "2m")
    assert shown.returncode == 0, shown.stderr
    assert "req/s, 2m" in shown.stdout
    line = next(line for line in shown.stdout.splitlines()
                if line.startswith(" /accounts/{account_id} "))
    assert re.search(r"[▁▂▃▄▅▆▇█]{10,}", line), line


def test_stat_for_one_route_splits_methods_and_statuses(loaded: NativeStack):
    shown = bank(loaded, "stat", "/accounts/42")
    assert shown.returncode == 0, shown.stderr
    assert "/accounts/{account_id} by method" in shown.stdout
    assert re.search(r"^ GET\s+\d+\.\d\d", shown.stdout, re.M)
    assert re.search(r"^ 200\s+\d+\.\d\d", shown.stdout, re.M)
    missing = bank(loaded, "stat", "/nowhere")
    assert missing.returncode == 1
    assert "no route '/nowhere'" in missing.stderr and "/transfers" in missing.stderr


def test_stat_watch_redraws_in_place_on_a_terminal(loaded: NativeStack):
    screen = run_in_terminal([BANK, "stat", "--watch", "--interval", "1"], env(loaded),
                             columns=200, rows=80, interrupt_after=6)
    assert screen.returncode == 0, screen.text  # Ctrl-C ends it quietly
    assert screen.raw.count(b"bank stat") >= 3  # drawn several times...
    assert sum(line.startswith("bank stat") for line in screen.lines) == 1  # ...in one place
    assert "/accounts/{account_id}" in screen.text and "Alerts firing" in screen.text
    # Into a pipe, one snapshot after another.
    piped = subprocess.Popen([BANK, "stat", "--watch", "--interval", "1"], env=env(loaded),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(5)
    piped.send_signal(signal.SIGINT)
    out, err = piped.communicate(timeout=30)
    assert piped.returncode == 0, err
    assert out.count("bank stat ") >= 2 and "\x1b[" not in out


# ------------------------------------------------------------------ trace


def exemplar_trace(stack: NativeStack) -> str:
    """A trace id Prometheus keeps as an exemplar of the API's latency, whose request has
    database spans, once the receiver has all of it."""
    end = time.time()
    answer = httpx.get(f"{stack.prometheus_url}/api/v1/query_exemplars", params={
        "query": 'http_request_duration_seconds_bucket{job="bank-api"}',
        "start": end - 120, "end": end}, timeout=30).json()
    ids = [exemplar["labels"]["trace_id"] for series in answer["data"]
           for exemplar in series["exemplars"]]
    assert ids, answer
    time.sleep(6)  # the API's batch exporter sends every 5 s
    stored = stack.traces.traces()
    with_sql = [i for i in reversed(ids)
                if any(s.attributes.get("db.statement") for s in stored.get(i, []))]
    assert with_sql, f"none of {len(ids)} exemplars has database spans at the receiver"
    return with_sql[0]


def api_log_lines(stack: NativeStack, trace_id: str) -> tuple[str, list[str]]:
    """The request id of the trace's request and every line of the API's log that carries
    it or the trace id, as written."""
    records = [(line, json.loads(line)) for line in
               (stack.log_dir / "api.log").read_text().splitlines() if line.startswith("{")]
    [request_id] = {r["request_id"] for _, r in records if r.get("trace_id") == trace_id}
    return request_id, [line for line, r in records
                        if r.get("trace_id") == trace_id or r.get("request_id") == request_id]


def test_trace_of_an_exemplar_shows_every_span_its_sql_and_its_lines(loaded: NativeStack):
    trace_id = exemplar_trace(loaded)
    stored = loaded.traces.traces()[trace_id]
    request_id, lines = api_log_lines(loaded, trace_id)

    story = tell(trace_id, Tempo(loaded.tempo_url), Loki(loaded.loki_url), within_s=3600)
    assert sorted(s.span_id for s in story.spans) == sorted(s.span_id for s in stored)
    assert story.request_ids == [request_id]
    assert [line.raw for line in story.lines] == lines

    console = Console(record=True, width=200, file=io.StringIO())
    console.print(trace_view.render(story))
    text = console.export_text()
    assert sum("█" in row for row in text.splitlines()) == len(stored)
    squeezed = re.sub(r"[\s│├└─]", "", text)
    for span in stored:
        assert span.name in text
        if statement := span.attributes.get("db.statement"):
            assert re.sub(r"\s", "", statement) in squeezed, statement
    for line in lines:
        assert json.loads(line)["message"] in text

    by_trace = bank(loaded, "trace", trace_id)
    by_request = bank(loaded, "trace", request_id)
    assert by_trace.returncode == by_request.returncode == 0, by_trace.stderr
    assert by_request.stdout == by_trace.stdout
    assert f"{len(stored)} spans" in by_trace.stdout
