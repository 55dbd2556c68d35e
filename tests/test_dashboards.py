"""Static checks of the Grafana provisioning: datasource.yml, dashboards/provider.yml and the
dashboard JSON files. Grafana itself does not run here, so everything it would reject, and
every convention the dashboards keep (below), is checked from the files:

- the JSON is typed against npm @grafana/schema with tsc (tests/grafana/; slow: npm);
- dashboards are provisionable as they are: no numeric id, fixed uids, datasources by pinned UID;
- every PromQL expression parses, reads counters only through rate()/increase() over
  $__rate_interval, builds quantiles from sum by (le, ...), and names only documented metrics
  (docs/metrics.md) on the right job;
- every SQL query is a read-only SELECT on the tables the read-only login may read.

Running the queries against a live Prometheus and PostgreSQL is another test's job; both use
tests/dashboard_queries.py to find the queries.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

import dashboard_queries as dq  # from tests/, by pytest's rootdir-based import mode

REPO = Path(__file__).resolve().parents[1]
GRAFANA_TYPECHECK = REPO / "tests" / "grafana"
EXPECTED_UIDS = {"bank-overview", "bank-endpoint", "bank-business"}
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"

# Tables the read-only PostgreSQL login (datasource.yml) has SELECT on.
READABLE_TABLES = {"accounts", "ledger_entries", "transfers", "refusals"}
WRITE_OR_DDL = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|DROP|ALTER|GRANT|REVOKE|CREATE|TRUNCATE|COPY|"
    r"VACUUM|CALL|DO|EXECUTE|LOCK|REINDEX|CLUSTER|COMMENT|SET|RESET|FOR\s+UPDATE|FOR\s+SHARE)\b",
    re.IGNORECASE,
)

# Functions whose argument is a range of a counter: the only way to read a counter.
RANGE_FUNCTIONS = {"rate", "irate", "increase"}

# Series not described in docs/metrics.md: Prometheus' own and the exporters'.
BUILTIN_NAMES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
BUILTIN_PREFIXES = ("pg_", "process_", "locust_")
# Which scrape job each family of series comes from (job names from docs/metrics.md).
JOB_BY_PREFIX = {
    "http_": "bank-api",
    "bank_": "bank-api",
    "process_": "bank-api",
    "pg_": "postgres-exporter",
    "locust_": "locust",
}


# ------------------------------------------------------------------------------ helpers


def dashboards() -> list[dict[str, Any]]:
    return dq.load_dashboards(REPO)


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dq.iter_panels(dashboard) if p.get("type") not in dq.NO_DATA_PANEL_TYPES]


def where(dashboard: dict[str, Any], panel: dict[str, Any]) -> str:
    return f"{dashboard.get('uid')}: panel {panel.get('id')} {panel.get('title')!r}"


def provisioned_datasources() -> dict[str, str]:
    """uid -> type, from datasource.yml."""
    config = yaml.safe_load((REPO / "datasource.yml").read_text(encoding="utf-8"))
    return {ds["uid"]: ds["type"] for ds in config["datasources"]}


def contract() -> tuple[dict[str, tuple[str, set[str]]], set[str]]:
    """docs/metrics.md as ({metric: (type, labels)}, {jobs})."""
    metrics: dict[str, tuple[str, set[str]]] = {}
    jobs: set[str] = set()
    header: list[str] = []
    for line in (REPO / "docs" / "metrics.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not header:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---|---| line under the header
        row = dict(zip(header, cells, strict=False))
        name = re.fullmatch(r"`([\w:-]+)`", row.get("metric", row.get("job", "")))
        if not name:
            continue
        if "job" in row:
            jobs.add(name[1])
        else:
            # labels cell: "`operation` (`credit`, ...), `outcome` (...)": drop the value lists
            labels = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", row.get("labels", ""))))
            metrics[name[1]] = (row.get("type", ""), labels)
    return metrics, jobs


def series_names(metrics: dict[str, tuple[str, set[str]]]) -> dict[str, set[str]]:
    """Every series name a documented metric exposes -> the labels it may carry."""
    names: dict[str, set[str]] = {}
    for name, (kind, labels) in metrics.items():
        base = labels | {"job", "instance"}
        names[name] = base | ({"quantile"} if kind.startswith("summary") else set())
        if kind.startswith("histogram"):
            names[f"{name}_bucket"] = base | {"le"}
        if kind.startswith(("histogram", "summary")):
            names[f"{name}_sum"] = base
            names[f"{name}_count"] = base
    return names


def counter_series(metrics: dict[str, tuple[str, set[str]]]) -> set[str]:
    """Series that only ever grow: documented counters, histogram and summary parts."""
    names = set()
    for name, (kind, _) in metrics.items():
        if kind.startswith("counter"):
            names.add(name)
        if kind.startswith("histogram"):
            names.add(f"{name}_bucket")
        if kind.startswith(("histogram", "summary")):
            names |= {f"{name}_sum", f"{name}_count"}
    return names


def is_counter(name: str, counters: set[str]) -> bool:
    # Exporters' series are not in the contract: by convention a counter's name ends in _total
    # (pg_stat_activity_count is a gauge, so _count alone says nothing).
    return name in counters or name.endswith("_total")


def children(node: Any) -> list[Any]:
    if isinstance(node, promql_parser.AggregateExpr):
        return [node.expr] + ([node.param] if isinstance(node.param, promql_parser.Expr) else [])
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    if isinstance(
        node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)
    ):
        return [node.expr]
    return []


def selectors(node: Any, in_range_function: bool = False):
    """Yield (VectorSelector, read through rate/irate/increase?) for every selector."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node, in_range_function
        return
    inside = in_range_function or (
        isinstance(node, promql_parser.Call) and node.func.name in RANGE_FUNCTIONS
    )
    for child in children(node):
        yield from selectors(child, inside)


