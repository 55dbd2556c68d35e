"""Check Grafana's links between metrics, traces and logs, and the configs behind them, without
Grafana, Loki, Tempo or Alloy (none runs here):

- datasource.yml: every uid a link names is a provisioned datasource; the exemplar link uses
  the label key the API writes; the Tempo -> Loki query selects the API's log stream, filtered
  by the structured metadata Alloy sets; the Tempo -> Prometheus queries parse as PromQL and
  name the API's metrics; Grafana's `$$` escapes leave Grafana's own variables intact;
- the API's real log lines (tests/fixtures/api-log-lines.jsonl, written by the API) run
  through alloy.alloy's pipeline as Alloy would: the lines of a traced request get a
  `trace_id` the Loki derived field matches, and a `request_id`, as structured metadata;
- alloy.alloy, read by a small parser of Alloy's syntax: every component it references is
  declared, the receivers, exporters and push URL are the compose services and ports, the
  stream labels are the ones the dashboards select;
- loki.yml and tempo.yml parse, use only top-level keys the pinned versions know (both read
  their file strictly), and have what those versions need (Tempo 3: no ingester/compactor,
  receivers on 0.0.0.0; Loki: TSDB v13 for structured metadata, retention's delete store).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DATASOURCES = REPO / "datasource.yml"
COMPOSE = REPO / "docker-compose.yml"
ALLOY = REPO / "alloy.alloy"
LOKI = REPO / "loki.yml"
TEMPO = REPO / "tempo.yml"
# Lines the API really writes, one JSON object per line (regenerated from the real server).
API_LOG_LINES = Path(__file__).parent / "fixtures" / "api-log-lines.jsonl"

def words(text: str) -> set[str]:
    return set(text.split())


# Top-level keys of the pinned versions' config structs (pkg/loki/loki.go at Loki v3.7,
# cmd/tempo/app/config.go at Tempo v3.0.3): both refuse a file with any other key.
LOKI_KEYS = words("""target auth_enabled http_prefix ballast_bytes server internal_server ui
    distributor querier query_engine query_scheduler frontend query_range ruler ruler_storage
    ingester_client ingester pattern_ingester index_gateway bloom_build bloom_gateway
    storage_config chunk_store_config schema_config compactor compactor_client
    compactor_grpc_client limits_config frontend_worker table_manager memberlist kafka_config
    dataobj ingest_limits ingest_limits_frontend ingest_limits_frontend_client runtime_config
    operational_config tracing analytics profiling tenant_limits_allow_publish
    legacy_read_target common shutdown_delay metrics_namespace""")
TEMPO_KEYS = words("""target auth_enabled multitenancy_enabled shutdown_delay
    stream_over_http_enabled http_api_prefix enable_go_runtime_metrics span_profiling memory
    server internal_server distributor metrics_generator_client live_store_client querier
    query_frontend metrics_generator ingest block_builder storage overrides memberlist
    usage_report cache backend_scheduler backend_scheduler_client backend_worker
    live_store""")

TRACE_ID = re.compile(r"[0-9a-f]{32}")


@cache
def datasources() -> dict[str, dict[str, Any]]:
    """uid -> datasource, as provisioned."""
    listed = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    return {d["uid"]: d for d in listed}


def json_data(uid: str) -> dict[str, Any]:
    return datasources()[uid].get("jsonData") or {}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def grafana_expand(value: str) -> str:
    """What Grafana makes of a provisioned string: `$$` is a literal `$`; any other `$NAME` or
    `${NAME}` is an environment variable (refused here unless compose gives Grafana one)."""
    environment = set(compose()["services"]["grafana"].get("environment") or {})
    out, i = "", 0
    while i < len(value):
        if value.startswith("$$", i):
            out, i = out + "$", i + 2
            continue
        # As Go's os.Expand, which Grafana uses: `${` takes everything up to `}` as the name.
        match = re.compile(r"\$(\{([^}]*)\}|(\w+))").match(value, i)
        if match:
            name = match.group(2) or match.group(3)
            assert name in environment, f"{value!r}: ${name} would be expanded to ''"
            out, i = out + f"<{name}>", match.end()
            continue
        out, i = out + value[i], i + 1
    return out


def api_log_lines() -> list[dict[str, Any]]:
    lines = [line for line in API_LOG_LINES.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    assert lines, f"{API_LOG_LINES} is empty"
    return [json.loads(line) for line in lines]


# ------------------------------------------------------------------------------ Alloy syntax


@dataclass
class Ref:
    """A reference to another component's export, e.g. loki.write.loki.receiver."""
    path: str


