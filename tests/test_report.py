"""The load-run report, made from real runs of the native stack.

One stack (bankops.stack, with the API's fault switch enabled) serves two short Locust runs
(bank_loadtest), each turned into a report with bank_report:

- a healthy run: the run folder has Locust's CSV files and a passing money check; the report
  has its HTML, Markdown and every chart it shows as a real PNG, the Prometheus charts among
  them; its numbers are exactly those of locust_stats.csv;
- a run with the fault switch on for one route: the report shows that route's failures and
  their reason, `fault_injected`, and Prometheus's 5xx answers.

About two minutes: the stack's start, 30 s and 20 s of load, the reports.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bank_loadtest.runner import run_load
from bank_report.generate import generate, worst_name
from bank_report.locust_data import read_stats
from bankops.processes import free_port, free_ports
from bankops.stack.native import NativeStack, Ports

pytestmark = pytest.mark.slow

USERS = 5
HEALTHY_SECONDS = 30
FAULTY_SECONDS = 20
FAST_CUSTOMERS = "0.1-0.5"  # short think time: a short run still reaches every endpoint
FAULTY_ROUTE = "/accounts/{account_id}"  # the balance check, the most frequent request
FAULTS = {"error_rate": 0.5, "latency_ms": 0, "routes": [FAULTY_ROUTE]}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMETHEUS_CHARTS = {"server_latency.png", "requests_by_status.png", "db_pool.png",
                     "process_cpu.png", "process_memory.png"}
LOCUST_CHARTS = {"throughput.png", "latency.png", "error_ratio.png", "users.png"}
LOOKUP_HEADING = "### Requests to look up in the API's logs"
REQUEST_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Report:
    run_dir: Path
    out: Path

    @property
    def summary(self) -> dict:
        return json.loads((self.out / "summary.json").read_text())

    @property
    def markdown(self) -> str:
        return (self.out / "report.md").read_text()

    @property
    def html(self) -> str:
        return (self.out / "index.html").read_text()


def locust_rows(run_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    """locust_stats.csv as Locust wrote it: (method, name) -> row."""
    with (run_dir / "locust_stats.csv").open(newline="") as f:
        return {(r["Type"], r["Name"]): r for r in csv.DictReader(f)}


def markdown_table(markdown: str, heading: str) -> list[dict[str, str]]:
    """The first table after a heading of report.md, as {column: cell} per row."""
    lines = markdown.split(f"\n{heading}\n", 1)[1].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[first:]))

    def cells(line: str) -> list[str]:
        parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        return [p.strip().strip("`").replace("\\|", "|") for p in parts]

    columns = cells(table[0])
    return [dict(zip(columns, cells(line), strict=True)) for line in table[2:]]


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NativeStack]:
    ports = Ports(*free_ports(5))
    with NativeStack(tmp_path_factory.mktemp("report-stack"), ports=ports) as running:
        yield running


def load_and_report(stack: NativeStack, name: str, seconds: int) -> Report:
    run_dir = stack.work_dir / name
    with (stack.log_dir / f"{name}.log").open("a") as log:
        # The faulty run fails the runner's 1 % failure limit by design; the report is the
        # check.
        run_load(stack.api_url, shape="steady", users=USERS, duration=seconds,
                 think_time=FAST_CUSTOMERS, run_dir=run_dir, database_url=stack.database_url,
                 web_port=stack.ports.locust, max_failure_ratio=1,
                 log=lambda line: print(line, file=log, flush=True))
    return Report(run_dir, generate(run_dir, prometheus=stack.prometheus_url))


@pytest.fixture(scope="module")
def healthy(stack: NativeStack) -> Report:
    return load_and_report(stack, "healthy", HEALTHY_SECONDS)


@pytest.fixture(scope="module")
def faulty(stack: NativeStack, healthy: Report) -> Report:
    # After the healthy run (its dependency), so the two never share the Locust port.
    stack.set_faults(FAULTS)
    try:
        return load_and_report(stack, "faulty", FAULTY_SECONDS)
    finally:
        stack.clear_faults()


# ------------------------------------------------------------------------------ checks


def test_run_folder_has_locust_files_and_passing_invariants(healthy: Report):
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                 "run.json", "invariants.json"):
        assert (healthy.run_dir / name).exists(), name
    books = json.loads((healthy.run_dir / "invariants.json").read_text())
    assert books["verdict"] == "pass", books
    assert books["method"] == "sql"
    assert healthy.summary["invariants"]["verdict"] == "pass"
    assert "**money invariants:** PASS" in healthy.markdown


def test_every_chart_shown_is_a_real_png(healthy: Report):
    in_html = set(re.findall(r'<img src="([^"]+)"', healthy.html))
    in_markdown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", healthy.markdown))
    listed = {chart["file"] for chart in healthy.summary["charts"]}
    assert in_html == in_markdown == listed
    assert in_html >= LOCUST_CHARTS
    for name in in_html:
        assert (healthy.out / name).read_bytes().startswith(PNG_SIGNATURE), name


def test_prometheus_charts_are_present(healthy: Report):
    prometheus = healthy.summary["prometheus"]
    assert prometheus["reachable"], prometheus
    assert prometheus["query_errors"] == {}
    assert prometheus["missing_charts"] == []
    drawn = {c["file"] for c in healthy.summary["charts"] if c["source"] == "Prometheus"}
    assert drawn == PROMETHEUS_CHARTS
    assert "what the server saw" in healthy.markdown


def test_report_numbers_are_locusts_numbers(healthy: Report):
    """Requests, failures and percentiles per name, in summary.json and in report.md,
    equal locust_stats.csv's exactly."""
    csv_rows = locust_rows(healthy.run_dir)
    summary = healthy.summary
    json_rows = {(r["method"], r["name"]): r for r in [*summary["rows"], summary["total"]]}
    md_rows = {(r["method"], r["name"]): r
               for r in markdown_table(healthy.markdown, "## Requests")}
    assert set(json_rows) == set(md_rows) == set(csv_rows)
    assert sum(int(r["Request Count"]) for r in csv_rows.values()) > 100

    for key, row in csv_rows.items():
        expected = {"requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "p50_ms": int(row["50%"]), "p95_ms": int(row["95%"]),
                    "p99_ms": int(row["99%"])}
        shown = json_rows[key]
        assert {k: shown[k] for k in expected} == expected, key
        assert shown["requests_per_second"] == float(row["Requests/s"]), key
        md = md_rows[key]
        assert {"requests": number(md["requests"]), "failures": number(md["failures"]),
                "p50_ms": number(md["p50 ms"]), "p95_ms": number(md["p95 ms"]),
                "p99_ms": number(md["p99 ms"])} == expected, key
        assert md["req/s"] == f"{float(row['Requests/s']):,.2f}", key


