"""The design card's top level: eight entries stand at the repository root, each holding what
its name says. A reader with the card in hand finds each one where the card puts it, so a
move that buries one (as the load test and the report once were, under the tools' package)
fails here first."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CARD = ("api", "dashboards", "prometheus.yml", "datasource.yml", "docker-compose.yml",
        "env.example", "loadtest", "report")


def test_every_entry_of_the_card_stands_at_the_root() -> None:
    for name in CARD:
        assert (REPO / name).exists(), f"{name} is missing from the repository root"
    # Tracked, not only present on this machine.
    tracked = subprocess.run(["git", "ls-files", *CARD], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert {path.split("/")[0] for path in tracked} == set(CARD)


def test_api_is_the_service_as_its_own_project() -> None:
    api = REPO / "api"
    project = tomllib.loads((api / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "bank-api"
    for part in ("Dockerfile", "alembic.ini", "src/bank_api/main.py",
                 "src/bank_api/migrations/env.py", "src/bank_api/services/ledger.py",
                 "tests/conftest.py"):
        assert (api / part).is_file(), f"api/{part}"


def test_dashboards_holds_the_provider_and_its_dashboards() -> None:
    provider = yaml.safe_load((REPO / "dashboards" / "provider.yml").read_text())
    assert provider["providers"], "no dashboard provider"
    dashboards = sorted((REPO / "dashboards").glob("*.json"))
    assert dashboards, "no dashboard JSON"
    for path in dashboards:
        assert path.read_text(encoding="utf-8").lstrip().startswith("{"), path.name


def test_prometheus_yml_is_the_scrape_config() -> None:
    config = yaml.safe_load((REPO / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "5s"
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"bank-api"}


def test_datasource_yml_provisions_grafana_datasources() -> None:
    config = yaml.safe_load((REPO / "datasource.yml").read_text())
    assert config["apiVersion"] == 1
    assert {d["type"] for d in config["datasources"]} >= {"prometheus"}
    assert all(d.get("uid") for d in config["datasources"]), "every datasource's uid pinned"


def test_docker_compose_and_env_example_are_the_whole_stack() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert {"api", "postgres", "prometheus", "grafana", "locust-master"} <= set(compose["services"])
    lines = [line for line in (REPO / "env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines and all("=" in line for line in lines)


def test_loadtest_has_the_locustfile_at_its_top_and_the_runner_beside_it() -> None:
    loadtest = REPO / "loadtest"
    assert (loadtest / "locustfile.py").is_file()
    assert (loadtest / "bank_loadtest" / "__main__.py").is_file()  # python -m bank_loadtest
    classes = {node.name for path in (loadtest / "bank_loadtest").glob("*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef)}
    assert {"BankCustomer"} <= classes


def test_locust_loads_the_locustfile_from_its_own_folder() -> None:
    """`cd loadtest && locust -f locustfile.py`, as Locust's docs show: the user class is
    found (--list loads the file and prints its users without running them)."""
    locust = Path(sys.executable).parent / "locust"
    listed = subprocess.run([str(locust), "-f", "locustfile.py", "--list"], cwd=REPO / "loadtest",
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "BankCustomer" in listed.stdout


def test_report_holds_the_generator_and_a_sample_of_its_output() -> None:
    report = REPO / "report"
    assert (report / "bank_report" / "__main__.py").is_file()  # python -m bank_report
    for part in ("index.html", "report.md", "summary.json", "run/locust_stats.csv"):
        assert (report / "sample" / part).is_file(), f"report/sample/{part}"


def test_no_bare_top_level_name_is_importable_from_the_repository() -> None:
    """The tools are installed as exactly three import names; the folders that hold them are
    not on sys.path, so `report`, `loadtest` or `api` cannot shadow another distribution."""
    script = ("import importlib.util as u, sys; "
              "print([n for n in sys.argv[1:] if u.find_spec(n) is not None])")
    names = ["report", "loadtest", "api", "tests", "locustfile", "sample", "bankops",
             "bank_loadtest", "bank_report"]
    found = subprocess.run([sys.executable, "-c", script, *names], cwd="/",
                           capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(found) == ["bankops", "bank_loadtest", "bank_report"]


def test_every_relative_link_between_documents_resolves() -> None:
    """A move leaves no link behind: every relative link of every tracked Markdown file (and
    the Markdown files' anchors aside) points at a file or folder that exists."""
    documents = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()
    assert "README.md" in documents
    broken = []
    for document in documents:
        path = REPO / document
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, or an anchor in the same document
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{document}: {target}")
    assert broken == []
