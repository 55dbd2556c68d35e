"""What `bank stat` asks Prometheus, and the snapshot it gets back.

Every number is a PromQL expression evaluated by Prometheus at one instant (the snapshot's
`at`), over one rate window; nothing is computed from /metrics here. The history behind a
sparkline is the same expression over a range (query_range). The expressions are the ones the
dashboards use (docs/metrics.md names the series), written out so `--show-queries` can print
them and anyone can paste them into Prometheus' own page.
"""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bankops.terminal.prometheus import Prometheus

API_JOB = "bank-api"
SPARK_POINTS = 20  # points of a sparkline's history
SCRAPE_S = 5  # prometheus.yml's scrape interval: a finer history step has nothing to show
_DURATION = re.compile(r"(\d+(ms|[smhdwy]))+")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class UnknownRoute(Exception):
    def __init__(self, route: str, known: list[str]) -> None:
        super().__init__(f"no route {route!r} in Prometheus' bank-api series. Known routes: "
                         + (", ".join(known) or "none yet (has the API served a request?)"))


def seconds(duration: str) -> float:
    """A Prometheus duration ("90s", "15m", "1h30m") in seconds; ValueError if it is none."""
    if not _DURATION.fullmatch(duration):
        raise ValueError(f"{duration!r} is not a duration such as 30s, 15m or 1h")
    return sum(int(n) * _SECONDS[unit] for n, unit in re.findall(r"(\d+)(ms|[smhdwy])",
                                                                  duration))


# ------------------------------------------------------------------ the questions


@dataclass(frozen=True)
class Section:
    """Expressions that share their grouping labels: one row per label set, one column per
    expression; `history` names the columns that get a sparkline with --since."""

    by: tuple[str, ...]
    queries: dict[str, str]
    history: tuple[str, ...] = ()


def _api(handler: str | None = None) -> str:
    """The label matchers of the API's series, of one route's when `handler` is given."""
    return f'job="{API_JOB}"' + (f", handler={json.dumps(handler)}" if handler else "")


def route_section(window: str, handler: str | None = None) -> Section:
    """Per route (per method when `handler` is given): rate, 5xx and 4xx shares of it,
    latency quantiles, requests in flight."""
    by = ("method",) if handler else ("handler",)
    return Section(by, _request_queries(_api(handler), by, window), history=("rate", "p95"))


def total_section(window: str, handler: str | None = None) -> Section:
    return Section((), _request_queries(_api(handler), (), window), history=("rate", "p95"))


def _request_queries(selector: str, labels: tuple[str, ...], window: str) -> dict[str, str]:
    by = ", ".join(labels)
    rate = f"sum by ({by}) (rate(http_requests_total{{{selector}}}[{window}]))"

    def share(status: str) -> str:  # 0 when none of them, NaN when no request at all
        part = (f'sum by ({by}) (rate(http_requests_total{{{selector}, status=~"{status}"}}'
                f"[{window}]))")
        return f"({part} or {rate} * 0) / {rate}"

    def quantile(q: float) -> str:
        return (f"histogram_quantile({q}, sum by ({', '.join((*labels, 'le'))}) "
                f"(rate(http_request_duration_seconds_bucket{{{selector}}}[{window}])))")

    return {"rate": rate, "server_errors": share("5.."), "refusals": share("4.."),
            "p50": quantile(0.5), "p95": quantile(0.95), "p99": quantile(0.99),
            "in_flight": f"sum by ({by}) (http_requests_inprogress{{{selector}}})"}


def status_section(window: str, handler: str) -> Section:
    return Section(("status",), {
        "rate": f"sum by (status) (rate(http_requests_total{{{_api(handler)}}}[{window}]))"})


def process_section(window: str) -> Section:
    """Every scrape target, and the CPU and memory of those that export process_* series
    (the API, Prometheus, postgres-exporter)."""
    return Section(("job", "instance"), {
        "up": "up",
        "cpu": f"rate(process_cpu_seconds_total[{window}])",
        "memory": "process_resident_memory_bytes",
    }, history=("cpu",))


def database_section(window: str) -> Section:
    api = f"{{{_api()}}}"
    return Section((), {
        "pool_size": f"sum(bank_db_pool_size{api})",
        "in_use": f"sum(bank_db_pool_checked_out{api})",
        "idle": f"sum(bank_db_pool_idle{api})",
        "overflow": f"sum(bank_db_pool_overflow{api})",
        "wait_p95": "histogram_quantile(0.95, sum by (le) "
                    f"(rate(bank_db_pool_checkout_seconds_bucket{api}[{window}])))",
        "errors": f"sum(rate(bank_db_errors_total{api}[{window}])) or vector(0)",
        "postgres_up": "min(pg_up)",
        "connections": "sum(pg_stat_activity_count)",
        "max_connections": "max(pg_settings_max_connections)",
    }, history=("in_use",))


