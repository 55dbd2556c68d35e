"""The load-run report, made from real runs of the native stack.

One stack (bankops.stack, with the API's fault switch enabled) serves two short Locust runs
(bank_loadtest), each turned into a report with bank_report:

- a healthy run: the run folder has Locust's CSV files and a passing money check; the report
  has its HTML, Markdown and every chart it shows as a real PNG, the Prometheus charts among
  them; its numbers are exactly those of locust_stats.csv;
- a run with the fault switch on for one route: the report shows that route's failures and
  their reason, `fault_injected`, and Prometheus's 5xx answers;
- both: the service level objectives of slos.yml over the run, the healthy one within them,
  the faulty one burning the reads' budget fast enough to page.

About two minutes: the stack's start, 30 s and 30 s of load, the reports.
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
from bankops.slo import spec as slo_spec
from bankops.stack.native import NativeStack, Ports

pytestmark = pytest.mark.slow

USERS = 5
HEALTHY_SECONDS = 30
# Long enough for the burn-rate alerts to fire within the run: the 5xx series appears at the
# first scrape after the first fault, the rules need two of its samples, then one evaluation
# (5 s each): about 15 s.
FAULTY_SECONDS = 30
FAST_CUSTOMERS = "0.1-0.5"  # short think time: a short run still reaches every endpoint
FAULTY_ROUTE = "/accounts/{account_id}"  # the balance check, the most frequent request
FAULTS = {"error_rate": 0.5, "latency_ms": 0, "routes": [FAULTY_ROUTE]}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMETHEUS_CHARTS = {"server_latency.png", "requests_by_status.png", "db_pool.png",
                     "process_cpu.png", "process_memory.png"}
LOCUST_CHARTS = {"throughput.png", "latency.png", "error_ratio.png", "users.png"}
LOOKUP_HEADING = "### Requests to look up in the API's logs"
SLO_HEADING = "## Service level objectives"
FAULTY_OBJECTIVE = "reads"  # the objective FAULTY_ROUTE is in
SERVER_ERROR = re.compile(r"status 5\d\d")  # a Locust failure reason for a 5xx answer
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
    assert "**objectives met over the run:** unknown" in markdown
    assert "No data: Prometheus at" in markdown.split(SLO_HEADING, 1)[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["slos"] is None
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


# ------------------------------------------------------------------------------ objectives


def slo_rows(report: Report) -> dict[str, dict[str, str]]:
    """The objectives table of report.md: SLO name -> row."""
    return {r["SLO"].strip("*"): r for r in markdown_table(report.markdown, SLO_HEADING)}


def check_objective_numbers(report: Report) -> dict[str, dict]:
    """Every objective of slos.yml is in the report, its numbers derived from its error ratio
    over the run as the report says (summary.json and report.md alike); returns them by name."""
    spec = slo_spec.load()
    slos = report.summary["slos"]
    assert slos["rules_loaded"] and slos["rules_differ"] == [], slos
    assert slos["run_seconds"] == report.summary["window"]["seconds"]
    assert slos["demo_period_seconds"] == spec.demo_period == 40320  # 28d / 60: 11h12m
    shown = {o["name"]: o for o in slos["objectives"]}
    assert list(shown) == [o.name for o in spec.objectives]
    rows = slo_rows(report)
    assert list(rows) == list(shown)
    for objective in spec.objectives:
        o = shown[objective.name]
        assert o["objective"] == objective.objective and o["error_budget"] == objective.budget
        ratio = o["error_ratio"]
        assert ratio is not None and 0 <= ratio <= 1, o  # every route had requests
        assert o["sli_over_run"] == pytest.approx(1 - ratio)
        assert o["met"] == (1 - ratio >= objective.objective)
        assert o["burn_rate"] == pytest.approx(ratio / objective.budget)
        assert o["budget_spent"] == pytest.approx(
            o["burn_rate"] * slos["run_seconds"] / spec.demo_period)
        assert f"[{slos['run_seconds']}s]" in o["queries"]["error_ratio"]
        # The loaded rule's expression, evaluated at the end: a value even when its group
        # (every 30 s) has not yet run since the run's first request.
        assert o["budget_left"] is not None and o["budget_left"] <= 1, o
        assert objective.name in o["queries"]["budget_left"]
        row = rows[objective.name]
        assert row["budget left"] == f"{o['budget_left']:.2%}"
        assert row["target"] == f"{objective.objective:.1%}"
        assert row["SLI over the run"] == f"{1 - ratio:.3%}"
        assert row["met"] == ("yes" if o["met"] else "no")
        assert row["budget spent"] == f"{o['budget_spent']:.2%}"
    return shown


def test_healthy_run_meets_the_availability_objectives(healthy: Report):
    shown = check_objective_numbers(healthy)
    for name in ("money-movements", "reads"):
        o = shown[name]
        assert o["error_ratio"] == 0 and o["met"] and o["budget_spent"] == 0, o
        assert o["budget_left"] == 1, o  # no 5xx on this stack, ever
        assert not [a for a in o["alerts"] if a["fired"]], o
    [chart] = [c for c in healthy.summary["charts"] if c["source"] == "SLO"]
    assert chart["file"] == "slo_burn_rate.png"
    assert set(chart["series"]) == set(shown)  # one line per objective
    assert "Error budget burn rate over 1m" in healthy.markdown.split(SLO_HEADING, 1)[1]


def locust_server_error_ratio(report: Report, objective: slo_spec.Objective) -> float:
    """The share of the objective's requests Locust saw answered with a 5xx."""
    routes = {(r.method, r.handler) for r in objective.routes}
    requests = sum(r["requests"] for r in report.summary["rows"]
                   if (r["method"], r["name"]) in routes)
    errors = sum(f["occurrences"] for f in report.summary["failures"]
                 if (f["method"], f["name"]) in routes and SERVER_ERROR.search(f["error"]))
    return errors / requests