@dataclass
class Call:
    function: str
    args: list[Any]


@dataclass
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass
class Block:
    name: str
    label: str | None
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, name: str) -> list[Block]:
        return [b for b in self.blocks if b.name == name]

    def child(self, name: str) -> Block:
        [found] = self.children(name)
        return found


TOKEN = re.compile(r"""
    (?P<space>\s+) | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:\\.|[^"\\\n])*") | (?P<raw>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?) | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[{}\[\](),=+\-*/])
""", re.X | re.S)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, i = [], 0
    while i < len(text):
        match = TOKEN.match(text, i)
        assert match, f"alloy.alloy: cannot read {text[i:i + 30]!r}"
        kind = match.lastgroup
        if kind == "string":
            tokens.append(("string", json.loads(match.group())))
        elif kind == "raw":
            tokens.append(("string", match.group()[1:-1]))
        elif kind not in ("space", "comment"):
            tokens.append((kind, match.group()))
        i = match.end()
    return tokens


class AlloyParser:
    """Alloy's configuration syntax (blocks, attributes, expressions with lists, objects,
    references, calls and operators): enough to read alloy.alloy as Alloy would."""

    def __init__(self, text: str) -> None:
        self.tokens, self.i = tokenize(text), 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token_kind, token = self.peek()
        assert (value is None or token == value) and (kind is None or token_kind == kind), (
            f"alloy.alloy: expected {value or kind}, found {token!r}")
        self.i += 1
        return token

    def parse(self) -> Block:
        root = self.body(Block("", None))
        assert self.peek()[0] == "eof", f"alloy.alloy: unexpected {self.peek()[1]!r}"
        return root

    def body(self, block: Block) -> Block:
        while self.peek()[0] == "ident":
            name = self.take(kind="ident")
            if self.peek()[1] == "=":
                self.take("=")
                assert name not in block.attrs, f"alloy.alloy: {name} set twice"
                block.attrs[name] = self.expression()
            else:
                label = self.take(kind="string") if self.peek()[0] == "string" else None
                self.take("{")
                block.blocks.append(self.body(Block(name, label)))
                self.take("}")
        return block

    def expression(self) -> Any:
        value = self.primary()
        while self.peek()[1] in ("+", "-", "*", "/"):
            op = self.take()
            value = BinOp(op, value, self.primary())
        return value

    def primary(self) -> Any:
        kind, token = self.peek()
        if kind in ("string", "number"):
            self.i += 1
            return token if kind == "string" else float(token)
        if token == "[":
            return self.sequence("[", "]", self.expression)
        if token == "{":
            return dict(self.sequence("{", "}", self.object_item))
        if kind == "ident":
            self.i += 1
            if token in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[token]
            if self.peek()[1] == "(":
                return Call(token, self.sequence("(", ")", self.expression))
            return Ref(token)
        raise AssertionError(f"alloy.alloy: unexpected {token!r}")

    def object_item(self) -> tuple[str, Any]:
        key = self.take()
        self.take("=")
        return key, self.expression()

    def sequence(self, open_: str, close: str, item: Any) -> list[Any]:
        self.take(open_)
        items = []
        while self.peek()[1] != close:
            items.append(item())
            if self.peek()[1] != close:
                self.take(",")
        self.take(close)
        return items


@cache
def alloy() -> Block:
    return AlloyParser(ALLOY.read_text(encoding="utf-8")).parse()


