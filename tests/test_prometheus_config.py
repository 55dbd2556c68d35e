"""Validate prometheus.yml, alerts.yml, alerts.test.yml and alertmanager.yml.

Two kinds of checks:
- the real tools (promtool, amtool from Debian's packages) parse the files and run the alert
  unit tests; missing tools are a failure, not a skip;
- static checks in Python against the metrics contract in docs/metrics.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_YML = REPO_ROOT / "prometheus.yml"
ALERTS_YML = REPO_ROOT / "alerts.yml"
ALERTS_TEST_YML = REPO_ROOT / "alerts.test.yml"
ALERTMANAGER_YML = REPO_ROOT / "alertmanager.yml"
METRICS_MD = REPO_ROOT / "docs" / "metrics.md"
INSTALL_SCRIPT = "scripts/install-observability-tools.sh"


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


def test_promtool_check_rules() -> None:
    run_tool("promtool", "check", "rules", ALERTS_YML.name)


def test_promtool_unit_tests_for_alerts() -> None:
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
    assert set(scrape_table()) == {"prometheus", "bank-api", "postgres-exporter", "locust"}


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
    assert config["rule_files"] == [ALERTS_YML.name]  # relative: same file natively and in compose
    text = METRICS_MD.read_text(encoding="utf-8")
    alertmanager = re.search(r"Alertmanager: `([^`]+)`", text).group(1)
    targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == [alertmanager]


# --------------------------------------------------------------------------- alerts.yml


def alert_rules() -> list[dict]:
    return [
        rule
        for group in load_yaml(ALERTS_YML)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


ALERT_NAMES = sorted(rule["alert"] for rule in alert_rules())


def test_alert_names_are_unique() -> None:
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_has_severity_summary_description(rule: dict) -> None:
    assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip(), "summary missing"
    assert len(annotations.get("description", "").strip()) > 40, "description missing or terse"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_expr_parses_as_promql(rule: dict) -> None:
    promql_parser.parse(rule["expr"])


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_rate_windows_span_several_scrapes(rule: dict) -> None:
    # At 5 s scrapes, a window below 20 s has too few samples: one miss and rate() vanishes.
    for window in re.findall(r"\[(\d+)([smh])\]", rule["expr"]):
        seconds = int(window[0]) * {"s": 1, "m": 60, "h": 3600}[window[1]]
        assert seconds >= 20, f"window [{''.join(window)}] in {rule['alert']}"


def test_contract_alerts_exist() -> None:
    required = {
        "BankApiDown",
        "BankApiHigh5xxRatio",
        "BankApiHighLatencyP95",
        "PostgresDown",
        "PostgresExporterDown",
        "DatabasePoolExhausted",
        "DatabaseErrors",
        "LocustHighFailureRatio",
    }
    assert required <= set(ALERT_NAMES)


# --------------------------------------------------------------------------- alerts.test.yml


def rule_test_cases() -> list[dict]:
    tests = load_yaml(ALERTS_TEST_YML)
    assert tests["rule_files"] == [ALERTS_YML.name]
    return [case for group in tests["tests"] for case in group.get("alert_rule_test", [])]


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_quiet_unit_test(alertname: str) -> None:
    cases = [c for c in rule_test_cases() if c["alertname"] == alertname]
    firing = [c for c in cases if c.get("exp_alerts")]
    quiet = [c for c in cases if not c.get("exp_alerts")]
    assert firing, f"no case in alerts.test.yml where {alertname} fires"
    assert quiet, f"no case in alerts.test.yml where {alertname} stays quiet"
    for case in firing:
        for alert in case["exp_alerts"]:
            assert alert.get("exp_annotations", {}).get("summary"), "summary not checked"


def test_unit_tests_use_the_5s_intervals() -> None:
    tests = load_yaml(ALERTS_TEST_YML)
    assert tests["evaluation_interval"] == "5s"
    assert {group["interval"] for group in tests["tests"]} == {"5s"}


def test_unit_tests_name_only_existing_alerts() -> None:
    assert {c["alertname"] for c in rule_test_cases()} <= set(ALERT_NAMES)