def test_report_without_prometheus_says_so(healthy: Report, tmp_path: Path):
    unused = free_port()
    out = generate(healthy.run_dir, tmp_path / "report", prometheus=f"http://127.0.0.1:{unused}")
    markdown = (out / "report.md").read_text()
    assert "was not reachable" in markdown
    assert "**alerts fired:** unknown" in markdown
    summary = json.loads((out / "summary.json").read_text())
    assert {c["file"] for c in summary["charts"]} == LOCUST_CHARTS
    assert summary["total"] == healthy.summary["total"]


def test_fault_switch_failures_show_in_the_report(faulty: Report):
    csv_row = locust_rows(faulty.run_dir)[("GET", FAULTY_ROUTE)]
    [shown] = [r for r in faulty.summary["rows"] if (r["method"], r["name"]) == ("GET",
                                                                                 FAULTY_ROUTE)]
    assert shown["failures"] == int(csv_row["Failure Count"]) > 0
    assert faulty.summary["total"]["failures"] >= shown["failures"]

    failures = markdown_table(faulty.markdown, "### Failures")
    reasons = {f["reason"] for f in failures if f["name"] == FAULTY_ROUTE}
    assert any("fault_injected" in reason for reason in reasons), failures
    assert "fault_injected" in faulty.html
    assert "**failures:** 0 " not in faulty.markdown

    # The server's side of the same failures: 500 answers in Prometheus.
    [by_status] = [c for c in faulty.summary["charts"] if c["file"] == "requests_by_status.png"]
    assert "5xx" in by_status["series"], by_status


