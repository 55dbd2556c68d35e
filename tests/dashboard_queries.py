"""The queries inside the Grafana dashboards (dashboards/*.json), ready to run elsewhere.

Grafana fills in macros and template variables ($__rate_interval, $route, $__timeFilter(...))
before it sends a query. Tests that run the dashboards' queries against a real Prometheus or
PostgreSQL do the same here, with concrete values:

    prometheus_queries(repo_root)            -> [(dashboard uid, panel title, PromQL)]
    exemplar_queries(repo_root)              -> the PromQL of the targets that ask for exemplars
    annotation_queries(repo_root)            -> [(dashboard uid, annotation name, PromQL)]
    sql_queries(repo_root)                   -> [(dashboard uid, panel title, raw SQL)]
    expand_sql_macros(sql, time_from, time_to) -> SQL PostgreSQL can run
    loki_queries(repo_root)                  -> [(dashboard uid, panel title, LogQL)]
    tempo_queries(repo_root)                 -> [(dashboard uid, panel title, TraceQL)]

Each function returns only its own datasource's queries: a LogQL or TraceQL query is never
among the PromQL ones (Loki and Tempo do not run here; their queries are parsed, not run).
The panels' queries must return data during a load run; an annotation's need not (no
scenario ran in the time range: nothing to mark), so annotation_queries() keeps them apart.

A variable this module does not know makes it raise, rather than send a query Grafana would
never send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROMETHEUS = "prometheus"
POSTGRES = "grafana-postgresql-datasource"
LOKI = "loki"
TEMPO = "tempo"

# Panels that only draw, with no query and no datasource.
NO_DATA_PANEL_TYPES = frozenset({"row", "text"})


@dataclass(frozen=True)
class Query:
    """One query (target) of one panel."""

    dashboard_uid: str
    panel_id: int
    panel_title: str
    ref_id: str
    datasource: dict[str, str]  # {"type": ..., "uid": ...}: the target's own, else the panel's
    target: dict[str, Any]  # the target exactly as stored in the JSON

    @property
    def text(self) -> str:
        """The query as written in the dashboard: PromQL or LogQL `expr`, `rawSql`, or the
        TraceQL `query` of a Tempo target."""
        return (
            self.target.get("expr") or self.target.get("rawSql") or self.target.get("query") or ""
        )


def dashboard_files(repo_root: Path) -> list[Path]:
    return sorted((Path(repo_root) / "dashboards").glob("*.json"))


def load_dashboards(repo_root: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in dashboard_files(repo_root)]


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows included, and the panels nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def iter_queries(repo_root: Path) -> Iterator[Query]:
    for dashboard in load_dashboards(repo_root):
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                yield Query(
                    dashboard_uid=dashboard["uid"],
                    panel_id=panel["id"],
                    panel_title=panel.get("title", ""),
                    ref_id=target.get("refId", ""),
                    datasource=target.get("datasource") or panel.get("datasource") or {},
                    target=target,
                )


# ------------------------------------------------------------------------------ Prometheus

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute_variables(text: str, values: dict[str, str]) -> str:
    """Replace $name and ${name} by values[name]; an unknown name raises ValueError."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"no value for Grafana variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(replace, text)


def prometheus_values(
    *,
    rate_interval: str = "1m",
    interval: str = "5s",
    range_: str = "15m",
    route: str = "/accounts/{account_id}",
    method: str = ".*",
) -> dict[str, str]:
    """Values for the Grafana macros and the dashboards' template variables."""
    return {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
        "route": route,
        "method": method,  # the "All" value of the method variable
    }


def _queries_of(repo_root: Path, datasource_type: str, values: dict[str, str],
                wanted=lambda target: True) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, query with macros and variables filled in) for every
    target of the datasource type that `wanted` accepts."""
    subs = prometheus_values(**values)
    return [
        (q.dashboard_uid, q.panel_title, substitute_variables(q.text, subs))
        for q in iter_queries(repo_root)
        if q.datasource.get("type") == datasource_type and wanted(q.target)
    ]


def prometheus_queries(repo_root: Path, **values: str) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL with macros and variables filled in) for every
    Prometheus target. Keyword arguments override prometheus_values()' defaults."""
    return _queries_of(repo_root, PROMETHEUS, values)


def exemplar_queries(repo_root: Path, **values: str) -> list[tuple[str, str, str]]:
    """Like prometheus_queries(), for the targets with `"exemplar": true` only: Grafana also
    sends their PromQL to Prometheus' /api/v1/query_exemplars and draws what comes back."""
    return _queries_of(repo_root, PROMETHEUS, values, lambda target: target.get("exemplar"))


