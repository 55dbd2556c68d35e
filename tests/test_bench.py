"""The benchmark's one command runs end to end (python -m bankops.bench --quick, one worker).

Nothing here is timed: rates and ratios are the benchmark's result, not a test's. What is
checked is that every measurement ran and was clean. pgbench's scripts run against the real
schema without a failed transaction, every API answer under wrk is a success, the Locust mix
passes, the scrape and series check ran, and the books balance afterwards, pgbench's writes
included. That last check is what keeps bankops/bench/pgbench/*.sql honest when the API's SQL
changes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

OPERATIONS = {"read", "credit", "credit_key", "transfer"}

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
    assert {(m["operation"], m["metrics"]) for m in api} == {
        (op, on) for op in OPERATIONS for on in (True, False)}
    for m in api:
        assert m["requests"] > 0 and m["error_share"] == 0, m
        assert set(m["statuses"]) <= {"200", "201"}, m

    assert {m["operation"] for m in measured if m["kind"] == "bare"} == {"def", "async"}
    (locust,) = [m for m in measured if m["kind"] == "locust"]
    assert locust["requests"] > 0 and locust["invariants"] == "pass"
    (scrape,) = [m for m in measured if m["kind"] == "scrape"]
    assert scrape["series"] > 0 and scrape["bytes"] > 0

    assert result["series_check"]["equal"], result["series_check"]
    assert result["books"]["verdict"] == "pass", result["books"]
    numbers = [r for r in result["ratios"] if isinstance(r["value"], int | float)]
    assert numbers and all(r["value"] > 0 for r in numbers), result["ratios"]
