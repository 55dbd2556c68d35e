"""Turn a load run's folder into a report: an HTML page, the same in Markdown, PNG charts.

    python -m bank_report RUN_DIR [--prometheus http://127.0.0.1:9090] [--out DIR]

RUN_DIR is what a load run (python -m bank_loadtest) writes (locust_stats.csv,
locust_stats_history.csv, locust_failures.csv, locust_request_ids.json, run.json,
invariants.json); the compose
stack's headless run (CSV files only) works too, with less to say. Optional extras in
RUN_DIR: machine.json (the machine, as recorded when the run started), events.json
(things done during the run, such as turning the fault switch on, marked on every chart) and
scenario.json (the scenario the run played, python -m bank_scenarios run NAME: its story,
timeline and expected signals get a section, its faults are shaded on every chart).

With --prometheus, the charts of the server's side (latency, status classes, DB pool, CPU,
memory), the alerts and the service level objectives of slos.yml (slo_data.py: each one's SLI
over the run, the error budget the run spent and the budget left, its burn-rate alerts) come
from Prometheus over the run's window; the data must still be in Prometheus. Without it, or
when it does not answer, the report says so and keeps Locust's part.

Writes into DIR (default RUN_DIR/report): index.html, report.md, summary.json (every number
of the report, for scripts and tests) and the PNG files both pages show.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bank_report import charts, locust_data, machine, prometheus_data, scenario_data, slo_data
from bankops.slo import spec as slo_spec

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Requests shown for the worst request name: failed ones, and the slowest ones.
LOOKUP_ROWS = 5
LOKI_QUERY = '{{service="api"}} | json | request_id="{}"'
ALL_CHART_FILES = {"throughput.png", "latency.png", "error_ratio.png", "users.png"} | {
    chart.file for chart, *_ in charts.PROMETHEUS_CHARTS.values()} | {charts.SLO_CHART_FILE}


# ------------------------------------------------------------------------ number formatting


def count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def ms(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.0f}"


def per_second(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def fine_percent(value: float | None) -> str:
    """A share close to 100 %, where two decimals would round 99.996 % up to 100.00 %."""
    return "n/a" if value is None else f"{value:.3%}"


def target(value: float) -> str:
    """An objective as slos.yml writes it: 99.9 %, not 99.90 %."""
    return f"{round(value * 100, 6):g}%"


def times(value: float | None) -> str:
    """A burn rate: how many times the allowed pace."""
    return "n/a" if value is None else f"{value:,.2f}x"


def secs(value: float | None) -> str:
    """Seconds to a tenth: a scenario played fast has phases of a few seconds."""
    return "–" if value is None else f"{value:,.1f}".removesuffix(".0")


def speed(value: float) -> str:
    return f"{value:g}x"


def signal_status(status: str) -> str:
    return scenario_data.STATUSES[status][0]


def signal_class(status: str) -> str:
    return scenario_data.STATUSES[status][1]


def size(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.1f} GiB"


def option(value: object) -> str:
    return "(default)" if value is None else str(value)


def md_cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------------ the run folder


def _json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.exists() else None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _window(run: dict, history: locust_data.History | None) -> tuple[float, float]:
    """The run's start and end (epoch seconds): run.json's, else the history's first and
    last second."""
    if run.get("started_at") and run.get("ended_at"):
        return _epoch(run["started_at"]), _epoch(run["ended_at"])
    if history and history.timestamps:
        return history.timestamps[0], history.timestamps[-1]
    raise ValueError("no run.json and no locust_stats_history.csv: the run's time is unknown")


def _events(run_dir: Path, t0: float) -> list[charts.Event]:
    return [charts.Event(_epoch(e["at"]) - t0, e["what"])
            for e in _json(run_dir / "events.json") or []]


def _marks(events: list[charts.Event], scenario: scenario_data.Scenario | None,
           t0: float, end: float) -> charts.Marks:
    """The marks of every chart: the events, and the scenario's faults and phase boundaries. A
    fault with no recorded end lasted until the scenario's end, else the run's."""
    if scenario is None:
        return charts.Marks(events)
    last = scenario.ended_at or end
    shades = [charts.Shade(f.start - t0, (f.end or last) - t0,
                           scenario_data.fault_label(scenario, f))
              for f in scenario.faults if f.start is not None]
    boundaries = sorted({t - t0 for p in scenario.phases for t in (p.start, p.end)
                         if t is not None})
    return charts.Marks(events, shades, boundaries)


def _row(row: locust_data.StatsRow) -> dict:
    return {"method": row.method, "name": row.name, "requests": row.requests,
            "failures": row.failures, "failure_ratio": row.failure_ratio,
            "requests_per_second": row.requests_per_second, "p50_ms": row.p50_ms,
            "p95_ms": row.p95_ms, "p99_ms": row.p99_ms, "max_ms": row.max_ms}


def _alert(alert: prometheus_data.Alert, t0: float) -> dict:
    def since(times: list[float]) -> float | None:
        return round(times[0] - t0) if times else None

    return {"name": alert.name, "severity": alert.severity, "labels": alert.labels,
            "fired": alert.fired, "pending_from_s": since(alert.pending),
            "firing_from_s": since(alert.firing),
            "firing_until_s": round(alert.firing[-1] - t0) if alert.firing else None}


def _objective(over_run: slo_data.ObjectiveOverRun, alerts: list[prometheus_data.Alert],
               t0: float) -> dict:
    objective = over_run.objective
    return {
        "name": objective.name, "title": objective.title, "sli": objective.sli,
        "threshold_ms": None if objective.threshold_seconds is None
        else round(objective.threshold_seconds * 1000),
        "objective": objective.objective, "error_budget": objective.budget,
        "error_ratio": over_run.error_ratio, "sli_over_run": over_run.sli, "met": over_run.met,
        "burn_rate": over_run.burn_rate, "budget_spent": over_run.budget_spent,
        "budget_left": over_run.budget_left,
        "alerts": [_alert(a, t0) for a in alerts if a.labels.get("slo") == objective.name],
        "queries": over_run.queries,
    }


def _rules_differ(slo: slo_data.SloData) -> list[str]:
    """The objectives whose value in the loaded rules (slo:objective:ratio) is not slos.yml's."""
    loaded = slo.rules_objectives
    return [o.name for o in slo.spec.objectives
            if loaded and not math.isclose(loaded.get(o.name, -1), o.objective)]