def kept_request_ids(run_dir: Path) -> dict[tuple[str, str], dict]:
    data = json.loads((run_dir / "locust_request_ids.json").read_text())
    return {(e["method"], e["name"]): e for e in data["names"]}


def test_report_lists_the_slowest_requests_of_the_worst_name(healthy: Report):
    """The worst name: the most failures, else the highest p95 (from locust_stats.csv); its
    slowest requests with their id, latency and status, as the run kept them."""
    stats = read_stats(healthy.run_dir / "locust_stats.csv")
    expected, _why = worst_name(stats)
    worst = healthy.summary["lookups"]["worst"]
    assert (worst["method"], worst["name"]) == (expected.method, expected.name)
    kept = kept_request_ids(healthy.run_dir)[(worst["method"], worst["name"])]
    assert [r["request_id"] for r in worst["slowest"]] == [
        r["request_id"] for r in kept["slowest"][:len(worst["slowest"])]]
    assert worst["slowest"], worst

    heading = f"#### Slowest requests of {worst['method']} {worst['name']}"
    shown = markdown_table(healthy.markdown, heading)
    assert [r["request id"] for r in shown] == [r["request_id"] for r in worst["slowest"]]
    for row, request in zip(shown, worst["slowest"], strict=True):
        assert REQUEST_ID.fullmatch(row["request id"])
        assert number(row["status"]) == request["status"]
        assert number(row["ms"]) == round(request["response_time_ms"])
        assert row["echoed"] == "yes"
        assert request["request_id"] in healthy.html
    assert 'request_id="' in healthy.markdown  # the Loki query to paste

    every = markdown_table(healthy.markdown, "#### Slowest request of every name")
    assert {(r["method"], r["name"]) for r in every} == {
        (r.method, r.name) for r in stats if not r.is_total}


def test_report_without_request_ids_says_so(healthy: Report, tmp_path: Path):
    """A run folder without locust_request_ids.json (an older run, or compose's before it)."""
    run_dir = tmp_path / "run"
    shutil.copytree(healthy.run_dir, run_dir,
                    ignore=shutil.ignore_patterns("locust_request_ids.json", "report"))
    out = generate(run_dir, tmp_path / "report")
    markdown = (out / "report.md").read_text()
    assert "this run kept no request ids" in markdown.split(LOOKUP_HEADING, 1)[1]
    assert json.loads((out / "summary.json").read_text())["lookups"] is None


def test_report_lists_failed_request_ids_of_the_faulty_route(faulty: Report):
    worst = faulty.summary["lookups"]["worst"]
    assert (worst["method"], worst["name"]) == ("GET", FAULTY_ROUTE)  # the most failures
    assert worst["why"].startswith("the most failed requests")
    kept = kept_request_ids(faulty.run_dir)[("GET", FAULTY_ROUTE)]
    kept_ids = {r["request_id"] for f in kept["failures"] for r in f["requests"]}
    assert worst["failed"] and {r["request_id"] for r in worst["failed"]} <= kept_ids

    shown = markdown_table(faulty.markdown, f"#### Failed requests of GET {FAULTY_ROUTE}")
    assert [r["request id"] for r in shown] == [r["request_id"] for r in worst["failed"]]
    for row in shown:
        assert REQUEST_ID.fullmatch(row["request id"])
        assert number(row["status"]) == 500
        assert "fault_injected" in row["reason"]
        assert row["echoed"] == "yes"  # the API answered with this id
        assert row["request id"] in faulty.html
