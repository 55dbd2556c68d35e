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

A run folder that played a scenario (scenario.json beside run.json) gets its section, and its
faults shaded on every chart: checked on the committed sample run (report/sample/run, a real
run of the native stack) with a scenario.json written for it, in a few seconds, and read back
in headless Chromium; and on the faulty run above, whose Prometheus charts are shaded too.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from bank_loadtest.runner import run_load
from bank_report.charts import SHADE_ALPHA, SHADE_COLORS
from bank_report.generate import generate, main, worst_name
from bank_report.locust_data import read_stats
from bankops.processes import free_port
from bankops.slo import spec as slo_spec
from bankops.stack.native import NativeStack, Ports

# The tests on a live stack; those of scenarios read the committed sample run and are fast.
slow = pytest.mark.slow

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
    with NativeStack(tmp_path_factory.mktemp("report-stack"), ports=Ports.free()) as running:
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


@slow
def test_run_folder_has_locust_files_and_passing_invariants(healthy: Report):
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                 "run.json", "invariants.json"):
        assert (healthy.run_dir / name).exists(), name
    books = json.loads((healthy.run_dir / "invariants.json").read_text())
    assert books["verdict"] == "pass", books
    assert books["method"] == "sql"
    assert healthy.summary["invariants"]["verdict"] == "pass"
    assert "**money invariants:** PASS" in healthy.markdown


@slow
def test_every_chart_shown_is_a_real_png(healthy: Report):
    in_html = set(re.findall(r'<img src="([^"]+)"', healthy.html))
    in_markdown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", healthy.markdown))
    listed = {chart["file"] for chart in healthy.summary["charts"]}
    assert in_html == in_markdown == listed
    assert in_html >= LOCUST_CHARTS
    for name in in_html:
        assert (healthy.out / name).read_bytes().startswith(PNG_SIGNATURE), name


@slow
def test_prometheus_charts_are_present(healthy: Report):
    prometheus = healthy.summary["prometheus"]
    assert prometheus["reachable"], prometheus
    assert prometheus["query_errors"] == {}
    assert prometheus["missing_charts"] == []
    drawn = {c["file"] for c in healthy.summary["charts"] if c["source"] == "Prometheus"}
    assert drawn == PROMETHEUS_CHARTS
    assert "what the server saw" in healthy.markdown


@slow
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


@slow
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


@slow
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


@slow
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


@slow
def test_report_without_request_ids_says_so(healthy: Report, tmp_path: Path):
    """A run folder without locust_request_ids.json (an older run, or compose's before it)."""
    run_dir = tmp_path / "run"
    shutil.copytree(healthy.run_dir, run_dir,
                    ignore=shutil.ignore_patterns("locust_request_ids.json", "report"))
    out = generate(run_dir, tmp_path / "report")
    markdown = (out / "report.md").read_text()
    assert "this run kept no request ids" in markdown.split(LOOKUP_HEADING, 1)[1]
    assert json.loads((out / "summary.json").read_text())["lookups"] is None


@slow
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


@slow
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


@slow
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


# ------------------------------------------------------------------------------ scenarios

SAMPLE_RUN = Path(__file__).resolve().parents[1] / "report" / "sample" / "run"
SCENARIO_HEADING = "## Scenario"
CHROMIUM = shutil.which("chromium") or "chromium"


def run_window(run_dir: Path) -> tuple[float, float]:
    """The load run's start (the charts' 0 s) and its length in seconds, from run.json."""
    run = json.loads((run_dir / "run.json").read_text())
    start, end = (datetime.fromisoformat(run[k]).timestamp() for k in ("started_at", "ended_at"))
    return start, end - start