def slos(slo: slo_data.SloData | None, alerts: list[prometheus_data.Alert],
         t0: float) -> dict | None:
    """The section on the service level objectives (None: Prometheus was not queried)."""
    if slo is None:
        return None
    spec = slo.spec
    names = {a.alert for a in spec.alerts}
    objectives = [_objective(o, [a for a in alerts if a.name in names], t0)
                  for o in slo.objectives]
    return {
        "file": slo_spec.SPEC.name, "period": slo_spec.duration(spec.period),
        "demo_period": slo_spec.duration(spec.demo_period),
        "demo_period_seconds": spec.demo_period, "time_scale": spec.time_scale,
        "run_seconds": slo.run_seconds, "burn_rate_alerts": sorted(names),
        "rules_loaded": bool(slo.rules_objectives), "rules_differ": _rules_differ(slo),
        "judged": sum(o["met"] is not None for o in objectives),
        "met": sum(o["met"] is True for o in objectives),
        "objectives": objectives,
    }


def worst_name(rows: list[locust_data.StatsRow]) -> tuple[locust_data.StatsRow, str] | None:
    """The request name to look at first: the one with the most failed requests (ties: the
    higher p95); when no request failed, the one with the highest p95 (ties: the higher max).
    Returns it and why it was chosen."""
    candidates = [r for r in rows if not r.is_total and r.requests]
    if not candidates:
        return None
    failing = [r for r in candidates if r.failures]
    if failing:
        row = max(failing, key=lambda r: (r.failures, r.p95_ms or 0))
        return row, f"the most failed requests ({row.failures:,})"
    row = max(candidates, key=lambda r: (r.p95_ms or 0, r.max_ms or 0))
    return row, f"the highest p95 ({ms(row.p95_ms)} ms); no request failed"


def _kept(request: locust_data.KeptRequest) -> dict:
    return {**vars(request), "loki": LOKI_QUERY.format(request.request_id)}


def _some_failed(kept: locust_data.RequestIds, limit: int) -> list[locust_data.KeptRequest]:
    """Up to `limit` failed requests, the newest of each reason in turn (every reason shows)."""
    queues = [list(reversed(f.requests)) for f in kept.failures]
    picked: list[locust_data.KeptRequest] = []
    while len(picked) < limit and any(queues):
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def lookups(stats: list[locust_data.StatsRow], path: Path) -> dict | None:
    """The requests to look up in the API's logs (locust_request_ids.json): for the worst
    request name a few failed and the slowest requests, and every name's slowest request."""
    kept_by_name = locust_data.read_request_ids(path)
    if kept_by_name is None:
        return None
    worst = worst_name(stats)
    section: dict = {"file": path.name, "worst": None, "slowest_by_name": []}
    if worst is not None:
        row, why = worst
        kept = kept_by_name.get((row.method, row.name))
        section["worst"] = {
            "method": row.method, "name": row.name, "why": why, "failures": row.failures,
            "p95_ms": row.p95_ms,
            "failed": [_kept(r) for r in _some_failed(kept, LOOKUP_ROWS)] if kept else [],
            "slowest": [_kept(r) for r in kept.slowest[:LOOKUP_ROWS]] if kept else [],
        }
    for row in stats:
        kept = kept_by_name.get((row.method, row.name))
        if not row.is_total and kept and kept.slowest:
            section["slowest_by_name"].append(
                {"method": row.method, "name": row.name, **_kept(kept.slowest[0])})
    return section


# ------------------------------------------------------------------------ the report


