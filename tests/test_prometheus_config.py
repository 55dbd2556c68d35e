"""Validate prometheus.yml, its rule files (alerts.yml, slo-rules.yml), their unit tests
(alerts.test.yml, slo-rules.test.yml, slo-rules.long.test.yml), the alerts' runbooks
(docs/runbooks/) and alertmanager.yml.

Two kinds of checks:
- the real tools (promtool, amtool from Debian's packages) parse the files and run the alert
  unit tests; missing tools are a failure, not a skip;
- static checks in Python against the metrics contract in docs/metrics.md, and of every alert
  of every rule file prometheus.yml loads: severity, annotations, rate windows, a runbook that
  exists (down to its heading), a unit test where it fires and one where it stays quiet.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import promql_parser
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_YML = REPO_ROOT / "prometheus.yml"
ALERTS_YML = REPO_ROOT / "alerts.yml"
ALERTS_TEST_YML = REPO_ROOT / "alerts.test.yml"
# Generated from slos.yml by `python -m bankops.slo`: the objectives' burn-rate alerts.
SLO_RULES_YML = REPO_ROOT / "slo-rules.yml"
SLO_RULES_TEST_YML = REPO_ROOT / "slo-rules.test.yml"
SLO_RULES_LONG_TEST_YML = REPO_ROOT / "slo-rules.long.test.yml"
SLOS_YML = REPO_ROOT / "slos.yml"
ALERTMANAGER_YML = REPO_ROOT / "alertmanager.yml"
METRICS_MD = REPO_ROOT / "docs" / "metrics.md"
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"
INSTALL_SCRIPT = "scripts/install-observability-tools.sh"

# Each rule file's promtool unit tests, in the file beside it.
UNIT_TESTS = {ALERTS_TEST_YML: ALERTS_YML, SLO_RULES_TEST_YML: SLO_RULES_YML,
              SLO_RULES_LONG_TEST_YML: SLO_RULES_YML}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run_tool(tool: str, *args: str) -> None:
    """Run a Prometheus/Alertmanager tool from the repo root; fail with its output."""
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(
            f"`{tool}` is not on PATH. Install it (as root) with: {INSTALL_SCRIPT}",
            pytrace=False,
        )
    proc = subprocess.run(
        [exe, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = f"$ {tool} {' '.join(args)}\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, output


# --------------------------------------------------------------------------- real tools


def test_promtool_check_config() -> None:
    run_tool("promtool", "check", "config", PROMETHEUS_YML.name)


def rule_files() -> list[Path]:
    """The rule files prometheus.yml loads (relative to it: the repo root)."""
    return [REPO_ROOT / name for name in load_yaml(PROMETHEUS_YML)["rule_files"]]


def test_promtool_check_rules() -> None:
    run_tool("promtool", "check", "rules", *(path.name for path in rule_files()))


def test_promtool_unit_tests_for_alerts() -> None:
    # slo-rules.test.yml and slo-rules.long.test.yml run in tests/test_slo_rules.py.
    run_tool("promtool", "test", "rules", ALERTS_TEST_YML.name)


def test_amtool_check_config() -> None:
    run_tool("amtool", "check-config", ALERTMANAGER_YML.name)


def test_install_script_is_valid_bash() -> None:
    proc = subprocess.run(
        ["bash", "-n", INSTALL_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- prometheus.yml


def scrape_table() -> dict[str, dict[str, str]]:
    """Rows of the scrape-target table in docs/metrics.md, keyed by job name."""
    rows: dict[str, dict[str, str]] = {}
    text = METRICS_MD.read_text(encoding="utf-8")
    section = text.split("## Scrape targets", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        job, compose, native, path = (re.findall(r"`([^`]*)`", c) for c in cells)
        rows[job[0]] = {
            "compose": compose[0],
            "native": native[0],
            "path": path[0],
            "every_replica": "every replica" in cells[1],
        }
    return rows


def test_scrape_table_is_read_from_the_contract() -> None:
    assert set(scrape_table()) == {"prometheus", "bank-api", "postgres-exporter", "locust",
                                   "scenarios"}


def test_global_intervals_are_5s() -> None:
    config = load_yaml(PROMETHEUS_YML)["global"]
    assert config["scrape_interval"] == "5s"
    assert config["evaluation_interval"] == "5s"


def scrape_jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]}


@pytest.mark.parametrize("job_name", sorted(scrape_table()))
def test_scrape_job_matches_contract(job_name: str) -> None:
    row = scrape_table()[job_name]
    job = scrape_jobs().get(job_name)
    assert job is not None, f"job {job_name!r} from docs/metrics.md missing in prometheus.yml"
    assert job.get("metrics_path", "/metrics") == row["path"]
    host, port = row["compose"].rsplit(":", 1)
    if row["every_replica"]:
        # Discovered through DNS, one target per replica: checked in detail below.
        dns = job["dns_sd_configs"]
        assert [(d["names"], int(d["port"])) for d in dns] == [([host], int(port))]
    else:
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets == [row["compose"]]


def test_no_scrape_job_outside_the_contract() -> None:
    assert set(scrape_jobs()) == set(scrape_table())


def test_bank_api_job_discovers_every_replica() -> None:
    job = scrape_jobs()["bank-api"]
    assert "static_configs" not in job, "a static api:8000 would hit one replica at random"
    assert job["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "5s"}
    ]


def test_rules_and_alertmanager_are_wired() -> None:
    config = load_yaml(PROMETHEUS_YML)
    # Relative: the same files natively and in compose.
    assert config["rule_files"] == [ALERTS_YML.name, SLO_RULES_YML.name]
    text = METRICS_MD.read_text(encoding="utf-8")
    alertmanager = re.search(r"Alertmanager: `([^`]+)`", text).group(1)
    targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == [alertmanager]


# --------------------------------------------------------------------------- rule files


def all_rules() -> list[dict]:
    """Every rule, recording and alerting, of every rule file prometheus.yml loads."""
    return [
        rule
        for path in rule_files()
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def alert_rules() -> list[dict]:
    return [rule for rule in all_rules() if "alert" in rule]


def rule_id(rule: dict) -> str:
    """The burn-rate alerts and the SLO recording rules exist once per objective (label slo)."""
    name = rule.get("alert") or rule["record"]
    slo = rule.get("labels", {}).get("slo")
    return f"{name}[{slo}]" if slo else name


ALERT_RULES = alert_rules()
ALERT_NAMES = sorted({rule["alert"] for rule in ALERT_RULES})


def test_each_alert_is_defined_once() -> None:
    # One file per alert name; rules sharing a name (one per objective) differ by labels.
    files = defaultdict(set)
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    files[rule["alert"]].add(path.name)
    assert {name: sorted(f) for name, f in files.items() if len(f) > 1} == {}
    keys = [(rule["alert"], sorted(rule.get("labels", {}).items())) for rule in ALERT_RULES]
    assert [k for k, n in Counter(map(repr, keys)).items() if n > 1] == []


@pytest.mark.parametrize("rule", ALERT_RULES, ids=rule_id)
def test_alert_has_severity_summary_description(rule: dict) -> None:
    assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip(), "summary missing"
    assert len(annotations.get("description", "").strip()) > 40, "description missing or terse"


@pytest.mark.parametrize("rule", all_rules(), ids=rule_id)
def test_rule_expr_parses_as_promql(rule: dict) -> None:
    promql_parser.parse(rule["expr"])


def range_windows(expr: str) -> list[int]:
    """The seconds of every range selector (`[1m]`, `[1h12m]`) in a PromQL expression."""
    windows = []

    def visit(node) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            windows.append(int(node.range.total_seconds()))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return windows


def test_range_windows_are_found() -> None:
    assert range_windows("sum(rate(a[1h12m])) / sum(rate(b[30s]) > 0) or c") == [4320, 30]


@pytest.mark.parametrize("rule", all_rules(), ids=rule_id)
def test_rate_windows_span_several_scrapes(rule: dict) -> None:
    # At 5 s scrapes, a window below 20 s has too few samples: one miss and rate() vanishes.
    # Recording rules too: the burn-rate alerts read their windows through them.
    for seconds in range_windows(rule["expr"]):
        assert seconds >= 20, f"a [{seconds}s] window in {rule_id(rule)}"


def test_contract_alerts_exist() -> None:
    required = {
        "BankApiDown",
        "ErrorBudgetFastBurn",
        "ErrorBudgetSlowBurn",
        "PostgresDown",
        "PostgresExporterDown",
        "DatabasePoolExhausted",
        "DatabaseErrors",
        "LocustHighFailureRatio",
    }
    assert required <= set(ALERT_NAMES)


@pytest.mark.parametrize(
    ("alertname", "severity"),
    [("ErrorBudgetFastBurn", "critical"), ("ErrorBudgetSlowBurn", "warning")],
)
def test_every_objective_has_its_burn_rate_alerts(alertname: str, severity: str) -> None:
    # A page for a fast burn and a ticket for a slow one, for every objective of slos.yml.
    objectives = {objective["name"] for objective in load_yaml(SLOS_YML)["objectives"]}
    rules = [rule for rule in ALERT_RULES if rule["alert"] == alertname]
    assert sorted(rule["labels"]["slo"] for rule in rules) == sorted(objectives)
    assert {rule["labels"]["severity"] for rule in rules} == {severity}


# --------------------------------------------------------------------------- runbooks

RUNBOOK_URL = re.compile(r"docs/runbooks/(?P<file>[^/#]+\.md)(?:#(?P<anchor>.+))?")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading (its slugger, applied to the rendered text): links
    and code reduced to their text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def heading_anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated one gets -1, -2, ... as on
    GitHub. Lines in fenced code blocks (a shell comment, say) are not headings."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r" {0,3}(```|~~~)", line):
            fenced = not fenced
            continue
        match = re.match(r" {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$", line)
        if fenced or not match:
            continue
        anchor = github_anchor(match.group(1))
        anchors.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
        seen[anchor] += 1
    return anchors


def test_github_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n## Money movements\n## `reads`: GET routes\n## What to do\n"
        "```sh\n# not a heading\n```\n### What to do\n## Latency (p95, [link](x.md)) ##\n",
        encoding="utf-8",
    )
    assert heading_anchors(page) == {
        "title",
        "money-movements",
        "reads-get-routes",
        "what-to-do",
        "what-to-do-1",
        "latency-p95-link",
    }


@pytest.mark.parametrize("rule", ALERT_RULES, ids=rule_id)
def test_alert_links_its_runbook(rule: dict) -> None:
    # Relative to the repository: the same link natively, in compose and on GitHub.
    url = rule.get("annotations", {}).get("runbook_url", "")
    match = RUNBOOK_URL.fullmatch(url)
    assert match, f"runbook_url {url!r} is not docs/runbooks/<AlertName>.md[#heading]"
    assert match.group("file") == f"{rule['alert']}.md", "one runbook per alert, named after it"
    path = RUNBOOKS / match.group("file")
    assert path.is_file(), f"{url}: no such file"
    anchor = match.group("anchor")
    if anchor is not None:
        anchors = heading_anchors(path)
        assert anchor in anchors, f"{url}: no such heading; the file has {sorted(anchors)}"


def test_runbooks_are_the_alerts_and_indexed() -> None:
    runbooks = {path.name for path in RUNBOOKS.glob("*.md")} - {"README.md"}
    assert runbooks == {f"{name}.md" for name in ALERT_NAMES}
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    assert runbooks <= set(re.findall(r"\]\(([^)#]+\.md)[)#]", index))


# --------------------------------------------------------------------------- unit tests


def rule_test_cases() -> list[dict]:
    cases = []
    for path in UNIT_TESTS:
        tests = load_yaml(path)
        assert tests["rule_files"] == [UNIT_TESTS[path].name], path.name
        cases += [case for group in tests["tests"] for case in group.get("alert_rule_test", [])]
    return cases


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_quiet_unit_test(alertname: str) -> None:
    cases = [c for c in rule_test_cases() if c["alertname"] == alertname]
    firing = [c for c in cases if c.get("exp_alerts")]
    quiet = [c for c in cases if not c.get("exp_alerts")]
    where = " or ".join(path.name for path in UNIT_TESTS)
    assert firing, f"no case in {where} where {alertname} fires"
    assert quiet, f"no case in {where} where {alertname} stays quiet"
    for case in firing:
        for alert in case["exp_alerts"]:
            assert alert.get("exp_annotations", {}).get("summary"), "summary not checked"


@pytest.mark.parametrize("path", list(UNIT_TESTS), ids=lambda p: p.name)
def test_unit_tests_use_the_5s_intervals(path: Path) -> None:
    tests = load_yaml(path)
    assert tests["evaluation_interval"] == "5s"
    assert {group["interval"] for group in tests["tests"]} == {"5s"}


def test_unit_tests_name_only_existing_alerts() -> None:
    assert {c["alertname"] for c in rule_test_cases()} <= set(ALERT_NAMES)
