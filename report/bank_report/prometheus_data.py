"""What Prometheus saw during the run: the server's side of the load, and the alerts.

Every query is a range query over the run's window, one point every 5 s (the scrape interval),
so each chart has the resolution Prometheus itself has. Rates use a 30 s window: six scrapes,
short enough to follow a run of a minute or two. Metric names: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import httpx

STEP_SECONDS = 5
API = 'job="bank-api"'


def _latency(q: float) -> str:
    return (f"histogram_quantile({q}, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{{{API}}}[30s])))")


# chart -> {series label: PromQL}. A label "{name}" takes its value from that result label,
# for queries that return one series per value (status classes).
QUERIES: dict[str, dict[str, str]] = {
    "server_latency": {"p50": _latency(0.5), "p95": _latency(0.95), "p99": _latency(0.99)},
    "requests_by_status": {
        "{class}": 'sum by (class) (label_replace(rate(http_requests_total{job="bank-api"}[30s]),'
                   ' "class", "${1}xx", "status", "(.).."))',
    },
    "db_pool": {
        "checked out": f"sum(bank_db_pool_checked_out{{{API}}})",
        "idle": f"sum(bank_db_pool_idle{{{API}}})",
        "overflow": f"sum(bank_db_pool_overflow{{{API}}})",
        "pool size": f"sum(bank_db_pool_size{{{API}}})",
    },
    "process_cpu": {"API processes": f"sum(rate(process_cpu_seconds_total{{{API}}}[30s]))"},
    "process_memory": {"API processes": f"sum(process_resident_memory_bytes{{{API}}})"},
}
# Pending alerts are included: an alert that waited out part of its `for:` and then cleared
# is worth seeing too.
ALERTS = 'ALERTS{alertstate=~"firing|pending"}'


@dataclass
class Series:
    label: str
    timestamps: list[float]
    values: list[float]


@dataclass
class Alert:
    """One alert (name + labels) over the window: when it was pending, when it fired."""

    name: str
    severity: str
    labels: dict[str, str]  # the others: job, instance, handler, ...
    pending: list[float] = field(default_factory=list)  # evaluation times, epoch seconds
    firing: list[float] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return bool(self.firing)


@dataclass
class PrometheusData:
    url: str
    reachable: bool
    error: str | None = None  # why it could not be reached
    version: str | None = None
    postgres_version: str | None = None
    charts: dict[str, list[Series]] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    query_errors: dict[str, str] = field(default_factory=dict)  # PromQL -> error


class Prometheus:
    def __init__(self, url: str, timeout: float = 10) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, **params: object) -> dict | list:
        body = self.http.get(path, params=params).json()
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def version(self) -> str:
        return self._get("/api/v1/status/buildinfo")["version"]

    def recording_rules(self) -> list[dict]:
        """The recording rules Prometheus has loaded, every group's, as /api/v1/rules lists them
        (name, query, labels, ...)."""
        groups = self._get("/api/v1/rules", type="record")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def query(self, expr: str, at: float) -> list[dict]:
        return self._get("/api/v1/query", query=expr, time=at)["result"]

    def query_range(self, expr: str, start: float, end: float) -> list[dict]:
        return self._get("/api/v1/query_range", query=expr, start=start, end=end,
                         step=STEP_SECONDS)["result"]


class LenientQueries:
    """A Prometheus client that notes a failed query in `errors` (query -> error) and answers
    it with nothing, instead of raising: the report says what is missing."""

    def __init__(self, prometheus: Prometheus, errors: dict[str, str]) -> None:
        self.prometheus, self.errors = prometheus, errors

    def _noted(self, key: str, call, *args: object) -> list[dict]:
        try:
            return call(*args)
        except (httpx.HTTPError, ValueError) as exc:
            self.errors[key] = f"{type(exc).__name__}: {exc}"
            return []

    def rules(self, name: str) -> dict[str, str]:
        """The loaded recording rules named `name`: slo label -> PromQL."""
        return {rule.get("labels", {}).get("slo", "?"): rule["query"]
                for rule in self._noted(f"/api/v1/rules ({name})",
                                        self.prometheus.recording_rules)
                if rule["name"] == name}

    def instant(self, expr: str, at: float) -> list[dict]:
        return self._noted(expr, self.prometheus.query, expr, at)

    def range(self, expr: str, start: float, end: float) -> list[dict]:
        return self._noted(expr, self.prometheus.query_range, expr, start, end)


def _series(label: str, result: dict) -> Series:
    if label.startswith("{") and label.endswith("}"):
        label = result["metric"].get(label[1:-1], "?")
    # Prometheus sends numbers as strings, NaN included (a quantile with no traffic).
    return Series(label, [float(t) for t, _ in result["values"]],
                  [float(v) for _, v in result["values"]])


def _alerts(results: list[dict]) -> list[Alert]:
    found: dict[tuple, Alert] = {}
    for result in results:
        labels = dict(result["metric"])
        state = labels.pop("alertstate")
        name = labels.pop("alertname")
        labels.pop("__name__", None)
        severity = labels.pop("severity", "")
        key = (name, tuple(sorted(labels.items())))
        alert = found.setdefault(key, Alert(name, severity, labels))
        getattr(alert, state).extend(float(t) for t, _ in result["values"])
    return sorted(found.values(), key=lambda a: (not a.fired, (a.firing or a.pending)[0], a.name))


def collect(url: str, start: float, end: float) -> PrometheusData:
    """Every chart's series and the alerts over [start, end]; never raises for a Prometheus
    that is down or a query that fails: the report says what is missing instead."""
    prometheus = Prometheus(url)
    data = PrometheusData(url=url, reachable=False)
    try:
        try:
            data.version = prometheus.version()
        except (httpx.HTTPError, ValueError) as exc:
            data.error = f"{type(exc).__name__}: {exc}"
            return data
        data.reachable = True
        lenient = LenientQueries(prometheus, data.query_errors)
        for chart, queries in QUERIES.items():
            series = [_series(label, r) for label, expr in queries.items()
                      for r in lenient.range(expr, start, end)]
            # A chart with nothing but NaN (no traffic at all) has nothing to show.
            if any(not math.isnan(v) for s in series for v in s.values):
                data.charts[chart] = sorted(series, key=lambda s: s.label) \
                    if chart == "requests_by_status" else series
        data.alerts = _alerts(lenient.range(ALERTS, start, end))
        try:
            found = prometheus.query("pg_static", end)
            data.postgres_version = found[0]["metric"].get("short_version") if found else None
        except (httpx.HTTPError, ValueError):
            pass  # only a version string for the report
    finally:
        prometheus.close()
    return data