def component(name: str, label: str) -> Block:
    [found] = [b for b in alloy().blocks if b.name == name and b.label == label]
    return found


def references(node: Any) -> list[str]:
    if isinstance(node, Ref):
        return [node.path]
    if isinstance(node, Block):
        return [r for v in [*node.attrs.values(), *node.blocks] for r in references(v)]
    if isinstance(node, list):
        return [r for v in node for r in references(v)]
    if isinstance(node, dict):
        return [r for v in node.values() for r in references(v)]
    if isinstance(node, BinOp):
        return references(node.left) + references(node.right)
    if isinstance(node, Call):
        return references(node.args)
    return []


def host_port(address: str) -> tuple[str, int]:
    host, _, port = re.sub(r"^[a-z]+://", "", address).split("/")[0].rpartition(":")
    return host, int(port)


# ------------------------------------------------------------------------------ datasource.yml


def test_every_linked_datasource_uid_is_provisioned() -> None:
    provisioned = set(datasources())
    assert {"prometheus", "tempo", "loki"} <= provisioned
    linked = [d["datasourceUid"] for d in json_data("prometheus")["exemplarTraceIdDestinations"]]
    linked += [f["datasourceUid"] for f in json_data("loki")["derivedFields"]]
    tempo = json_data("tempo")
    for link in ("tracesToLogsV2", "tracesToMetrics", "serviceMap", "tracesToProfiles"):
        if link in tempo:
            linked.append(tempo[link]["datasourceUid"])
    assert set(linked) <= provisioned, set(linked) - provisioned
    assert {"tempo", "loki", "prometheus"} <= set(linked)  # every pillar links onwards


def test_datasource_uids_and_names_are_unique() -> None:
    listed = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    for key in ("uid", "name"):
        values = [d[key] for d in listed]
        assert len(values) == len(set(values)), key


def test_exemplars_link_by_the_label_key_the_api_writes() -> None:
    [destination] = json_data("prometheus")["exemplarTraceIdDestinations"]
    assert destination == {"name": "trace_id", "datasourceUid": "tempo",
                           "urlDisplayLabel": "View trace"}
    # The API's latency histograms: observe(..., {"trace_id": <32 hex>}) (prometheus_client).
    sources = [p.read_text(encoding="utf-8") for p in (REPO / "api" / "src").rglob("*.py")]
    writers = [s for s in sources if "exemplar" in s and '"trace_id"' in s]
    assert writers, "no API module writes a trace_id exemplar"


def test_traces_to_logs_selects_the_api_stream_by_its_trace_id() -> None:
    """The API's spans say service.name=bank-api; its log stream is {service="api"} (the
    compose service, labelled by Alloy): the custom query bridges the two names."""
    logs = json_data("tempo")["tracesToLogsV2"]
    assert logs["datasourceUid"] == "loki" and logs["customQuery"] is True
    query = grafana_expand(logs["query"])
    assert query == '{service="api"} | trace_id="${__span.traceId}"', query
    # The stream label and the structured metadata key are Alloy's.
    relabel = component("discovery.relabel", "compose")
    targets = {r.attrs["target_label"]: r.attrs["source_labels"] for r in relabel.children("rule")}
    assert targets["service"] == ["__meta_docker_container_label_com_docker_compose_service"]
    assert "api" in compose()["services"]
    assert "trace_id" in structured_metadata_keys()
    # Docker timestamps a line when it reads it: a window around the span.
    assert logs["spanStartTimeShift"].startswith("-") and logs["spanEndTimeShift"]


def test_the_api_service_name_is_what_tempo_queries_select() -> None:
    api = compose()["services"]["api"]["environment"]
    assert api["OTEL_SERVICE_NAME"] == "bank-api"