def build(run_dir: Path, out: Path, prometheus_url: str | None) -> dict:
    """Read everything, draw the charts, return what the pages show (summary.json)."""
    stats = locust_data.read_stats(run_dir / "locust_stats.csv")
    history_csv = run_dir / "locust_stats_history.csv"
    history = locust_data.read_history(history_csv) if history_csv.exists() else None
    run = _json(run_dir / "run.json") or {}
    start, end = _window(run, history)
    events = _events(run_dir, start)
    scenario = scenario_data.read(run_dir / scenario_data.FILE)
    marks = _marks(events, scenario, start, end)

    recorded_machine = _json(run_dir / "machine.json")
    for stale in ALL_CHART_FILES:  # a chart missing this time must not linger from the last
        (out / stale).unlink(missing_ok=True)
    drawn = charts.draw_locust(history, start, end - start, out, marks) if history else []

    prometheus = slo = None
    if prometheus_url:
        prometheus = prometheus_data.collect(prometheus_url, start, end)
        drawn += charts.draw_prometheus(prometheus, start, end - start, out, marks)
    if prometheus and prometheus.reachable:
        slo = slo_data.collect(prometheus_url, slo_spec.load(), start, end)
        prometheus.query_errors |= slo.query_errors
        drawn += charts.draw_slo(slo, start, end - start, out, marks)

    total = next(r for r in stats if r.is_total)
    fired = [a for a in prometheus.alerts if a.fired] if prometheus else []
    # Only when the run played a scenario: without one, summary.json is as it always was.
    played = {} if scenario is None else {"scenario": scenario_data.section(scenario, start)}
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_folder": run_dir.name,
        "window": {"start": datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds"),
                   "end": datetime.fromtimestamp(end, UTC).isoformat(timespec="seconds"),
                   "seconds": round(end - start)},
        **played,
        "rows": [_row(r) for r in stats if not r.is_total],
        "total": _row(total),
        "failures": [vars(f) for f in locust_data.read_failures(run_dir / "locust_failures.csv")],
        "exceptions": locust_data.read_exceptions(run_dir / "locust_exceptions.csv"),
        "lookups": lookups(stats, run_dir / "locust_request_ids.json"),
        "invariants": _json(run_dir / "invariants.json"),
        "verdict": run.get("verdict"),
        "options": run.get("options"),
        "versions": {name: version for name, version in (
            (run.get("versions") or {}) | {
                "prometheus": prometheus.version if prometheus else None,
                "postgresql": prometheus.postgres_version if prometheus else None}
        ).items() if version is not None},
        "locust_exit_code": run.get("locust_exit_code"),
        "machine": recorded_machine or machine.describe(),
        "machine_recorded_at_run": recorded_machine is not None,
        "events": [{"at_s": round(e.seconds), "what": e.what} for e in events],
        "prometheus": None if prometheus is None else {
            "url": prometheus.url, "reachable": prometheus.reachable, "error": prometheus.error,
            "query_errors": prometheus.query_errors,
            "missing_charts": [chart.title for key, (chart, *_) in
                               charts.PROMETHEUS_CHARTS.items()
                               if prometheus.reachable and key not in prometheus.charts]},
        "alerts": [_alert(a, start) for a in prometheus.alerts] if prometheus else [],
        "alerts_fired": sorted({a.name for a in fired}),
        "slos": slos(slo, prometheus.alerts if prometheus else [], start),
        "charts": [vars(c) for c in drawn],
    }


def render(summary: dict, out: Path) -> None:
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",)),
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters |= {"count": count, "ms": ms, "per_second": per_second, "percent": percent,
                    "fine_percent": fine_percent, "target": target, "times": times,
                    "secs": secs, "speed": speed, "signal_status": signal_status,
                    "signal_class": signal_class, "size": size, "option": option,
                    "md": md_cell}
    shown = {"scenario": None} | summary  # the pages' scenario parts test for None
    (out / "index.html").write_text(env.get_template("report.html.j2").render(**shown))
    (out / "report.md").write_text(env.get_template("report.md.j2").render(**shown))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def generate(run_dir: str | Path, out: str | Path | None = None,
             prometheus: str | None = None) -> Path:
    """Write the report of run_dir into out (default run_dir/report); return out."""
    run_dir = Path(run_dir).resolve()
    out = Path(out).resolve() if out else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    render(build(run_dir, out, prometheus), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bank_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path,
                        help="a load run's folder (python -m bank_loadtest)")
    parser.add_argument("--prometheus", help="Prometheus's URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--out", type=Path, help="where the report goes (default RUN_DIR/report)")
    args = parser.parse_args(argv)
    if not (args.run_dir / "locust_stats.csv").exists():
        print(f"{args.run_dir} has no locust_stats.csv: not a load run's folder", file=sys.stderr)
        return 1
    try:
        out = generate(args.run_dir, args.out, args.prometheus)
    except scenario_data.ScenarioFileError as exc:
        print(f"cannot make the report: {exc}", file=sys.stderr)
        return 1
    print(f"report: {out / 'index.html'} (and report.md)")
    return 0