def walk(node: Any):
    yield node
    for child in children(node):
        yield from walk(child)


def unparen(node: Any) -> Any:
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


def prometheus_queries() -> list[tuple[str, str, str]]:
    return dq.prometheus_queries(REPO)


def query_id(query: tuple[str, str, str]) -> str:
    return f"{query[0]}:{query[1]}"


PROM_QUERIES = prometheus_queries()
SQL_QUERIES = dq.sql_queries(REPO)


# ------------------------------------------------------------------------------ typing


@pytest.mark.slow
def test_dashboards_typecheck_against_grafana_schema():
    """Each dashboard, written as TypeScript typed with @grafana/schema, passes tsc."""
    npm = shutil.which("npm")
    assert npm, "npm not found: Node.js and npm are needed to type-check the dashboards"
    lock = GRAFANA_TYPECHECK / "package-lock.json"
    installed = GRAFANA_TYPECHECK / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        ci = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=GRAFANA_TYPECHECK,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert ci.returncode == 0, f"npm ci failed:\n{ci.stdout}\n{ci.stderr}"
    check = subprocess.run(
        [npm, "run", "--silent", "check"],
        cwd=GRAFANA_TYPECHECK,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert check.returncode == 0, f"tsc found errors:\n{check.stdout}\n{check.stderr}"


# ------------------------------------------------------------------------------ provisioning


def test_datasource_uids_are_pinned():
    assert provisioned_datasources() == {
        "prometheus": "prometheus",
        "alertmanager": "alertmanager",
        "postgres": "grafana-postgresql-datasource",
    }


def test_provider_reads_the_mounted_dashboards_folder():
    config = yaml.safe_load((REPO / "dashboards" / "provider.yml").read_text(encoding="utf-8"))
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    assert provider["allowUiUpdates"] is False


def test_dashboards_are_provisionable_as_they_are():
    found = dashboards()
    assert {d["uid"] for d in found} == EXPECTED_UIDS
    assert len(found) == len(EXPECTED_UIDS), "two dashboards share a uid"
    for path in dq.dashboard_files(REPO):
        text = path.read_text(encoding="utf-8")
        board = json.loads(text)
        assert board["id"] is None, f"{path.name}: id must be null (Grafana assigns it)"
        assert board["uid"] == path.stem, f"{path.name}: uid should match the file name"
        assert board["schemaVersion"] >= 39
        assert "${DS_" not in text, f"{path.name}: datasource placeholder left from an export"
        assert "__inputs" not in board and "__requires" not in board, path.name
        assert board["refresh"] == "5s" and board["time"]["from"] == "now-15m", path.name
        assert board.get("tags"), f"{path.name}: no tags"


def test_links_point_to_existing_dashboards():
    for board in dashboards():
        for uid in re.findall(r"/d/([\w-]+)", json.dumps(board)):
            assert uid in EXPECTED_UIDS, f"{board['uid']}: link to unknown dashboard {uid}"


@pytest.mark.parametrize("board", dashboards(), ids=lambda d: d["uid"])
def test_every_panel_is_documented_and_pinned(board):
    known = provisioned_datasources()
    for panel in data_panels(board):
        at = where(board, panel)
        assert panel.get("title"), f"{at}: no title"
        assert panel.get("description", "").strip(), f"{at}: no description"
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{at}: no unit"
        refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
        for ref in refs:
            assert isinstance(ref, dict), f"{at}: datasource must be {{type, uid}}, got {ref!r}"
            assert ref.get("uid") in known, f"{at}: datasource uid {ref.get('uid')!r} unknown"
            assert ref.get("type") == known[ref["uid"]], f"{at}: wrong type for {ref}"
        targets = panel.get("targets", [])
        assert targets, f"{at}: no query"
        ref_ids = [t.get("refId") for t in targets]
        assert all(ref_ids) and len(set(ref_ids)) == len(ref_ids), f"{at}: refIds {ref_ids}"
        for target in targets:
            if target["datasource"]["type"] == dq.PROMETHEUS:
                assert target.get("legendFormat"), f"{at}: target {target['refId']} no legend"
    for variable in board.get("templating", {}).get("list", []):
        if "datasource" in variable:
            assert variable["datasource"].get("uid") in known, variable["name"]


@pytest.mark.parametrize("board", dashboards(), ids=lambda d: d["uid"])
def test_panel_ids_and_grid_positions(board):
    panels = list(dq.iter_panels(board))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"{board['uid']}: duplicate panel ids"
    taken: dict[tuple[int, int], int] = {}
    for panel in board["panels"]:  # nested panels of collapsed rows are laid out when expanded
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, where(board, panel)
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = taken.setdefault((x, y), panel["id"])
                assert other == panel["id"], f"{where(board, panel)} overlaps panel {other}"


# ------------------------------------------------------------------------------ PromQL


def test_there_are_prometheus_and_sql_queries():
    assert len(PROM_QUERIES) > 30 and len(SQL_QUERIES) >= 5


@pytest.mark.parametrize("query", PROM_QUERIES, ids=query_id)
def test_promql_parses(query):
    uid, title, expr = query
    promql_parser.parse(expr)


def test_rates_use_rate_interval():
    """A fixed window ([1m]) breaks at other scrape intervals and zoom levels."""
    for query in dq.iter_queries(REPO):
        if query.datasource.get("type") != dq.PROMETHEUS:
            continue
        windows = re.findall(r"\[([^\]]*)\]", query.text)
        assert all(w == "$__rate_interval" for w in windows), (
            f"{query.dashboard_uid}: {query.panel_title!r}: range {windows}, use [$__rate_interval]"
        )


@pytest.mark.parametrize("query", PROM_QUERIES, ids=query_id)
def test_counters_are_read_through_rates(query):
    """A counter's raw value is its lifetime total: dividing or plotting it says nothing
    about now. Counters are only read through rate()/irate()/increase()."""
    uid, title, expr = query
    counters = counter_series(contract()[0])
    for selector, in_range_function in selectors(promql_parser.parse(expr)):
        if is_counter(selector.name or "", counters):
            assert in_range_function, f"{uid}: {title!r}: raw counter {selector.name}"
    for node in walk(promql_parser.parse(expr)):
        if isinstance(node, promql_parser.Call) and node.func.name in RANGE_FUNCTIONS:
            assert isinstance(node.args[0], promql_parser.MatrixSelector), f"{uid}: {title!r}"


@pytest.mark.parametrize("query", PROM_QUERIES, ids=query_id)
def test_quantiles_aggregate_buckets_by_le(query):
    """histogram_quantile needs the buckets of all instances added up, le kept."""
    uid, title, expr = query
    for node in walk(promql_parser.parse(expr)):
        if isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile":
            inner = unparen(node.args[1])
            assert isinstance(inner, promql_parser.AggregateExpr) and str(inner.op) == "sum", (
                f"{uid}: {title!r}: histogram_quantile over something else than sum(...)"
            )
            modifier = inner.modifier
            assert modifier is not None and modifier.type == promql_parser.AggModifierType.By
            assert "le" in modifier.labels, f"{uid}: {title!r}: sum by must keep le"


def check_selector(selector: Any, where_: str, names: dict[str, set[str]], jobs: set[str]):
    name = selector.name
    assert name, f"{where_}: selector without a metric name: {selector}"
    matchers = {m.name: m for m in selector.matchers.matchers}
    if name in ("ALERTS", "ALERTS_FOR_STATE"):
        return  # written by Prometheus itself, labelled like the alert rules
    assert name in names or name in BUILTIN_NAMES or name.startswith(BUILTIN_PREFIXES), (
        f"{where_}: {name} is not in docs/metrics.md"
    )
    job = matchers.get("job")
    assert job is not None and job.op == promql_parser.MatchOp.Equal, (
        f'{where_}: {name} must be selected with job="..."'
    )
    assert job.value in jobs, f"{where_}: job {job.value!r} is not a scrape job of metrics.md"
    for prefix, expected in JOB_BY_PREFIX.items():
        if name.startswith(prefix):
            assert job.value == expected, f"{where_}: {name} comes from job {expected}"
    if name in names:
        unknown = set(matchers) - names[name]
        assert not unknown, f"{where_}: {name} has no label {sorted(unknown)} in metrics.md"


@pytest.mark.parametrize("query", PROM_QUERIES, ids=query_id)
def test_metrics_are_in_the_contract(query):
    uid, title, expr = query
    metrics, jobs = contract()
    names = series_names(metrics)
    for selector, _ in selectors(promql_parser.parse(expr)):
        check_selector(selector, f"{uid}: {title!r}", names, jobs)


def test_variable_queries_select_documented_series():
    metrics, jobs = contract()
    names = series_names(metrics)
    found = dq.variable_selectors(REPO)
    assert found, "the endpoint dashboard needs its route variable"
    for uid, variable, selector in found:
        expr = promql_parser.parse(selector)
        assert isinstance(expr, promql_parser.VectorSelector), f"{uid}: ${variable}"
        check_selector(expr, f"{uid}: ${variable}", names, jobs)


def test_contract_is_read():
    """Guards the parsing of docs/metrics.md that the checks above rely on."""
    metrics, jobs = contract()
    assert {"bank-api", "postgres-exporter", "locust", "prometheus"} <= jobs
    assert metrics["http_requests_total"] == ("counter", {"handler", "method", "status"})
    assert metrics["bank_operations_total"][1] == {"operation", "outcome"}
    assert "http_request_duration_seconds_bucket" in series_names(metrics)


def test_substitution_refuses_unknown_variables():
    with pytest.raises(ValueError):
        dq.substitute_variables("rate(x[$__unknown])", dq.prometheus_values())


# ------------------------------------------------------------------------------ SQL


def strip_sql_literals(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.DOTALL)
    sql = re.sub(r"'(?:[^']|'')*'", "''", sql)
    return re.sub(r'"(?:[^"]|"")*"', '""', sql)


@pytest.mark.parametrize("query", SQL_QUERIES, ids=query_id)
def test_sql_is_read_only(query):
    uid, title, sql = query
    code = strip_sql_literals(sql)
    assert re.match(r"\s*(SELECT|WITH)\b", code, re.IGNORECASE), f"{uid}: {title!r}: not a SELECT"
    assert ";" not in code.rstrip().rstrip(";"), f"{uid}: {title!r}: one statement only"
    bad = WRITE_OR_DDL.findall(code)
    assert not bad, f"{uid}: {title!r}: {bad}"


@pytest.mark.parametrize("query", SQL_QUERIES, ids=query_id)
def test_sql_reads_only_granted_tables(query):
    uid, title, sql = query
    code = strip_sql_literals(sql)
    tables = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", code, re.IGNORECASE))
    tables -= set(re.findall(r"\b(\w+)\s+AS\s*\(", code, re.IGNORECASE))  # WITH name AS (...)
    assert tables, f"{uid}: {title!r}: no table found"
    assert tables <= READABLE_TABLES, f"{uid}: {title!r}: reads {sorted(tables - READABLE_TABLES)}"
    assert not re.search(r"\bFROM\s+\w+(\s+(AS\s+)?\w+)?\s*,", code, re.IGNORECASE), (
        f"{uid}: {title!r}: comma join; write JOIN so every table is checked"
    )


@pytest.mark.parametrize("query", SQL_QUERIES, ids=query_id)
def test_sql_macros_expand(query):
    uid, title, sql = query
    start, end = dq.default_time_range()
    expanded = dq.expand_sql_macros(sql, start, end)
    assert "$" not in expanded
    if "$__timeGroupAlias" in sql:
        assert 'AS "time"' in expanded