def test_traces_to_metrics_queries_are_promql_on_the_api_metrics() -> None:
    metrics = json_data("tempo")["tracesToMetrics"]
    assert metrics["datasourceUid"] == "prometheus"
    assert metrics["tags"] == [{"key": "http.route", "value": "handler"}]
    documented = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert metrics["queries"]
    for entry in metrics["queries"]:
        query = grafana_expand(entry["query"])
        assert "$__tags" in query
        # As Grafana runs it: the span's tags, then Grafana's interval.
        expr = query.replace("$__tags", 'handler="/accounts/{account_id}/credits"')
        expr = expr.replace("$__rate_interval", "20s")
        promql_parser.parse(expr)
        for metric in re.findall(r"\b(http_request_duration_seconds)_(?:count|bucket)\b", expr):
            assert f"`{metric}`" in documented


def test_loki_derived_field_links_trace_id_metadata_to_tempo() -> None:
    [derived] = json_data("loki")["derivedFields"]
    assert derived["datasourceUid"] == "tempo"
    assert grafana_expand(derived["url"]) == "${__value.raw}"  # the field's value: the trace id
    assert derived["matcherType"] == "label"  # Grafana matches it against the fields' names
    matcher = re.compile(derived["matcherRegex"])
    assert matcher.search("trace_id")
    for other in ("trace_id_extracted", "span_id", "request_id", "service"):
        assert not matcher.search(other), other


# ------------------------------------------------------------------------------ real log lines


def structured_metadata_keys() -> dict[str, str]:
    """The API's structured metadata: name -> the extracted value alloy.alloy gives it."""
    [match] = component("loki.process", "api").children("stage.match")
    [metadata] = match.children("stage.structured_metadata")
    return {k: v or k for k, v in metadata.attrs["values"].items()}


def alloy_pipeline(line: str, labels: dict[str, str]) -> dict[str, str]:
    """The structured metadata loki.process "api" attaches to one line, computed as Alloy
    does: the stage.match selector on the stream labels, stage.json's expressions (plain
    keys here: JMESPath of a top-level field), then stage.structured_metadata."""
    [match] = component("loki.process", "api").children("stage.match")
    selector = dict(re.findall(r'(\w+)="([^"]*)"', match.attrs["selector"]))
    if any(labels.get(k) != v for k, v in selector.items()):
        return {}
    extracted: dict[str, str] = {}
    for stage in match.children("stage.json"):
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue  # Alloy logs it and passes the line on unchanged
        for name, expression in stage.attrs["expressions"].items():
            key = expression or name
            assert re.fullmatch(r"\w+", key), f"{key}: only plain field names are modelled here"
            if isinstance(document, dict) and document.get(key) is not None:
                extracted[name] = str(document[key])
    return {name: extracted[source] for name, source in structured_metadata_keys().items()
            if source in extracted}


def test_fixture_lines_are_what_the_api_writes() -> None:
    for record in api_log_lines():
        assert {"timestamp", "level", "logger", "message"} <= set(record), record
        if "trace_id" in record:
            assert TRACE_ID.fullmatch(record["trace_id"]), record
            assert re.fullmatch(r"[0-9a-f]{16}", record["span_id"]), record
    assert any("trace_id" in r for r in api_log_lines()), "no traced request in the fixture"
    assert any("request_id" in r for r in api_log_lines()), "no request in the fixture"


def test_every_traced_api_line_gets_a_trace_id_grafana_links_to_tempo() -> None:
    [derived] = json_data("loki")["derivedFields"]
    matcher = re.compile(derived["matcherRegex"])
    lines = API_LOG_LINES.read_text(encoding="utf-8").splitlines()
    linked = 0
    for line, record in zip([x for x in lines if x.strip()], api_log_lines(), strict=True):
        metadata = alloy_pipeline(line, {"service": "api", "service_name": "api"})
        keys = [k for k in metadata if matcher.search(k)]
        if "trace_id" in record:
            assert keys == ["trace_id"], (metadata, line)
            assert metadata["trace_id"] == record["trace_id"]
            assert TRACE_ID.fullmatch(metadata["trace_id"])
            linked += 1
        else:
            assert keys == [], line  # no empty link on a line without a trace
        if "request_id" in record:
            assert metadata["request_id"] == record["request_id"]
        # Only these two: anything else the dashboards filter on stays in the line (| json).
        assert set(metadata) <= {"trace_id", "request_id"}
    assert linked


