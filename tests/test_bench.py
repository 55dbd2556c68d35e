"""The benchmark's one command runs end to end (python -m bankops.bench --quick, one worker).

Nothing here is timed: rates and ratios are the benchmark's result, not a test's. What is
checked is that every measurement ran and was clean. pgbench's scripts run against the real
schema without a failed transaction, every API answer under wrk is a success, the Locust mix
passes, the scrape and series check ran, and the books balance afterwards, pgbench's writes
included. (That pgbench/*.sql are the API's statements, statement by statement, is
tests/test_pgbench_sql.py's check; that their writes keep the books is this one's.)

The API variant with logs and traces on must really have had them on (its spans reached the
trace sink, its JSON lines its log file) and the variants with them off must not: otherwise
the "logs+traces on ÷ off" ratio would compare nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bankops.bench import servers

OPERATIONS = {"read", "credit", "credit_key", "transfer"}
CEILING_OPERATIONS = {"read", "credit", "transfer"}

pytestmark = pytest.mark.slow


def test_the_quick_benchmark_runs_clean(tmp_path):
    output = tmp_path / "quick"
    done = subprocess.run(
        [sys.executable, "-m", "bankops.bench", "--quick", "--workers", "1",
         "--output", str(output), "--port-base", "8700"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(output.with_suffix(".json").read_text())
    assert output.with_suffix(".md").read_text().startswith("# Bank API benchmark")

    measured = result["measurements"]
    pgbench = [m for m in measured if m["kind"] == "pgbench"]
    assert {m["operation"] for m in pgbench} == OPERATIONS
    assert all(m["transactions"] > 0 and m["failed"] == 0 for m in pgbench), pgbench

    api = [m for m in measured if m["kind"] == "api"]
    # Metrics on and off with logs and traces off, and metrics on with logs and traces on.
    assert {(m["operation"], m["metrics"], m["telemetry"]) for m in api} == {
        (op, *variant) for op in OPERATIONS
        for variant in ((True, False), (False, False), (True, True))}
    for m in api:
        assert m["requests"] > 0 and m["error_share"] == 0, m
        assert set(m["statuses"]) <= {"200", "201"}, m

    assert {m["operation"] for m in measured if m["kind"] == "bare"} == {"def", "async"}
    # The stack ceiling ran every operation it serves, every answer a success.
    ceiling = [m for m in measured if m["kind"] == "ceiling"]
    assert {m["operation"] for m in ceiling} == CEILING_OPERATIONS
    for m in ceiling:
        assert m["requests"] > 0 and m["error_share"] == 0, m
        assert set(m["statuses"]) <= {"200", "201"}, m
    (locust,) = [m for m in measured if m["kind"] == "locust"]
    assert locust["requests"] > 0 and locust["invariants"] == "pass"
    (scrape,) = [m for m in measured if m["kind"] == "scrape"]
    assert scrape["series"] > 0 and scrape["bytes"] > 0

    # Logs and traces on: spans exported (the server span and one per SQL statement, at
    # least), a JSON line per request and one per money movement; off: neither.
    (telemetry,) = [m for m in measured if m["kind"] == "telemetry"]
    sink = telemetry["trace_sink"]
    assert sink["spans"] > 0 and sink["traces"] > 0, telemetry
    assert telemetry["spans_per_trace"] >= 2, telemetry  # a server span and a SQL one at least
    assert {"GET /accounts/{account_id}", "POST /accounts/{account_id}/transactions",
            "POST /transfers"} <= set(sink["by_root"]), sink
    for m in api:
        if m["telemetry"]:
            assert m["trace_sink"]["spans"] > 0, m
    logs = telemetry["logs"]
    assert logs["telemetry"]["json_lines"] > 0, logs
    events = logs["telemetry"]["by_event"]
    # wrk does not count the requests in flight when it stops; the API logs them.
    assert events.get("request", 0) >= telemetry["requests"], logs
    # The share of requests traced is the shipped sampling's (env.example), give or take chance.
    sampled = float(servers.TELEMETRY_ON.get("OTEL_TRACES_SAMPLER_ARG", "1"))
    share = sink["traces"] / events["request"]
    assert 0.5 * sampled <= share <= min(1.0, 1.5 * sampled), (share, sampled)
    # One line per request: money moved is a field of the request's line, not a line of its own.
    assert logs["telemetry"]["by_outcome"].get("moved", 0) > 0, logs
    assert set(events) <= {"request", "(no event)"}, logs  # (no event): start-up lines
    for variant in ("on", "off"):
        assert logs[variant]["json_lines"] == 0 and logs[variant]["by_event"] == {}, logs
        assert logs[variant]["by_outcome"] == {}, logs

    assert result["series_check"]["equal"], result["series_check"]
    assert result["books"]["verdict"] == "pass", result["books"]
    numbers = [r for r in result["ratios"] if isinstance(r["value"], int | float)]
    assert numbers and all(r["value"] > 0 for r in numbers), result["ratios"]
    telemetry_ratios = {r["name"]: r for r in result["ratios"]
                        if "logs+traces on ÷ off," in r["name"]}
    assert len(telemetry_ratios) == len(OPERATIONS), result["ratios"]
    assert all(r["target"] == 0.85 and r["value"] > 0 for r in telemetry_ratios.values())
    # API ÷ stack ceiling for each variant; the target is on metrics on, logs+traces off.
    ceiling_ratios = [r for r in result["ratios"] if "÷ stack ceiling" in r["name"]]
    assert len(ceiling_ratios) == 3 * len(CEILING_OPERATIONS), result["ratios"]
    assert {r["target"] for r in ceiling_ratios if "(metrics on)" in r["name"]} == {0.75, 0.7}
    assert all(r["value"] > 0 for r in ceiling_ratios), ceiling_ratios
    text = output.with_suffix(".md").read_text()
    assert "## 3. Stack ceiling: the API's SQL, no layers" in text
    assert "## 6. Logs and traces: what they cost" in text