def test_fault_switch_burns_the_reads_budget_and_pages(faulty: Report):
    spec = slo_spec.load()
    shown = check_objective_numbers(faulty)
    [reads] = [o for o in spec.objectives if o.name == FAULTY_OBJECTIVE]
    o = shown[FAULTY_OBJECTIVE]
    # The API's count (Prometheus) against Locust's. Not equal: rate() over the run misses
    # the 5xx answered before the first scrape of their series (created by the first one),
    # up to one scrape interval of the run's, less its extrapolation.
    expected = locust_server_error_ratio(faulty, reads)
    assert expected > 0.05
    assert 0.7 * expected <= o["error_ratio"] <= 1.1 * expected, (o, expected)
    assert not o["met"]
    assert o["budget_left"] < 1, o  # spent during this run: the healthy one spent none
    fast = {a.alert: p.burn_rate for a in spec.alerts for p in a.windows[:1]}
    assert o["burn_rate"] > fast["ErrorBudgetFastBurn"], o

    fired = {a["name"]: a for a in o["alerts"] if a["fired"]}
    assert set(fired) == {"ErrorBudgetFastBurn", "ErrorBudgetSlowBurn"}, o["alerts"]
    window = faulty.summary["window"]["seconds"]
    for alert in fired.values():
        assert 0 <= alert["firing_from_s"] <= alert["firing_until_s"] <= window, alert
        assert alert["labels"]["slo"] == FAULTY_OBJECTIVE
    page = fired["ErrorBudgetFastBurn"]
    assert page["severity"] == "critical"
    cell = slo_rows(faulty)[FAULTY_OBJECTIVE]["burn-rate alerts (s since start)"]
    assert (f"ErrorBudgetFastBurn (critical): firing {page['firing_from_s']} to "
            f"{page['firing_until_s']}") in cell
    assert "ErrorBudgetFastBurn" in faulty.summary["alerts_fired"]

    # The fault switch is on one read route only: money movements stay within their objective.
    movements = shown["money-movements"]
    assert movements["error_ratio"] == 0 and not movements["alerts"], movements
    met = faulty.summary["slos"]["met"]
    assert met == sum(o["met"] for o in shown.values()) < len(shown)
    assert f"**objectives met over the run:** {met} of {len(shown)}" in faulty.markdown