def test_only_the_api_stream_is_parsed() -> None:
    line = API_LOG_LINES.read_text(encoding="utf-8").splitlines()[-1]
    assert alloy_pipeline(line, {"service": "locust-master"}) == {}


def test_dashboard_filters_stay_in_the_line_not_in_labels() -> None:
    """route, level and event are read with `| json` from the line, which Alloy leaves as the
    API wrote it; no stage rewrites the line or turns a field into a stream label."""
    process = component("loki.process", "api")
    stages = [b.name for b in process.blocks] + [
        b.name for m in process.children("stage.match") for b in m.blocks]
    assert not {"stage.labels", "stage.output", "stage.pack", "stage.replace",
                "stage.template"} & set(stages), stages
    fields = {k for record in api_log_lines() for k in record}
    assert {"level", "message"} <= fields
    assert {"route", "event"} <= fields, "the dashboards filter on these"


# ------------------------------------------------------------------------------ alloy.alloy


def test_alloy_references_only_declared_components() -> None:
    declared = {f"{b.name}.{b.label}" for b in alloy().blocks}
    assert len(declared) == len(alloy().blocks), "a component is declared twice"
    exports = {"otelcol": "input", "loki.process": "receiver", "loki.write": "receiver",
               "discovery.docker": "targets", "discovery.relabel": "output"}
    for ref in references(alloy()):
        if ref == "sys.env":
            continue
        component_name, _, export = ref.rpartition(".")
        assert component_name in declared, f"{ref}: no such component"
        kind = next(k for k in exports if component_name.startswith(k))
        assert export == exports[kind], ref