def iter_annotations(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The annotation queries of a dashboard (annotations.list), as stored in the JSON."""
    yield from dashboard.get("annotations", {}).get("list", [])


def annotation_queries(repo_root: Path, **values: str) -> list[tuple[str, str, str]]:
    """(dashboard uid, annotation name, PromQL with macros and variables filled in) for every
    annotation on the Prometheus datasource. Grafana runs its `expr` as a range query (at
    least `step` apart) and draws an event over each stretch of time a series is above 0,
    titled and tagged from the series' labels (titleFormat, textFormat, tagKeys)."""
    subs = prometheus_values(**values)
    return [
        (dashboard["uid"], annotation.get("name", ""),
         substitute_variables(annotation.get("expr", ""), subs))
        for dashboard in load_dashboards(repo_root)
        for annotation in iter_annotations(dashboard)
        if (annotation.get("datasource") or {}).get("type") == PROMETHEUS
    ]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$")


def variable_selectors(repo_root: Path, **values: str) -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, series selector) for every Prometheus query variable
    written as label_values(selector, label): Grafana asks Prometheus for the series matching
    the selector, a live test can do the same."""
    subs = prometheus_values(**values)
    found = []
    for dashboard in load_dashboards(repo_root):
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query)
            match = _LABEL_VALUES.match(text)
            if not match:
                raise ValueError(
                    f"{dashboard['uid']}: variable {variable['name']}: {text!r} "
                    "is not label_values(selector, label)"
                )
            selector = substitute_variables(match["selector"], subs)
            found.append((dashboard["uid"], variable["name"], selector))
    return found


# ------------------------------------------------------------------------------ PostgreSQL


def sql_queries(repo_root: Path) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, rawSql as written, macros included) for every PostgreSQL
    target. Run expand_sql_macros() on the SQL before sending it to PostgreSQL."""
    return [
        (q.dashboard_uid, q.panel_title, q.text)
        for q in iter_queries(repo_root)
        if q.datasource.get("type") == POSTGRES
    ]


_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SQL_MACRO = re.compile(r"\$__(\w+)\(([^()]*)\)")


def _seconds(duration: str) -> float:
    match = _DURATION.match(duration.strip().strip("'\""))
    if not match:
        raise ValueError(f"not a Grafana duration: {duration!r}")
    return int(match[1]) * _SECONDS[match[2]]


def expand_sql_macros(sql: str, time_from: datetime, time_to: datetime) -> str:
    """Expand Grafana's PostgreSQL macros the way its backend does, for the given time range.

    Supported: $__timeFilter(col), $__timeGroup(col, interval[, fill]),
    $__timeGroupAlias(col, interval[, fill]), $__timeFrom(), $__timeTo(). The fill argument
    only matters to Grafana (it fills missing buckets after the query) and is dropped.
    """
    start = f"'{time_from.isoformat()}'"
    end = f"'{time_to.isoformat()}'"

    def replace(match: re.Match[str]) -> str:
        name = match[1]
        args = [a.strip() for a in match[2].split(",")] if match[2].strip() else []
        if name == "timeFilter" and len(args) == 1:
            return f"{args[0]} BETWEEN {start} AND {end}"
        if name in ("timeGroup", "timeGroupAlias") and len(args) in (2, 3):
            seconds = _seconds(args[1])
            group = f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "timeFrom" and not args:
            return start
        if name == "timeTo" and not args:
            return end
        raise ValueError(f"Grafana SQL macro not supported here: {match[0]}")

    expanded = _SQL_MACRO.sub(replace, sql)
    if "$" in expanded:
        raise ValueError(f"unexpanded Grafana macro or variable left in: {expanded!r}")
    return expanded


def default_time_range(hours: float = 24) -> tuple[datetime, datetime]:
    """A time range ending now, for expand_sql_macros()."""
    end = datetime.now(UTC)
    return end - timedelta(hours=hours), end


# ------------------------------------------------------------------------------ Loki and Tempo


def loki_queries(repo_root: Path, **values: str) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, LogQL with variables filled in) for every Loki target.

    Grafana's Loki datasource puts a single-valued variable into the query as it is (it only
    escapes single quotes): `route="$route"` becomes `route="/accounts/{account_id}"`, whose
    braces need no escaping inside a string compared with `=`."""
    return _queries_of(repo_root, LOKI, values)


def tempo_queries(repo_root: Path, **values: str) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, TraceQL with variables filled in) for every Tempo target."""
    return _queries_of(repo_root, TEMPO, values)