def error_burst(t0: float) -> dict:
    """scenario.json as `python -m bank_scenarios run error-burst` writes it, for the sample
    run, whose fault switch was on from 20 s to 120 s (report/bank_report/sample.py)."""
    return {
        "scenario": "error-burst", "title": "Balance checks start failing",
        "story": "Monday 9:00. Customers say checking a balance sometimes fails.\n"
                 "Nothing was deployed. Find what fails, since when, and what it costs.",
        "speed": 1.0, "started_at": t0 + 2, "ended_at": t0 + 150, "outcome": "finished",
        "phases": [{"name": "baseline", "start": t0 + 2, "end": t0 + 20},
                   {"name": "balance errors", "start": t0 + 20, "end": t0 + 120},
                   {"name": "recovery", "start": t0 + 120, "end": t0 + 150}],
        "faults": [{"name": "balance errors", "kind": "fault_switch",
                    "summary": "20% of /accounts/{account_id} answers are 500, +250 ms",
                    "start": t0 + 20, "end": t0 + 120}],
        "signals": [
            {"kind": "alert", "what": 'ErrorBudgetFastBurn{slo="reads"}',
             "fault": "balance errors", "bound_s": 60, "resolve_bound_s": 60, "seen": True,
             "seen_at": t0 + 55.5, "after_s": 35.5, "resolved_at": t0 + 140,
             "resolved_after_s": 20, "checked": True, "detail": "critical", "passed": True},
            {"kind": "span", "what": "an error span on GET /accounts/{account_id}",
             "fault": "balance errors", "bound_s": 30, "resolve_bound_s": None, "seen": True,
             "seen_at": t0 + 24, "after_s": 4, "resolved_at": None, "resolved_after_s": None,
             "checked": True, "detail": "trace 4bf92f3577b34da6a3ce929d0e0e4736, 500",
             "passed": True},
            {"kind": "metric", "what": "sum(rate(http_requests_total{status=~\"5..\"}[30s])) > 0",
             "fault": "balance errors", "bound_s": 10, "seen": True, "seen_at": t0 + 35,
             "after_s": 15, "checked": True, "detail": "0.4", "passed": False},
            {"kind": "alert", "what": 'ErrorBudgetSlowBurn{slo="reads"}',
             "fault": "balance errors", "bound_s": 90, "resolve_bound_s": 120, "seen": False,
             "seen_at": None, "after_s": None, "resolved_at": None, "resolved_after_s": None,
             "checked": True, "detail": "", "passed": False},
            {"kind": "log", "what": "a log line with code fault_injected",
             "fault": "balance errors", "bound_s": 30, "seen": False, "seen_at": None,
             "after_s": None, "checked": False, "detail": "no API log here", "passed": True},
        ],
        "passed": False,
    }


def report_of(run_dir: Path, scenario: dict | str | None, out: Path,
              prometheus: str | None = None) -> Report:
    """The report of run_dir, copied beside out with scenario.json (text as given, or
    JSON) written into it."""
    copy = out.parent / f"{out.name}-run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report", "scenario.json"))
    if scenario is not None:
        text = scenario if isinstance(scenario, str) else json.dumps(scenario)
        (copy / "scenario.json").write_text(text)
    return Report(copy, generate(copy, out, prometheus=prometheus))


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Report:
    t0, _ = run_window(SAMPLE_RUN)
    return report_of(SAMPLE_RUN, error_burst(t0), tmp_path_factory.mktemp("played") / "report")


# Reading the charts' pixels: where the axes are, and which columns carry a fault's tint.


def plot_area(image: np.ndarray) -> tuple[int, int, int, int]:
    """The axes' box of a chart (left, right, top, bottom pixel): its black spines, the
    longest runs of black pixels across the image."""
    black = (image[:, :, :3] < 0.35).all(axis=2)
    columns, rows = black.sum(axis=0), black.sum(axis=1)
    xs = np.flatnonzero(columns >= 0.8 * columns.max())
    ys = np.flatnonzero(rows >= 0.8 * rows.max())
    return xs.min(), xs.max(), ys.min(), ys.max()


def tinted_columns(png: Path, color: str) -> tuple[np.ndarray, int, int]:
    """The pixel columns inside a chart's axes that show the colour a fault is shaded with (its
    tint over the white background) in a tenth of their height or more (the lines drawn over
    it cover the rest), and the axes' left and right pixel."""
    image = imread(png)
    left, right, top, bottom = plot_area(image)
    inside = image[top + 2:bottom - 1, left + 2:right - 1, :3]
    tint = SHADE_ALPHA * np.array(to_rgb(color)) + (1 - SHADE_ALPHA)
    share = (np.abs(inside - tint) < 0.02).all(axis=2).mean(axis=0)
    return np.flatnonzero(share > 0.1) + left + 2, left, right


def check_shaded(png: Path, windows: list[tuple[float, float]], x_max: float) -> None:
    """Each window (seconds since the run started) is shaded in its own colour on the chart,
    from its start to its end as the x axis places them, and nowhere else; a window past the
    run's end stops at the axis' end."""
    for color, window in itertools.zip_longest(SHADE_COLORS, windows):
        columns, left, right = tinted_columns(png, color)
        if window is None:  # a colour no window has
            assert columns.size == 0, (png.name, color)
            continue
        start, end = window

        def pixel(seconds: float, left: int = left, right: int = right) -> float:
            return left + min(max(seconds, 0), x_max) / x_max * (right - left)

        first, last = pixel(start), pixel(end)
        assert columns.size > 0.7 * (last - first), (png.name, color, columns)
        # Edges within 3 pixels: an event's dashed line or a phase boundary may sit on one.
        assert abs(columns.min() - first) <= 3 and abs(columns.max() - last) <= 3, (
            png.name, color, (columns.min(), columns.max()), (first, last))


