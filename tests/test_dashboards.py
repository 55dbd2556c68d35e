"""Static checks of the Grafana provisioning: datasource.yml, dashboards/provider.yml and the
dashboard JSON files. Grafana itself does not run here, so everything it would reject, and
every convention the dashboards keep (below), is checked from the files:

- the JSON is typed against npm @grafana/schema with tsc (tests/grafana/; slow: npm);
- dashboards are provisionable as they are: no numeric id, fixed uids, datasources by pinned UID;
- every PromQL expression parses, reads counters only through rate()/increase() over
  $__rate_interval, builds quantiles from sum by (le, ...), and names only documented metrics
  (docs/metrics.md) on the right job, alerts that exist and the series the recording rules
  record (documented too, with the labels they carry);
- the service level objectives' dashboard has, for each objective of slos.yml, its row of
  panels with the titles runbooks name, reading that objective's series, with the objective
  and the alerts' burn rates as thresholds;
- the latency panels ask for exemplars (once each), only on the histograms the API attaches
  trace_id exemplars to, and Prometheus' datasource turns their trace_id into a Tempo link;
- a running classroom scenario is visible: the overview's Scenario row says which one runs,
  its phase and the faults applied (and says none, rather than "No data", while none runs:
  the real PromQL engine, promtool, evaluates those queries before, during and after a run),
  and the graphs shade its phases (a Prometheus annotation: only fields Grafana's Prometheus
  plugin reads, and events named by labels its query keeps);
- every SQL query is a read-only SELECT on the tables the read-only login may read;
- every LogQL and TraceQL query parses with Grafana's own grammars (npm @grafana/lezer-logql,
  @grafana/lezer-traceql; slow: npm) and selects only what exists: the API's Loki stream, the
  fields its JSON log lines really carry (read from the API's logging calls), the service
  name and span attributes its traces really carry.

Running the panels' queries against a live Prometheus and PostgreSQL is another test's job;
both use tests/dashboard_queries.py to find the queries. Loki and Tempo cannot run here: their
queries are parsed and checked, not run.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

import dashboard_queries as dq  # from tests/, by pytest's rootdir-based import mode
from bank_api.observability import request_record

REPO = Path(__file__).resolve().parents[1]
GRAFANA_TYPECHECK = REPO / "tests" / "grafana"
EXPECTED_UIDS = {"bank-overview", "bank-endpoint", "bank-business", "bank-slo"}
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"

# Tables the read-only PostgreSQL login (datasource.yml) has SELECT on.
READABLE_TABLES = {"accounts", "ledger_entries", "transfers", "refusals"}
WRITE_OR_DDL = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|DROP|ALTER|GRANT|REVOKE|CREATE|TRUNCATE|COPY|"
    r"VACUUM|CALL|DO|EXECUTE|LOCK|REINDEX|CLUSTER|COMMENT|SET|RESET|FOR\s+UPDATE|FOR\s+SHARE)\b",
    re.IGNORECASE,
)

# Panels that draw no numbers, so have no unit to set.
NO_UNIT_PANEL_TYPES = {"logs"}

# Functions whose argument is a range of a counter: the only way to read a counter.
RANGE_FUNCTIONS = {"rate", "irate", "increase"}

# Series not described in docs/metrics.md: Prometheus' own and the exporters'.
BUILTIN_NAMES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
BUILTIN_PREFIXES = ("pg_", "process_", "locust_")
# Which scrape job each family of series comes from (job names from docs/metrics.md).
# The SLO recording rules keep the job of the API series they are computed from.
# The longest matching prefix wins: bank_scenario_ series come from the scenario service.
JOB_BY_PREFIX = {
    "http_": "bank-api",
    "bank_": "bank-api",
    "bank_scenario_": "scenarios",
    "slo:": "bank-api",
    "process_": "bank-api",
    "pg_": "postgres-exporter",
    "locust_": "locust",
}

# The service level objectives (slos.yml), the rule files Prometheus loads (prometheus.yml),
# the dashboard that shows the objectives, and the panels each objective's row has: runbooks
# name them by these titles.
SLOS = REPO / "slos.yml"
SLO_DASHBOARD = "bank-slo"
SLO_PANEL_TITLES = {
    "SLI now", "Objective", "Error budget left", "Alert state", "Error budget over time",
    "Burn rate by window",
}

# Classroom scenarios (docs/scenarios/README.md): the dashboards whose graphs shade the phases
# of a running scenario, the series that gives the phase, the overview's row that says what
# runs, and the page its panels point to.
SCENARIO_ANNOTATED = {"bank-overview", "bank-endpoint", "bank-slo"}
SCENARIO_PHASE_SERIES = "bank_scenario_phase"
SCENARIO_PREFIX = "bank_scenario_"
SCENARIO_ROW_PANELS = ["Scenario running", "Scenario", "Phase", "Faults applied now"]
SCENARIO_DOCS = "docs/scenarios/README.md"
# The fields of an annotation on the Prometheus datasource: the schema's (AnnotationQuery)
# and those Grafana's Prometheus plugin reads (its AnnotationQueryEditor and annotations.ts):
# `expr` and `step` (moved into `target` as the dashboard loads), `titleFormat` and
# `textFormat` (legend templates: {{label}}), `tagKeys` (labels, comma-separated) and
# `useValueForTime`. Anything else Grafana ignores without a word.
PROMETHEUS_ANNOTATION_FIELDS = {
    "builtIn", "datasource", "enable", "filter", "hide", "iconColor", "name", "placement",
    "expr", "step", "titleFormat", "textFormat", "tagKeys", "useValueForTime",
}

# Exemplars: the histograms the API observes with a trace_id exemplar
# (api/src/bank_api/api/http_metrics.py), the exemplar's label, and the panels that draw them.
EXEMPLAR_HISTOGRAMS = {"http_request_duration_seconds", "http_request_duration_highr_seconds"}
EXEMPLAR_LABEL = "trace_id"
EXEMPLAR_PANEL_TYPES = {"timeseries", "heatmap"}

# Loki: the stream label the dashboards select by (alloy.alloy sets `service` = the compose
# service) and the API's stream. Its lines are JSON: `| json` turns their fields into labels.
LOKI_STREAM_LABELS = {"service": {"api"}}
API_LOGS = REPO / "api" / "src"
# Fields every API line has: the formatter's (observability/logs.py: level, logger, message,
# timestamp) and the request context's (request_id, route; trace_id, span_id when traced).
# The other fields come from the `extra={...}` of the API's logging calls, read from its code.
API_LOG_BASE_FIELDS = {
    "timestamp", "level", "logger", "message", "request_id", "route", "trace_id", "span_id",
}
LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# The outcomes a request's line can tell (observability/request_record.py).
OUTCOMES = {request_record.MOVED, request_record.REPLAYED, request_record.REFUSED,
            request_record.FAILED, request_record.OPENED, request_record.CLOSED}
NUMERIC_LOG_FIELDS = {"status", "duration_ms", "amount", "account_id", "latency_ms",
                      "destination_account_id", "request_bytes", "response_bytes"}
# Pipeline stages a dashboard query may use: line filters, the json parser, label filters.
LOGQL_STAGES = {"LineFilters", "LabelParser", "LabelFilter"}

# Tempo: the API's traces (api/src/bank_api/observability/tracing.py: service.name) and the
# attributes of its server span (tracing.start_server_span: stable HTTP semantic conventions).
API_SERVICE_NAME = "bank-api"
TRACE_ATTRIBUTES = {
    "resource": {"service.name", "service.version"},
    "span": {
        "http.request.method", "http.route", "http.response.status_code", "url.path",
        "url.query", "url.scheme", "server.address", "server.port", "network.protocol.version",
        "error.type",
    },
}
TRACE_INTRINSICS = {
    "duration", "name", "kind", "status", "statusMessage", "traceDuration", "rootName",
    "rootServiceName",
}
TRACE_ENUMS = {
    "kind": {"server", "client", "internal", "producer", "consumer", "unspecified"},
    "status": {"ok", "error", "unset"},
}
TRACEQL_HINTS = {"most_recent"}


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


def is_recorded(name: str) -> bool:
    """A series a recording rule writes: named level:metric:operations, the only names with
    a colon (Prometheus' naming practice). It carries exactly the labels the rule keeps; a
    scraped series also carries job and instance."""
    return ":" in name


def contract() -> tuple[dict[str, tuple[str, set[str]]], set[str]]:
    """docs/metrics.md as ({metric: (type, labels)}, {jobs}). A row may name several metrics
    ("`a`, `b`") that share type and labels."""
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
        cell = row.get("metric", row.get("job", ""))
        if not re.fullmatch(r"`[\w:-]+`(\s*,\s*`[\w:-]+`)*", cell):
            continue
        names = re.findall(r"`([\w:-]+)`", cell)
        if "job" in row:
            jobs.update(names)
        else:
            # labels cell: "`operation` (`credit`, ...), `outcome` (...)": drop the value lists
            labels = set(re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", row.get("labels", ""))))
            for name in names:
                metrics[name] = (row.get("type", ""), labels)
    return metrics, jobs


def series_names(metrics: dict[str, tuple[str, set[str]]]) -> dict[str, set[str]]:
    """Every series name a documented metric exposes -> the labels it may carry."""
    names: dict[str, set[str]] = {}
    for name, (kind, labels) in metrics.items():
        base = set(labels) if is_recorded(name) else labels | {"job", "instance"}
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
ANNOTATION_QUERIES = dq.annotation_queries(REPO)
# Every PromQL a dashboard holds: the static checks apply to the annotations' too.
ALL_PROM_QUERIES = PROM_QUERIES + ANNOTATION_QUERIES
SQL_QUERIES = dq.sql_queries(REPO)
LOKI_QUERIES = dq.loki_queries(REPO)
TEMPO_QUERIES = dq.tempo_queries(REPO)


def ensure_node_modules() -> str:
    """npm, with tests/grafana's packages installed as package-lock.json pins them."""
    npm = shutil.which("npm")
    assert npm, "npm not found: Node.js and npm run the checks in tests/grafana"
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
    return npm


# ------------------------------------------------------------------------------ typing


@pytest.mark.slow
def test_dashboards_typecheck_against_grafana_schema():
    """Each dashboard, written as TypeScript typed with @grafana/schema, passes tsc."""
    npm = ensure_node_modules()
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
        "loki": "loki",
        "tempo": "tempo",
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
        if panel.get("type") not in NO_UNIT_PANEL_TYPES:
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


@pytest.mark.parametrize("query", ALL_PROM_QUERIES, ids=query_id)
def test_promql_parses(query):
    uid, title, expr = query
    promql_parser.parse(expr)


def test_rates_use_rate_interval():
    """A fixed window ([1m]) breaks at other scrape intervals and zoom levels."""
    written = [(q.dashboard_uid, q.panel_title, q.text) for q in dq.iter_queries(REPO)
               if q.datasource.get("type") == dq.PROMETHEUS]
    written += [(board["uid"], a.get("name"), a.get("expr", "")) for board in dashboards()
                for a in dq.iter_annotations(board)]
    for uid, title, text in written:
        windows = re.findall(r"\[([^\]]*)\]", text)
        assert all(w == "$__rate_interval" for w in windows), (
            f"{uid}: {title!r}: range {windows}, use [$__rate_interval]"
        )


@pytest.mark.parametrize("query", ALL_PROM_QUERIES, ids=query_id)
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


@pytest.mark.parametrize("query", ALL_PROM_QUERIES, ids=query_id)
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
    if name in names and "job" not in names[name]:
        # a recorded series without a job (a constant): a job matcher would select nothing
        assert job is None, f"{where_}: {name} has no job label (docs/metrics.md)"
        return
    assert job is not None and job.op == promql_parser.MatchOp.Equal, (
        f'{where_}: {name} must be selected with job="..."'
    )
    assert job.value in jobs, f"{where_}: job {job.value!r} is not a scrape job of metrics.md"
    prefixes = [prefix for prefix in JOB_BY_PREFIX if name.startswith(prefix)]
    if prefixes:
        expected = JOB_BY_PREFIX[max(prefixes, key=len)]
        assert job.value == expected, f"{where_}: {name} comes from job {expected}"
    if name in names:
        unknown = set(matchers) - names[name]
        assert not unknown, f"{where_}: {name} has no label {sorted(unknown)} in metrics.md"


@pytest.mark.parametrize("query", ALL_PROM_QUERIES, ids=query_id)
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
    assert metrics["slo:burn_rate:rate1m"][1] == metrics["slo:burn_rate:rate6m"][1]
    assert series_names(metrics)["slo:burn_rate:rate1m"] == {"job", "slo"}
    assert series_names(metrics)["slo:objective:ratio"] == {"slo"}
    assert "scenarios" in jobs
    assert metrics["bank_scenario_running"] == ("gauge", set())
    assert metrics["bank_scenario_phase"] == ("gauge", {"scenario", "phase"})
    assert metrics["bank_scenario_fault_active"][1] == {"scenario", "fault", "kind"}
    assert metrics["bank_scenario_runs_total"] == ("counter", {"scenario", "outcome"})


def rule_files() -> list[dict[str, Any]]:
    """The rule files prometheus.yml loads (named relative to it), parsed."""
    config = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
    return [yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
            for name in config.get("rule_files", [])]


def rules() -> list[dict[str, Any]]:
    return [rule for file in rule_files() for group in file["groups"] for rule in group["rules"]]


def test_recorded_series_are_in_the_contract():
    """docs/metrics.md lists exactly the series the recording rules write, with the labels
    the rules set: a rule renamed by the generator (bankops.slo) is a contract change."""
    metrics, _ = contract()
    recorded = {rule["record"]: set(rule.get("labels", {})) for rule in rules() if "record" in rule}
    assert recorded, "no recording rule: the SLO dashboard reads recorded series"
    documented = {name for name in metrics if is_recorded(name)}
    assert documented == set(recorded), (
        f"recorded, not documented: {sorted(set(recorded) - documented)}; "
        f"documented, not recorded: {sorted(documented - set(recorded))}"
    )
    for name, labels in recorded.items():
        assert labels <= metrics[name][1], f"{name}: labels {sorted(labels)} not in metrics.md"


def test_alert_queries_name_alerts_that_exist():
    """ALERTS{alertname="X"} returns nothing, forever, when no rule is named X."""
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    for uid, title, expr in ALL_PROM_QUERIES:
        for selector, _ in selectors(promql_parser.parse(expr)):
            if selector.name not in ("ALERTS", "ALERTS_FOR_STATE"):
                continue
            for matcher in selector.matchers.matchers:
                if matcher.name == "alertname":
                    assert matcher.op == promql_parser.MatchOp.Equal, f"{uid}: {title!r}"
                    assert matcher.value in alerts, f"{uid}: {title!r}: no alert {matcher.value}"


def threshold_color(panel: dict[str, Any], value: float) -> str:
    """The color Grafana gives a value: the last step at or below it (the first is the base)."""
    color = ""
    for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]:
        if step["value"] is None or step["value"] <= value:
            color = step["color"]
    return color