def slo_section() -> Section:
    """The objectives' recorded series (slo-rules.yml): budget left over the period and how
    fast it burns now."""
    return Section(("slo",), {
        "objective": "max by (slo) (slo:objective:ratio)",
        "budget_left": "min by (slo) (slo:period_error_budget_remaining:ratio)",
        "burn_1m": "max by (slo) (slo:burn_rate:rate1m)",
        "burn_6m": "max by (slo) (slo:burn_rate:rate6m)",
    }, history=("budget_left",))


def alert_section() -> Section:
    return Section(("alertname", "severity", "slo"),
                   {"firing": 'count by (alertname, severity, slo) (ALERTS{alertstate="firing"})'})


# ------------------------------------------------------------------ the answers


@dataclass
class Row:
    key: tuple[str, ...]  # the section's `by` labels' values
    values: dict[str, float] = field(default_factory=dict)  # absent: Prometheus had no value
    history: dict[str, list[float]] = field(default_factory=dict)

    def get(self, column: str) -> float:
        return self.values.get(column, math.nan)


@dataclass
class Snapshot:
    at: float  # unix time every instant query was evaluated at
    window: str
    since: str | None
    route: str | None  # the route template asked for, or None for every route
    sections: dict[str, list[Row]]
    warnings: list[str]

    def rows(self, name: str) -> list[Row]:
        return self.sections.get(name, [])


def sections_for(window: str, route: str | None) -> dict[str, Section]:
    sections = {"routes": route_section(window, route), "total": total_section(window, route)}
    if route:
        sections["statuses"] = status_section(window, route)
    return sections | {"processes": process_section(window), "database": database_section(window),
                       "slos": slo_section(), "alerts": alert_section()}


def read(prometheus: Prometheus, sections: dict[str, Section], at: float,
         since: str | None = None) -> dict[str, list[Row]]:
    """Every section's expressions at `at` (and over `since` before it), in parallel."""
    jobs = [(name, column, expr, False) for name, section in sections.items()
            for column, expr in section.queries.items()]
    if since:
        jobs += [(name, column, section.queries[column], True)
                 for name, section in sections.items() for column in section.history]
        span = seconds(since)
        step = max(SCRAPE_S, span / SPARK_POINTS)
        points = int(span // step) + 1

    def ask(job: tuple[str, str, str, bool]):
        name, column, expr, over_time = job
        if over_time:
            return job, prometheus.over_time(expr, at - span, at, step)
        return job, prometheus.instant(expr, at)

    rows: dict[str, dict[tuple[str, ...], Row]] = {name: {} for name in sections}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for (name, column, _, over_time), answer in pool.map(ask, jobs):
            by = sections[name].by
            for series in answer:
                key = tuple(series.labels.get(label, "") for label in by)
                row = rows[name].setdefault(key, Row(key))
                if over_time:
                    row.history[column] = _history(series, at - span, step, points)
                else:
                    row.values[column] = series.value
    return {name: list(found.values()) for name, found in rows.items()}


def _history(series, start: float, step: float, points: int) -> list[float]:
    """The series' values on the query's grid of `points` steps, NaN where it had none."""
    values = [math.nan] * points
    for t, value in series.points:
        index = round((t - start) / step)
        if 0 <= index < points:
            values[index] = value
    return values


def known_routes(prometheus: Prometheus, at: float) -> list[str]:
    found = prometheus.instant(f"group by (handler) (http_requests_total{{{_api()}}})", at)
    return sorted(series.labels["handler"] for series in found)


def match_route(route: str, known: list[str]) -> str:
    """The route template `route` names: itself, or the template a concrete path fits
    (/accounts/42 → /accounts/{account_id})."""
    path = route.split("?", 1)[0]
    if path in known:
        return path
    for template in known:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    raise UnknownRoute(route, known)


def snapshot(prometheus: Prometheus, *, window: str = "1m", route: str | None = None,
             since: str | None = None, at: float | None = None) -> Snapshot:
    seconds(window)  # a bad window is the user's error, said before any query
    if since:
        seconds(since)
    at = time.time() if at is None else at
    template = match_route(route, known_routes(prometheus, at)) if route else None
    sections = read(prometheus, sections_for(window, template), at, since)
    return Snapshot(at, window, since, template, sections, _warnings(sections["processes"]))


def _warnings(targets: list[Row]) -> list[str]:
    """What the scrape targets' `up` says about the API's numbers."""
    api = [row for row in targets if row.key[0] == API_JOB and "up" in row.values]
    if not api:
        return [f"Prometheus scrapes no job {API_JOB!r}: is it this stack's Prometheus?"]
    return [f"{API_JOB} {row.key[1]} is down (up == 0): its numbers are the last ones scraped"
            for row in api if row.get("up") != 1]