def test_alloy_receives_otlp_where_the_api_sends_it_and_forwards_to_tempo() -> None:
    receiver = component("otelcol.receiver.otlp", "api")
    grpc = receiver.child("grpc").attrs["endpoint"]
    http = receiver.child("http").attrs["endpoint"]
    assert (grpc, http) == ("0.0.0.0:4317", "0.0.0.0:4318")  # reached from other containers
    api_endpoint = compose()["services"]["api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert host_port(api_endpoint) == ("alloy", 4318)
    assert [r.path for r in receiver.child("output").attrs["traces"]] == [
        "otelcol.processor.batch.traces.input"]
    exporter = component("otelcol.exporter.otlp", "tempo").child("client")
    assert exporter.child("tls").attrs["insecure"] is True
    host, port = host_port(exporter.attrs["endpoint"])
    assert host == "tempo" and host in compose()["services"]
    tempo_grpc = load(TEMPO)["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    assert tempo_grpc["endpoint"] == f"0.0.0.0:{port}"


def test_alloy_reads_the_compose_projects_containers_through_the_proxy() -> None:
    discovery = component("discovery.docker", "compose")
    source = component("loki.source.docker", "compose")
    assert discovery.attrs["host"] == source.attrs["host"] == "tcp://socket-proxy:2375"
    [docker_filter] = discovery.children("filter")
    assert docker_filter.attrs["name"] == "label"
    [value] = docker_filter.attrs["values"]
    assert value == BinOp("+", "com.docker.compose.project=",
                          Call("sys.env", ["COMPOSE_PROJECT"]))
    assert "COMPOSE_PROJECT" in compose()["services"]["alloy"]["environment"]
    assert source.attrs["targets"] == Ref("discovery.relabel.compose.output")
    assert [r.path for r in source.attrs["forward_to"]] == ["loki.process.api.receiver"]


def test_alloy_stream_labels_are_bounded() -> None:
    """The compose service (twice: `service` for the dashboards, `service_name` for Loki's
    conventions) and the container (one per replica); never a per-request value."""
    relabel = component("discovery.relabel", "compose")
    labels = {r.attrs["target_label"] for r in relabel.children("rule")}
    assert labels == {"service", "service_name", "container"}
    assert not set(structured_metadata_keys()) & labels


def test_alloy_pushes_to_loki_where_loki_listens() -> None:
    url = component("loki.write", "loki").child("endpoint").attrs["url"]
    assert url.endswith("/loki/api/v1/push")
    host, port = host_port(url)
    assert host == "loki" and port == load(LOKI)["server"]["http_listen_port"]


# ------------------------------------------------------------------------------ loki.yml


def test_loki_config_has_what_loki_3_7_needs() -> None:
    config = load(LOKI)
    assert set(config) <= LOKI_KEYS, set(config) - LOKI_KEYS
    assert config["auth_enabled"] is False  # one tenant: Alloy pushes without an org id
    assert config["server"]["http_listen_port"] == 3100
    [schema] = config["schema_config"]["configs"]
    # Structured metadata needs the TSDB index and schema v13; retention a 24 h period.
    assert (schema["store"], schema["schema"], schema["object_store"]) == (
        "tsdb", "v13", "filesystem")
    assert schema["index"]["period"] == "24h"
    assert config["limits_config"]["allow_structured_metadata"] is True
    if config.get("compactor", {}).get("retention_enabled"):
        assert config["compactor"]["delete_request_store"] == "filesystem"
        assert config["limits_config"]["retention_period"]
    assert config["analytics"]["reporting_enabled"] is False


def test_loki_builds_the_results_cache_it_configures() -> None:
    """Loki builds `results_cache` only with `cache_results: true` (its default is false):
    a cache configured without it is a block that does nothing."""
    query_range = load(LOKI).get("query_range", {})
    if "results_cache" in query_range:
        assert query_range.get("cache_results") is True
        cache = query_range["results_cache"]["cache"]["embedded_cache"]
        assert cache["enabled"] is True and 0 < cache["max_size_mb"] <= 64


def test_loki_writes_only_to_its_volume() -> None:
    config = load(LOKI)
    [volume] = [v for v in compose()["services"]["loki"]["volumes"]
                if not v.startswith("./")]
    target = volume.split(":")[1]
    paths = [config["common"]["path_prefix"], config["compactor"]["working_directory"],
             *config["common"]["storage"]["filesystem"].values()]
    for path in paths:
        assert path == target or path.startswith(target + "/"), path


# ------------------------------------------------------------------------------ tempo.yml


def test_tempo_config_has_what_tempo_3_needs() -> None:
    config = load(TEMPO)
    assert set(config) <= TEMPO_KEYS, set(config) - TEMPO_KEYS
    assert not {"ingester", "compactor"} & set(config), "Tempo 3.0 removed these blocks"
    assert config["server"]["http_listen_port"] == 3200
    assert host_port(datasources()["tempo"]["url"]) == ("tempo", 3200)
    protocols = config["distributor"]["receivers"]["otlp"]["protocols"]
    # Since 2.7 the receivers listen on localhost unless told: Alloy is another container.
    assert {p["endpoint"] for p in protocols.values()} == {"0.0.0.0:4317", "0.0.0.0:4318"}
    trace = config["storage"]["trace"]
    assert trace["backend"] == "local"
    assert config["usage_report"]["reporting_enabled"] is False


def test_tempo_writes_only_to_its_volume() -> None:
    trace = load(TEMPO)["storage"]["trace"]
    [volume] = [v for v in compose()["services"]["tempo"]["volumes"]
                if not v.startswith("./")]
    target = volume.split(":")[1]
    for path in (trace["wal"]["path"], trace["local"]["path"]):
        assert path.startswith(target + "/"), path


@pytest.mark.parametrize("path", [LOKI, TEMPO])
def test_config_files_are_mounted_where_their_services_read_them(path: Path) -> None:
    service = compose()["services"][path.stem]
    mounts = [v for v in service["volumes"] if v.startswith(f"./{path.name}:")]
    [mount] = mounts
    target = mount.split(":")[1]
    assert f"-config.file={target}" in service["command"]
    assert mount.endswith(":ro,z")