def test_scenario_name_and_title_top_the_report(played: Report):
    scenario = played.summary["scenario"]
    assert (scenario["name"], scenario["title"]) == ("error-burst", "Balance checks start failing")
    assert played.markdown.startswith(
        "# Load run report: scenario `error-burst`\n\n**Balance checks start failing**\n")
    assert "<h1>Load run report: scenario <code>error-burst</code></h1>" in played.html
    assert '<p class="subtitle">Balance checks start failing</p>' in played.html
    assert "<title>Load run report, scenario error-burst," in played.html
    # In the headline: the scenario's verdict and its signals.
    assert "- **scenario error-burst:** FAILED, 3 of 5 signals seen\n" in played.markdown
    assert ">FAILED, 3 of 5 signals seen</b>" in played.html


def test_scenario_section_has_story_timeline_and_every_signal(played: Report):
    t0, _ = run_window(played.run_dir)
    written = error_burst(t0)
    section = played.markdown.split(f"\n{SCENARIO_HEADING}\n", 1)[1].split("\n## ", 1)[0]
    assert written["story"] in section
    assert "It started at 2 s of the load run and finished at 150 s." in section
    assert "Result: **FAILED**: 3 of 5 expected signals seen." in section

    # The timeline in seconds since the load run started, the charts' x axis.
    assert markdown_table(played.markdown, "### Timeline") == [
        {"phase": "baseline", "from (s)": "2", "to (s)": "20", "lasted (s)": "18"},
        {"phase": "balance errors", "from (s)": "20", "to (s)": "120", "lasted (s)": "100"},
        {"phase": "recovery", "from (s)": "120", "to (s)": "150", "lasted (s)": "30"}]
    [fault] = played.summary["scenario"]["faults"]
    assert fault | {"start_s": 20, "end_s": 120} == fault
    assert fault["label"] == "error-burst: balance errors"

    rows = markdown_table(played.markdown, "### Expected signals")
    assert [r["expected signal"] for r in rows] == [s["what"] for s in written["signals"]]
    fast_burn, span, metric, slow_burn, log = rows
    assert fast_burn == {"kind": "alert", "fault": "balance errors",
                         "expected signal": 'ErrorBudgetFastBurn{slo="reads"}',
                         "bound (s)": "60", "seen": "yes", "seen after (s)": "35.5 (at 55.5)",
                         "resolved after (s)": "20 (bound 60)", "detail": "critical"}
    assert span | {"seen": "yes", "resolved after (s)": "–",
                   "detail": written["signals"][1]["detail"]} == span
    assert metric["seen"] == "yes, late"  # 15 s after the fault, its bound 10 s
    assert slow_burn | {"seen": "no", "seen after (s)": "–",
                        "resolved after (s)": "–"} == slow_burn
    assert log | {"seen": "not checked", "detail": "no API log here"} == log

    html_section = played.html.split('<h2 id="scenario">', 1)[1].split("<h2>", 1)[0]
    html_rows = re.findall(r'<tr class="signal">.*?</tr>', html_section, re.DOTALL)
    assert len(html_rows) == len(written["signals"])
    for row, signal in zip(html_rows, written["signals"], strict=True):
        assert str(escape(signal["what"])) in row
        assert str(escape(signal["detail"])) in row
    # Seen in time passes; late or missing fails; not checked is only a warning.
    assert [re.search(r'<td class="(pass|fail|warn)">', row)[1] for row in html_rows] == [
        "pass", "pass", "fail", "fail", "warn"]


def test_every_chart_shades_each_fault_window(tmp_path: Path):
    """Three faults, the last one lasting past the run's end: each shaded in its own colour
    on every chart, between its start and its end."""
    t0, x_max = run_window(SAMPLE_RUN)
    scenario = error_burst(t0)
    windows = [(20, 60), (80, 120), (140, x_max + 30)]
    scenario["faults"] = [{"name": f"fault {i}", "kind": "fault_switch", "start": t0 + start,
                           "end": t0 + end} for i, (start, end) in enumerate(windows)]
    report = report_of(SAMPLE_RUN, scenario, tmp_path / "report")
    drawn = {c["file"] for c in report.summary["charts"]}
    assert drawn == LOCUST_CHARTS  # no Prometheus: Locust's charts only
    for name in drawn:
        check_shaded(report.out / name, windows, x_max)
    assert ("Shaded on every chart: the faults of scenario error-burst" in
            report.markdown.split("\n## Charts\n", 1)[1])


def test_without_scenario_nothing_is_shaded_or_said(tmp_path: Path):
    _, x_max = run_window(SAMPLE_RUN)
    report = report_of(SAMPLE_RUN, None, tmp_path / "report")
    assert "scenario" not in report.summary
    assert report.markdown.startswith("# Load run report\n\nRun folder")
    assert "<h1>Load run report</h1>" in report.html
    assert SCENARIO_HEADING not in report.markdown and 'id="scenario"' not in report.html
    for name in LOCUST_CHARTS:
        check_shaded(report.out / name, [], x_max)


