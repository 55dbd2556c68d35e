"""The load test against a real API: it exercises every endpoint, keeps the books right, and
exports Locust's own numbers to Prometheus under the names docs/metrics.md promises.

The API runs here in a child process on an embedded PostgreSQL; Locust runs in child
processes (bankops.loadtest.runner never imports Locust, whose gevent patching would leak into
this process).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from csv import DictReader
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bankops.loadtest.runner import run_load
from bankops.processes import Service, free_port

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
METRICS_MD = REPO_ROOT / "docs" / "metrics.md"
BANK_API = Path(sys.executable).with_name("bank-api")
EVERY_REQUEST = {
    ("POST", "/accounts"),
    ("GET", "/accounts/{account_id}"),
    ("GET", "/accounts/{account_id}/transactions"),
    ("POST", "/accounts/{account_id}/transactions"),
    ("POST", "/transfers"),
    ("GET", "/transfers/{transfer_id}"),
    ("GET", "/transactions/{transaction_id}"),
}
FAST_CUSTOMERS = "0.02-0.2"  # short think time, so a short run reaches every endpoint


def wait_for_postgres_to_stop(data_dir: Path, timeout: float = 20) -> None:
    """The API's embedded PostgreSQL is a daemon of its own, which stopping the API does not
    take down; the Service's stop sends it SIGTERM too (the API started it, so it carries the
    Service's mark). Wait until it is gone."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:  # never started, or already stopped cleanly
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the API's PostgreSQL (pid {pid}) still runs {timeout:.0f}s after "
                         "the API stopped")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`bank-api` on its own embedded PostgreSQL, as a user would start it."""
    workdir = tmp_path_factory.mktemp("loadtest-api")
    port = free_port()
    pg_dir = workdir / "postgres"
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": None, "EMBEDDED_PG_DIR": str(pg_dir), "HOST": "127.0.0.1",
           "PORT": str(port)}
    with Service("bank-api", [BANK_API], log_path=workdir / "bank-api.log", env=env,
                 cwd=workdir, ready_url=f"{url}/health/ready", timeout=90):
        yield url
    wait_for_postgres_to_stop(pg_dir)


def stats_total(web: str) -> int:
    report = httpx.get(f"{web}/stats/requests", timeout=5).json()
    return next(s["num_requests"] for s in report["stats"] if s["name"] == "Aggregated")


def scrape(web: str) -> tuple[dict[str, list], dict[str, str]]:
    """The master's /export/prometheus, parsed: samples and type by sample name."""
    text = httpx.get(f"{web}/export/prometheus", timeout=5).text
    samples: dict[str, list] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
            types[sample.name] = family.type
    return samples, types


@pytest.fixture(scope="module")
def distributed_run(api: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A master and two workers; the master's export is read while the load runs."""
    run_dir = tmp_path_factory.mktemp("distributed")
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["run_dir"] = run_load(
                api, shape="steady", users=6, duration="18s", spawn_rate=6, workers=2,
                think_time=FAST_CUSTOMERS, run_dir=run_dir, web_port=port, linger=1)
        except Exception as exc:  # reported by the test, not lost in the thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # Running, with a few seconds of history: response-time percentiles need some.
        deadline = time.monotonic() + 60
        while True:
            assert thread.is_alive(), f"the run ended before it was observed: {outcome}"
            assert time.monotonic() < deadline, "the distributed run never got going"
            try:
                samples, _ = scrape(web)
                users = samples.get("locust_users")
                if users and users[0].value > 0 and samples.get("locust_response_time_seconds"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        # The counters only grow, so the export read between two /stats/requests readings lies
        # between them. /stats/requests is cached for 2 s by Locust: wait that out before `after`.
        before = stats_total(web)
        samples, types = scrape(web)
        time.sleep(2.5)
        after = stats_total(web)
    finally:
        thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    return {"samples": samples, "types": types, "before": before, "after": after,
            "run_dir": outcome["run_dir"]}


def test_smoke_run_exercises_every_endpoint_and_keeps_the_books(
        api: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "smoke"
    result = subprocess.run(
        [sys.executable, "-m", "bankops.loadtest", "--host", api,
         "--shape", "smoke", "--users", "5", "--duration", "15s", "--think-time", FAST_CUSTOMERS,
         "--run-dir", str(run_dir), "--web-port", str(free_port()), "--linger", "1"],
        capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "PASSED" in result.stdout
    assert re.search(r"\[\s*\d+s\] running .* req/s .*failures", result.stdout), output

    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                 "report.html", "run.json", "invariants.json"):
        assert (run_dir / name).is_file(), name
    books = json.loads((run_dir / "invariants.json").read_text())
    assert books["verdict"] == "pass", books
    assert books["accounts"] >= 5 and books["total_balance"] == books["external_net"]

    with (run_dir / "locust_stats.csv").open() as f:
        rows = {(r["Type"], r["Name"]): r for r in DictReader(f)}
    for request in EVERY_REQUEST:
        assert request in rows, f"{request} never sent: {sorted(rows)}"
        assert int(rows[request]["Request Count"]) > 0
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    with (run_dir / "locust_failures.csv").open() as f:
        assert list(DictReader(f)) == []
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["verdict"] == {"passed": True, "problems": []}
    assert summary["options"]["shape"] == "smoke"
    assert summary["versions"]["locust"]


def test_distributed_export_matches_the_masters_stats(distributed_run: dict) -> None:
    samples = distributed_run["samples"]
    assert [s.value for s in samples["locust_workers"]] == [2]
    assert samples["locust_users"][0].value > 0
    exported = sum(s.value for s in samples["locust_requests_total"])
    assert distributed_run["before"] <= exported <= distributed_run["after"], distributed_run
    assert all(s.labels["name"] != "Aggregated" for s in samples["locust_requests_total"])
    # Both workers' requests reached the master, and the books survived them.
    summary = json.loads((distributed_run["run_dir"] / "run.json").read_text())
    assert summary["verdict"]["passed"], summary["verdict"]
    assert summary["options"]["workers"] == 2


def documented_locust_metrics() -> dict[str, tuple[str, set[str], set[str]]]:
    """docs/metrics.md's Locust table: name -> (type, label names, documented quantiles)."""
    section = METRICS_MD.read_text().split("## Locust", 1)[1].split("\n## ", 1)[0]
    metrics = {}
    for row in re.findall(r"^\|\s*`(locust_\w+)`\s*\|([^|]*)\|([^|]*)\|", section, re.M):
        name, kind, labels = row
        quantiles = set(re.findall(r"`([\d.]+)`", labels))
        label_names = set(re.findall(r"`([a-z_]+)`", re.sub(r"\(.*?\)", "", labels)))
        metrics[name] = (kind.strip(), label_names, quantiles)
    return metrics


def test_exported_names_and_labels_match_the_metrics_contract(distributed_run: dict) -> None:
    documented = documented_locust_metrics()
    assert set(documented) == {"locust_users", "locust_workers", "locust_requests_total",
                               "locust_failures_total", "locust_response_time_seconds"}
    samples = distributed_run["samples"]
    assert set(samples) == set(documented)
    for name, (kind, labels, quantiles) in documented.items():
        assert distributed_run["types"][name] == kind, name
        for sample in samples[name]:
            assert set(sample.labels) == labels, (name, sample.labels)
            if quantiles:
                assert sample.labels["quantile"] in quantiles