def slo_rows(board: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """{slo label value: the panels of its row}, the value read from the row's queries."""
    rows: list[list[dict[str, Any]]] = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            assert not panel.get("collapsed"), f"{where(board, panel)}: keep it open"
            rows.append([])
        elif rows:
            rows[-1].append(panel)
    found: dict[str, list[dict[str, Any]]] = {}
    for panels in rows:
        values = {
            matcher.value
            for panel in panels
            for target in prometheus_targets(panel)
            for selector, _ in selectors(promql_parser.parse(target["expr"]))
            for matcher in selector.matchers.matchers
            if matcher.name == "slo"
        }
        assert len(values) == 1, f"{SLO_DASHBOARD}: a row reads objectives {sorted(values)}"
        [slo] = values
        assert slo not in found, f"{SLO_DASHBOARD}: two rows for {slo}"
        found[slo] = panels
    return found


def series_read(panel: dict[str, Any]) -> set[str]:
    return {
        selector.name
        for target in prometheus_targets(panel)
        for selector, _ in selectors(promql_parser.parse(target["expr"]))
    }


def test_slo_dashboard_has_a_row_per_objective():
    """Each objective of slos.yml has its row on the SLO dashboard, with the panels runbooks
    name, each reading that objective's series (and only its): the SLI against the
    objective, the budget left (red once spent), the alerts' state, the burn rate over
    every window the alerts use with their thresholds."""
    spec = yaml.safe_load(SLOS.read_text(encoding="utf-8"))
    [board] = [d for d in dashboards() if d["uid"] == SLO_DASHBOARD]
    rows = slo_rows(board)
    assert set(rows) == {o["name"] for o in spec["objectives"]}
    alert_names = {a["alert"] for a in spec["alerts"]}
    burn_rates = {w["burn_rate"] for a in spec["alerts"] for w in a["windows"]}
    alert_windows = {  # the burn-rate series the alerts compare, e.g. slo:burn_rate:rate1m
        selector.name
        for rule in rules() if rule.get("alert") in alert_names
        for selector, _ in selectors(promql_parser.parse(rule["expr"]))
    }
    assert alert_windows and all(n.startswith("slo:burn_rate:") for n in alert_windows)
    reads = {
        "SLI now": {"slo:sli_error:ratio_rate1m"},
        "Objective": {"slo:objective:ratio"},
        "Error budget left": {"slo:period_error_budget_remaining:ratio"},
        "Alert state": {"ALERTS"},
        "Error budget over time": {"slo:period_error_budget_remaining:ratio"},
        "Burn rate by window": alert_windows,
    }
    for objective in spec["objectives"]:
        panels = {p["title"]: p for p in rows[objective["name"]]}
        at = f"{SLO_DASHBOARD}: row {objective['name']}"
        assert set(panels) == SLO_PANEL_TITLES, f"{at}: panels {sorted(panels)}"
        for title, series in reads.items():
            assert series <= series_read(panels[title]), f"{at}: {title!r} reads {series}"
        sli = panels["SLI now"]
        assert threshold_color(sli, objective["objective"]) == "green", at
        assert threshold_color(sli, objective["objective"] - 0.0001) == "red", at
        budget = panels["Error budget left"]
        assert threshold_color(budget, 0) == "red" and threshold_color(budget, 0.5) != "red", at
        burn = panels["Burn rate by window"]
        steps = {s["value"] for s in burn["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        assert burn_rates <= steps, f"{at}: burn rate lines {sorted(steps - {None})}"
        state = panels["Alert state"]
        asked = {
            m.value
            for target in prometheus_targets(state)
            for selector, _ in selectors(promql_parser.parse(target["expr"]))
            for m in selector.matchers.matchers
            if selector.name == "ALERTS" and m.name == "alertname"
        }
        assert asked == alert_names, f"{at}: alert state of {sorted(asked)}"
        for target in prometheus_targets(state):
            # ALERTS has no series while nothing fires: the panel says OK, not "No data"
            assert re.search(r"\bor\s+on\s*\(\s*\)\s*vector\(0\)\s*$", target["expr"]), at
        [mapping] = state["fieldConfig"]["defaults"]["mappings"]
        assert set(mapping["options"]) == {"0", "1"}, f"{at}: OK and firing mapped"

def test_substitution_refuses_unknown_variables():
    with pytest.raises(ValueError):
        dq.substitute_variables("rate(x[$__unknown])", dq.prometheus_values())


def test_docs_named_on_the_dashboards_exist():
    """A description or text panel that sends the reader to docs/... names a page that is
    there."""
    for board in dashboards():
        texts = [board.get("description", "")] + [
            panel.get("description", "") + panel.get("options", {}).get("content", "")
            for panel in dq.iter_panels(board)
        ]
        for path in re.findall(r"\bdocs/[\w./-]+\.md\b", " ".join(texts)):
            assert (REPO / path).is_file(), f"{board['uid']}: {path} does not exist"


# ------------------------------------------------------------------------------ scenarios


def prometheus_annotations(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in dq.iter_annotations(board)
            if (a.get("datasource") or {}).get("type") == dq.PROMETHEUS]


def kept_labels(expr: str) -> set[str] | None:
    """The labels every series of the result carries, when the outermost node is an
    aggregation by (...); None for any other expression."""
    node = unparen(promql_parser.parse(expr))
    if not isinstance(node, promql_parser.AggregateExpr) or node.modifier is None:
        return None
    if node.modifier.type != promql_parser.AggModifierType.By:
        return None
    return set(node.modifier.labels)


def series_read_by(expr: str) -> set[str]:
    return {s.name for s, _ in selectors(promql_parser.parse(expr))}


def reads_scenarios(expr: str) -> bool:
    return any((s.name or "").startswith(SCENARIO_PREFIX)
               for s, _ in selectors(promql_parser.parse(expr)))


@pytest.mark.parametrize("board", dashboards(), ids=lambda d: d["uid"])
def test_annotations_are_pinned_and_well_formed(board):
    """Grafana passes over what it does not know in an annotation without a word: a misspelt
    field ("title" for titleFormat) gives events without a title, a label the query does not
    keep renders as nothing. @grafana/schema's AnnotationQuery holds only the fields every
    datasource shares: the datasource's own are checked here."""
    known = provisioned_datasources()
    for annotation in dq.iter_annotations(board):
        at = f"{board['uid']}: annotation {annotation.get('name')!r}"
        assert annotation.get("name") and annotation.get("iconColor"), at
        ref = annotation.get("datasource")
        assert isinstance(ref, dict) and ref.get("uid") in known, f"{at}: datasource {ref!r}"
        assert ref.get("type") == known[ref["uid"]], f"{at}: wrong type for {ref}"
        assert ref["type"] == dq.PROMETHEUS, f"{at}: only Prometheus annotations are known here"
        unknown = set(annotation) - PROMETHEUS_ANNOTATION_FIELDS
        assert not unknown, f"{at}: Grafana's Prometheus annotations have no {sorted(unknown)}"
        assert isinstance(annotation["enable"], bool), at
        kept = kept_labels(annotation["expr"])
        assert kept is not None, f"{at}: aggregate by (...) the labels that name the events"
        formats = annotation.get("titleFormat", "") + annotation.get("textFormat", "")
        used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", formats))
        used |= {key.strip() for key in annotation.get("tagKeys", "").split(",") if key.strip()}
        assert used, f"{at}: events with neither title nor text"
        assert used <= kept, f"{at}: {sorted(used - kept)} not kept by the query"


def test_scenario_phases_are_shaded_on_the_graphs():
    """While a scenario runs, the graphs of the overview, endpoint and SLO dashboards show
    each of its phases as a region, titled with the scenario, the phase as its text: what the
    class sees change lines up with when a fault was applied and undone."""
    config = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
    for board in dashboards():
        if board["uid"] not in SCENARIO_ANNOTATED:
            continue
        at = board["uid"]
        [annotation] = [a for a in prometheus_annotations(board)
                        if SCENARIO_PHASE_SERIES in series_read_by(a["expr"])]
        assert annotation["datasource"] == {"type": "prometheus", "uid": "prometheus"}, at
        assert annotation["enable"] is True and not annotation.get("hide"), f"{at}: shown"
        assert "{{scenario}}" in annotation["titleFormat"], at
        assert "{{phase}}" in annotation["textFormat"], at
        assert not annotation.get("useValueForTime"), f"{at}: the value is 1, not a time"
        # Points a scrape apart: a phase of a few scrapes still makes a region.
        assert annotation["step"] == config["global"]["scrape_interval"], at


def test_the_overview_says_which_scenario_runs():
    """At the top of the overview, in a row of their own: whether a scenario runs, which,
    its phase and the faults applied now. Instant queries: the state now (a range query
    would draw every phase of the time range as a tile of its own). Each panel points to the
    page of the scenarios' lessons."""
    [board] = [d for d in dashboards() if d["uid"] == "bank-overview"]
    rows = [i for i, p in enumerate(board["panels"]) if p["type"] == "row"]
    first, second = rows[0], rows[1]
    assert board["panels"][first]["title"].startswith("Scenario"), "the first row"
    panels = board["panels"][first + 1:second]
    assert [p["title"] for p in panels] == SCENARIO_ROW_PANELS
    for panel in panels:
        at = where(board, panel)
        assert reads_scenarios(panel["targets"][0]["expr"]), at
        assert all(t["instant"] and not t["range"] for t in panel["targets"]), f"{at}: now"
        assert SCENARIO_DOCS in panel["description"], at
    [mapping] = panels[0]["fieldConfig"]["defaults"]["mappings"]
    assert {value: option["text"] for value, option in mapping["options"].items()} == {
        "0": "none", "1": "running"}


# A scenario's life as the scenario service exports it, scraped every 5 s: nothing runs, then
# lock-held's baseline, its fault "ledger locked" applied, recovery, and nothing again. A series
# the service removes ends with a staleness marker, as Prometheus writes when a scrape lacks it.
SCENARIO_TARGET = 'job="scenarios", instance="scenarios:8090"'
SCENARIO_TIMELINE = {
    f"bank_scenario_running{{{SCENARIO_TARGET}}}": "0x11 1x35 0x11",
    f'bank_scenario_phase{{{SCENARIO_TARGET}, scenario="lock-held", phase="baseline"}}':
        "_x12 1x11 stale",
    f'bank_scenario_phase{{{SCENARIO_TARGET}, scenario="lock-held", phase="ledger locked"}}':
        "_x24 1x11 stale",
    f'bank_scenario_phase{{{SCENARIO_TARGET}, scenario="lock-held", phase="recovery"}}':
        "_x36 1x11 stale",
    f'bank_scenario_fault_active{{{SCENARIO_TARGET}, scenario="lock-held", '
    f'fault="ledger locked", kind="table_lock"}}': "_x24 1x11 stale",
}
MOMENTS = {"idle": "30s", "baseline": "90s", "fault": "150s", "recovery": "210s",
           "idle again": "270s"}


def during(idle, baseline, fault, recovery):
    """Expected samples ([(labels, value)]) at each moment; idle again is idle."""
    return {"idle": idle, "baseline": baseline, "fault": fault, "recovery": recovery,
            "idle again": idle}


LOCK_HELD = {"scenario": "lock-held"}
# What each scenario query returns at each moment, by panel title or annotation name. The
# panels answer "none" (value 0) rather than nothing while there is nothing to show; the
# annotation returns nothing then (no region to draw).
SCENARIO_ANSWERS = {
    "Scenario phases": during(
        [], [({**LOCK_HELD, "phase": "baseline"}, 1)],
        [({**LOCK_HELD, "phase": "ledger locked"}, 1)], [({**LOCK_HELD, "phase": "recovery"}, 1)]),
    "Scenario running": during([({}, 0)], [({}, 1)], [({}, 1)], [({}, 1)]),
    "Scenario": during([({"scenario": "none"}, 0)], [(LOCK_HELD, 1)], [(LOCK_HELD, 1)],
                       [(LOCK_HELD, 1)]),
    "Phase": during([({"phase": "none"}, 0)], [({"phase": "baseline"}, 1)],
                    [({"phase": "ledger locked"}, 1)], [({"phase": "recovery"}, 1)]),
    "Faults applied now": during(
        [({"fault": "none"}, 0)], [({"fault": "none"}, 0)],
        [({**LOCK_HELD, "fault": "ledger locked", "kind": "table_lock"}, 1)],
        [({"fault": "none"}, 0)]),
}


def promtool_labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def test_scenario_queries_answer_before_during_and_after_a_run(tmp_path):
    """Prometheus' own engine (promtool test rules) runs every query that reads the scenario
    series over a scenario's life: the panels always have an answer, "none" while nothing
    runs or no fault is applied (`... or on() label_replace(...)`), so "No data" never stands
    for "no scenario"; the annotation draws the phase that runs and nothing else."""
    queries = sorted({(title, expr) for _, title, expr in ALL_PROM_QUERIES
                      if reads_scenarios(expr)})
    assert {title for title, _ in queries} == set(SCENARIO_ANSWERS)
    cases = [
        {
            "expr": expr,
            "eval_time": at,
            "exp_samples": [{"labels": promtool_labels(labels), "value": value}
                            for labels, value in SCENARIO_ANSWERS[title][moment]],
        }
        for title, expr in queries
        for moment, at in MOMENTS.items()
    ]
    spec = {
        "rule_files": [],
        "evaluation_interval": "5s",
        "tests": [{
            "interval": "5s",
            "input_series": [{"series": s, "values": v} for s, v in SCENARIO_TIMELINE.items()],
            "promql_expr_test": cases,
        }],
    }
    (tmp_path / "scenario.test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not on PATH: scripts/install-observability-tools.sh installs it"
    run = subprocess.run([promtool, "test", "rules", "scenario.test.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, f"{run.stdout}{run.stderr}"


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


# ------------------------------------------------------------------------------ exemplars


def exemplar_histograms_read(expr: str) -> set[str]:
    """The exemplar-carrying histograms whose buckets the PromQL expression reads."""
    expr = dq.substitute_variables(expr, dq.prometheus_values())
    names = {s.name for s, _ in selectors(promql_parser.parse(expr))}
    return {h for h in EXEMPLAR_HISTOGRAMS if f"{h}_bucket" in names}


def prometheus_targets(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        t
        for t in panel.get("targets", [])
        if (t.get("datasource") or panel.get("datasource") or {}).get("type") == dq.PROMETHEUS
    ]


def test_latency_panels_ask_for_exemplars_once():
    """A graph of the API's latency histograms shows their exemplars: one dot per sampled
    request, linked to its trace. One target asks: the dots are the same for p50, p95, p99
    (they are requests, not quantiles), and asking three times draws each dot three times."""
    found = 0
    for board in dashboards():
        for panel in dq.iter_panels(board):
            if panel.get("type") not in EXEMPLAR_PANEL_TYPES:
                continue
            targets = prometheus_targets(panel)
            if not any(exemplar_histograms_read(t["expr"]) for t in targets):
                continue
            found += 1
            asking = [t["refId"] for t in targets if t.get("exemplar")]
            assert len(asking) == 1, f"{where(board, panel)}: exemplars asked by {asking}"
            assert "exemplar" in panel["description"], f"{where(board, panel)}: what are the dots?"
    assert found >= 4, "the latency graphs of the overview and endpoint dashboards"


def test_exemplars_only_where_the_api_attaches_them():
    """Exemplars exist only on the histograms the API observes with a trace_id, and only
    time series and heatmaps draw them: anywhere else the query is wasted."""
    for board in dashboards():
        for panel in dq.iter_panels(board):
            for target in panel.get("targets", []):
                if not target.get("exemplar"):
                    continue
                at = f"{where(board, panel)} target {target['refId']}"
                assert target in prometheus_targets(panel), f"{at}: exemplars are Prometheus'"
                assert panel["type"] in EXEMPLAR_PANEL_TYPES, f"{at}: {panel['type']} draws none"
                assert exemplar_histograms_read(target["expr"]), f"{at}: no exemplars there"
    assert dq.exemplar_queries(REPO)


def test_exemplars_link_to_tempo():
    """Grafana makes an exemplar a link to its trace only if the Prometheus datasource names
    the exemplar label that holds the trace id and the Tempo datasource to open it in."""
    config = yaml.safe_load((REPO / "datasource.yml").read_text(encoding="utf-8"))
    [prometheus] = [ds for ds in config["datasources"] if ds["uid"] == "prometheus"]
    destinations = prometheus.get("jsonData", {}).get("exemplarTraceIdDestinations", [])
    assert {"name": EXEMPLAR_LABEL, "datasourceUid": "tempo"} in [
        {k: d.get(k) for k in ("name", "datasourceUid")} for d in destinations
    ], destinations


# ------------------------------------------------------------------------------ logs and traces


def panels_on(board: dict[str, Any], datasource_type: str) -> list[dict[str, Any]]:
    return [
        p for p in data_panels(board) if (p.get("datasource") or {}).get("type") == datasource_type
    ]


@pytest.mark.parametrize("uid", ["bank-overview", "bank-endpoint"])
def test_errors_in_logs_and_slow_traces_are_shown(uid):
    """The overview (all routes) and the endpoint dashboard (the chosen route) each show the
    API's error and refusal lines from Loki and its slowest recent traces from Tempo."""
    [board] = [d for d in dashboards() if d["uid"] == uid]
    [logs] = panels_on(board, dq.LOKI)
    [traces] = panels_on(board, dq.TEMPO)
    assert logs["type"] == "logs" and traces["type"] == "table"
    [log_target] = logs["targets"]
    [trace_target] = traces["targets"]
    per_route = uid == "bank-endpoint"
    assert ('route="$route"' in log_target["expr"]) is per_route, log_target["expr"]
    assert ('span.http.route="$route"' in trace_target["query"]) is per_route
    # The table is the slowest first: Tempo returns traces unsorted by duration.
    assert traces["options"].get("sortBy") == [{"displayName": "Duration", "desc": True}]


def test_loki_targets_are_log_queries():
    found = 0
    for board in dashboards():
        for panel in panels_on(board, dq.LOKI):
            for target in panel["targets"]:
                found += 1
                at = f"{where(board, panel)} target {target['refId']}"
                assert panel["type"] == "logs", f"{at}: Loki is used here for log lines"
                assert target.get("queryType") == "range", at
                assert target.get("editorMode") == "code", at
                assert target.get("expr", "").strip(), at
                # A bound on the lines a refresh every 5 s fetches.
                assert 0 < target.get("maxLines", 0) <= 1000, at
    assert found >= 2


def test_tempo_targets_are_traceql_searches():
    found = 0
    for board in dashboards():
        for panel in panels_on(board, dq.TEMPO):
            for target in panel["targets"]:
                found += 1
                at = f"{where(board, panel)} target {target['refId']}"
                assert target.get("queryType") == "traceql", at
                assert target.get("query", "").strip(), at
                assert target.get("tableType") in ("traces", "spans"), at
                assert 0 < target.get("limit", 0) <= 500, at
                assert target.get("filters") == [], f"{at}: search-builder filters are unused"
    assert found >= 2


@cache
def api_log_contract() -> tuple[frozenset[str], frozenset[str]]:
    """(fields, event names) of the API's JSON log lines: the fields every line has, those of
    the request's one line (observability/request_record.py), and the keys of every
    `extra={...}` a logging call in the API passes, read from its source."""
    fields = set(API_LOG_BASE_FIELDS) | set(request_record.LINE_FIELDS) | set(
        request_record.OUTCOME_FIELDS)
    events = {"request"}
    for path in API_LOGS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg != "extra" or not isinstance(keyword.value, ast.Dict):
                    continue
                for key, value in zip(keyword.value.keys, keyword.value.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        fields.add(key.value)
                        if key.value == "event" and isinstance(value, ast.Constant):
                            events.add(value.value)
    return frozenset(fields), frozenset(events)


def test_api_log_contract_is_read():
    """Guards the reading of the API's logging calls that the LogQL checks rely on."""
    fields, events = api_log_contract()
    assert {"event", "method", "status", "duration_ms", "operation", "outcome", "code"} <= fields
    assert {"request", "unhandled_error", "database_unavailable"} <= events
    assert fields >= NUMERIC_LOG_FIELDS


# --- syntax trees from Grafana's grammars (tests/grafana/parse-queries.mjs)


def nodes(tree: dict[str, Any], *names: str):
    """The nodes of a syntax tree with one of these names, in source order."""
    if tree["name"] in names:
        yield tree
    for child in tree["children"]:
        yield from nodes(child, *names)


def child_names(node: dict[str, Any]) -> list[str]:
    return [c["name"] for c in node["children"]]


def unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return json.loads(literal)  # "..." with backslash escapes


def check_log_field(field: str, op: str, value: str, at: str) -> None:
    fields, events = api_log_contract()
    known = {"level": LOG_LEVELS, "event": events, "outcome": OUTCOMES}
    if field == "__error__":  # set by `| json` on a line that is not JSON
        assert (op, value) == ("Eq", ""), f"{at}: only __error__=\"\" (drop unparsable lines)"
        return
    assert field in fields, f"{at}: the API's log lines have no field {field!r}"
    if field in known and op in ("Eq", "Neq"):
        assert value in known[field], f"{at}: {field} is never {value!r}"
    if field in known and op in ("Re", "Nre"):
        matched = {v for v in known[field] if re.fullmatch(value, v)}
        assert matched, f"{at}: {field}=~{value!r} matches no value the API writes"
    if field == "route":
        assert value.startswith("/"), f"{at}: route is a route template: {value!r}"


def check_logql(tree: dict[str, Any], at: str) -> None:
    [expr] = tree["children"]
    assert child_names(expr) == ["LogExpr"], f"{at}: a logs panel needs a log query, not a metric"
    [selector] = nodes(tree, "Selector")
    for matcher in nodes(selector, "Matcher"):
        label, op, value = matcher["children"]
        assert label["text"] in LOKI_STREAM_LABELS, f"{at}: no stream label {label['text']}"
        assert op["name"] == "Eq", f"{at}: select the stream by equality"
        assert unquote(value["text"]) in LOKI_STREAM_LABELS[label["text"]], at
    parsed = False
    for stage in nodes(tree, "PipelineStage"):
        [kind] = [c for c in stage["children"] if c["name"] != "Pipe"]
        assert kind["name"] in LOGQL_STAGES, f"{at}: stage {kind['text']!r} not expected"
        if kind["name"] == "LabelParser":
            assert kind["text"] == "json", f"{at}: the API writes JSON lines"
            parsed = True
        if kind["name"] != "LabelFilter":
            continue
        assert parsed, f"{at}: {kind['text']!r} filters on fields before `| json` extracts them"
        leaves = list(nodes(kind, "Matcher", "NumberFilter", "DurationFilter", "BytesFilter",
                            "IpLabelFilter"))
        assert leaves, at
        for leaf in leaves:
            field = leaf["children"][0]["text"]
            if leaf["name"] == "Matcher":
                _, op, value = leaf["children"]
                check_log_field(field, op["name"], unquote(value["text"]), at)
            else:
                assert leaf["name"] == "NumberFilter", f"{at}: {leaf['text']!r}"
                assert field in NUMERIC_LOG_FIELDS, f"{at}: {field} is not a number"
                check_log_field(field, "", "", at)
    assert parsed, f"{at}: no `| json`: the fields of the API's lines are never read"


def comparisons(tree: dict[str, Any]):
    """(left side, operator, right side) of every TraceQL comparison."""
    for node in nodes(tree, "FieldExpression"):
        if child_names(node) == ["FieldExpression", "FieldOp", "FieldExpression"]:
            left, op, right = node["children"]
            yield left, op["text"], right


def check_traceql(tree: dict[str, Any], at: str) -> None:
    metrics = [n["name"] for n in nodes(tree, "MetricsExpression", "MetricsAggregation")]
    assert not metrics, f"{at}: a table of traces needs a search, not a metrics query"
    filters = list(nodes(tree, "SpansetFilter"))
    assert filters, f"{at}: no {{...}} spanset filter"
    for spanset in filters:
        service = [
            unquote(right["text"])
            for left, op, right in comparisons(spanset)
            if left["text"] == "resource.service.name" and op == "="
        ]
        assert service == [API_SERVICE_NAME], f"{at}: {spanset['text']} is not the API's spans"
    for field in nodes(tree, "AttributeField"):
        *scope, name = field["children"]
        scopes = [s["name"].lower() for s in scope] or list(TRACE_ATTRIBUTES)
        assert name["name"] == "Identifier", f"{at}: {field['text']}"
        assert any(name["text"] in TRACE_ATTRIBUTES.get(s, ()) for s in scopes), (
            f"{at}: the API's spans carry no {field['text']}"
        )
    for intrinsic in nodes(tree, "IntrinsicField"):
        assert intrinsic["text"] in TRACE_INTRINSICS, f"{at}: intrinsic {intrinsic['text']}"
    for left, _, right in comparisons(tree):
        if left["text"] in TRACE_ENUMS:
            assert right["text"] in TRACE_ENUMS[left["text"]], f"{at}: {right['text']}"
        if left["text"] == "span.http.route":
            assert unquote(right["text"]).startswith("/"), f"{at}: {right['text']}"
    for hint in nodes(tree, "HintIdentifier"):
        assert hint["text"] in TRACEQL_HINTS, f"{at}: query hint {hint['text']}"


def parse_with_grafana_grammars(queries: list[tuple[str, str, str]]) -> dict[str, Any]:
    """{id: result} from tests/grafana/parse-queries.mjs for [(id, language, query)]."""
    ensure_node_modules()
    node = shutil.which("node")
    assert node, "node not found"
    payload = [{"id": i, "language": lang, "query": q} for i, lang, q in queries]
    run = subprocess.run(
        [node, "parse-queries.mjs"],
        cwd=GRAFANA_TYPECHECK,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return {r["id"]: r for r in json.loads(run.stdout)}


@pytest.fixture(scope="module")
def parsed_queries() -> dict[str, Any]:
    return parse_with_grafana_grammars(
        [(query_id(q), "logql", q[2]) for q in LOKI_QUERIES]
        + [(query_id(q), "traceql", q[2]) for q in TEMPO_QUERIES]
    )


def test_there_are_loki_and_tempo_queries():
    assert len(LOKI_QUERIES) >= 2 and len(TEMPO_QUERIES) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("query", LOKI_QUERIES, ids=query_id)
def test_logql_parses_and_reads_what_the_api_logs(query, parsed_queries):
    result = parsed_queries[query_id(query)]
    assert result["error"] is None, f"LogQL does not parse: {result['error']}\n{query[2]}"
    check_logql(result["tree"], query_id(query))


@pytest.mark.slow
@pytest.mark.parametrize("query", TEMPO_QUERIES, ids=query_id)
def test_traceql_parses_and_reads_what_the_api_traces(query, parsed_queries):
    result = parsed_queries[query_id(query)]
    assert result["error"] is None, f"TraceQL does not parse: {result['error']}\n{query[2]}"
    check_traceql(result["tree"], query_id(query))


@pytest.mark.slow
def test_the_query_checks_reject_wrong_queries():
    """The parsers and checks above fail on what they must catch, so their passing means
    something: syntax errors, unknown labels, fields, values and attributes."""
    syntax_errors = [
        ("logql", '{service="api"} | json | level="ERROR" or'),
        ("logql", '{service="api" | json'),
        ("traceql", '{resource.service.name="bank-api" && }'),
        ("traceql", '{resource.service.name="bank-api"} | select('),
        ("traceql", '{resource.service.name="bank-api" && kind=serverside}'),
        ("traceql", '{resource.service.name="bank-api"} with (sample=true)'),  # unknown hint
    ]
    wrong = [
        ("logql", '{app="api"} | json'),  # no such stream label
        ("logql", '{service="api"} | level="ERROR"'),  # filter before | json
        ("logql", '{service="api"} | json | lvl="ERROR"'),  # no such field
        ("logql", '{service="api"} | json | level=~"ERR"'),  # matches no level
        ("logql", '{service="api"} | json | event="refusal"'),  # no such event
        ("logql", '{service="api"} | json | event="refused"'),  # an outcome now, not an event
        ("logql", '{service="api"} | json | outcome="rejected"'),  # no such outcome
        ("logql", '{service="api"} | json | route >= 5'),  # not a number
        ("logql", 'count_over_time({service="api"}[1m])'),  # a metric query
        ("traceql", '{span.http.route="/accounts"}'),  # not only the API's spans
        ("traceql", '{resource.service.name="bank" && kind=server}'),  # another service
        ("traceql", '{resource.service.name="bank-api" && span.http.status_code=500}'),  # old
        ("traceql", '{resource.service.name="bank-api" && resource.http.route="/x"}'),  # scope
    ]
    cases = syntax_errors + wrong
    results = parse_with_grafana_grammars([(str(i), lang, q) for i, (lang, q) in enumerate(cases)])
    for i, (lang, query) in enumerate(syntax_errors):
        assert results[str(i)]["error"], f"{lang} parser accepted {query!r}"
    for i, (lang, query) in enumerate(wrong, start=len(syntax_errors)):
        result = results[str(i)]
        assert result["error"] is None, f"{query!r}: {result['error']}"
        check = check_logql if lang == "logql" else check_traceql
        with pytest.raises(AssertionError):
            check(result["tree"], query)