def test_older_scenario_file_missing_fields_still_reports(tmp_path: Path):
    """A scenario.json with only some fields: a fault with no end lasted to the run's end; a
    signal with no verdict is shown as unknown; the scenario as not judged."""
    t0, x_max = run_window(SAMPLE_RUN)
    scenario = {"scenario": "lock-held",
                "faults": [{"name": "ledger locked", "start": t0 + 30}],
                "signals": [{"what": "a slow span on POST /transfers"}]}
    report = report_of(SAMPLE_RUN, scenario, tmp_path / "report")
    assert report.markdown.startswith("# Load run report: scenario `lock-held`\n\nRun folder")
    assert "- **scenario lock-held:** NOT JUDGED, 0 of 1 signals seen" in report.markdown
    assert "No phases recorded." in report.markdown
    [row] = markdown_table(report.markdown, "### Expected signals")
    assert row == {"kind": "?", "fault": "–", "expected signal": "a slow span on POST /transfers",
                   "bound (s)": "–", "seen": "unknown", "seen after (s)": "–",
                   "resolved after (s)": "–", "detail": ""}
    [fault] = markdown_table(report.markdown.split("Faults, shaded", 1)[1], "")
    assert (fault["from (s)"], fault["to (s)"]) == ("30", "–")
    for name in LOCUST_CHARTS:
        check_shaded(report.out / name, [(30, x_max)], x_max)


@pytest.mark.parametrize(("content", "says"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "the file should be a JSON object"),
    ('{"faults": [{"name": "ledger locked", "start": "soon"}]}',
     'faults[0].start should be a number, not "soon"'),
    ('{"signals": {"what": "x"}}', "signals should be a list"),
    ('{"passed": "yes"}', "passed should be true or false"),
])
def test_malformed_scenario_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture,
                                          content: str, says: str):
    run_dir = tmp_path / "run"
    shutil.copytree(SAMPLE_RUN, run_dir, ignore=shutil.ignore_patterns("report"))
    (run_dir / "scenario.json").write_text(content)
    assert main([str(run_dir), "--out", str(tmp_path / "report")]) == 1
    error = capsys.readouterr().err
    assert f"{run_dir / 'scenario.json'}: {says}" in error, error
    assert not (tmp_path / "report" / "index.html").exists()


def chromium(*arguments: str) -> subprocess.CompletedProcess:
    """Headless Chromium (Debian's) on a page of files, with no network at all."""
    with tempfile.TemporaryDirectory(prefix="bank-report-chromium-") as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
             *arguments], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_scenario_section_renders_in_a_browser(played: Report, tmp_path: Path):
    """The page as Chromium builds it has the section and a row per signal, and its
    screenshot shows the charts with the fault shaded: the PNG files load beside the page."""
    page = (played.out / "index.html").as_uri()
    dom = chromium("--dump-dom", page).stdout
    section = dom.split('<h2 id="scenario">Scenario</h2>', 1)[1].split("<h2>", 1)[0]
    assert section.count('<tr class="signal">') == len(played.summary["scenario"]["signals"])
    assert "ErrorBudgetFastBurn" in section

    shot = tmp_path / "page.png"
    chromium("--hide-scrollbars", "--window-size=1100,9000", f"--screenshot={shot}", page)
    pixels = imread(shot)[:, :, :3]
    tint = SHADE_ALPHA * np.array(to_rgb(SHADE_COLORS[0])) + (1 - SHADE_ALPHA)
    tinted = (np.abs(pixels - tint) < 0.02).all(axis=2).sum()
    # Four Locust charts, each shading about 300 x 200 pixels.
    assert tinted > 4 * 30_000, tinted


@slow
def test_scenario_shades_the_prometheus_and_slo_charts(stack: NativeStack, faulty: Report,
                                                       tmp_path: Path):
    """On a run of the live stack, the server's charts and the burn-rate chart are shaded
    too."""
    t0, x_max = run_window(faulty.run_dir)
    scenario = error_burst(t0) | {"faults": [{"name": "balance errors", "kind": "fault_switch",
                                              "start": t0 + 8, "end": t0 + 20}]}
    report = report_of(faulty.run_dir, scenario, tmp_path / "report", stack.prometheus_url)
    drawn = {c["file"]: c["source"] for c in report.summary["charts"]}
    assert set(drawn) >= LOCUST_CHARTS | PROMETHEUS_CHARTS | {"slo_burn_rate.png"}, drawn
    for name in drawn:
        check_shaded(report.out / name, [(8, 20)], x_max)
