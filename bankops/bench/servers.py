"""The HTTP servers under test, each a bankops.processes.Service: the API (`bank-api`, the
README's command) and the bare FastAPI app (bare_app.py).

Both are started the same way: uvicorn with its defaults (uvloop and httptools when
installed, uvicorn's access log off), the same WEB_CONCURRENCY, listening on 127.0.0.1.
Stopping one stops its whole process tree (uvicorn's workers included).

A server's stdout and stderr go to its log file in the work folder (logs/<name>.log): with
logs on, the API writes its JSON lines there, a write per line as to a container's stdout.
The API runs with logs and traces off (no line per request or event, no OTEL_* variable) or
on, as the compose stack ships them (TELEMETRY_ON).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import psutil

from bankops.processes import LOOPBACK, Service
from bankops.stack.stack_secrets import parse_env_file

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
HOST = LOOPBACK
# Seconds to answer the readiness path with every worker up, and to stop before SIGKILL.
TIMEOUT = 60


class Server:
    """A Service, plus what the benchmark needs of a server: its URL, the command as a person
    would type it, and its processes (for CPU metering and profiling)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str | None], port: int,
                 ready_path: str, work_dir: Path) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        # cwd: a folder without a .env, so only the settings given here apply.
        self.service = Service(name, argv, log_path=work_dir / "logs" / f"{name}.log",
                               env=env, cwd=work_dir, ready_url=self.url + ready_path,
                               ready=self._all_workers_up, timeout=TIMEOUT)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.service.pid is not None, f"{self.name} is not running"
        return self.service.pid

    def command(self) -> str:
        """The command as a person would type it (settings as environment variables)."""
        settings = " ".join(f"{k}={v}" for k, v in self.env.items()
                            if k != "DATABASE_URL" and v is not None)
        database = "DATABASE_URL=<the benchmark database> " if "DATABASE_URL" in self.env else ""
        return f"{database}{settings} {' '.join(self.argv)}"

    def start(self) -> Server:
        self.service.start()
        return self

    def _all_workers_up(self) -> bool:
        """With several workers, uvicorn answers as soon as the first one is up."""
        workers = int(self.env.get("WEB_CONCURRENCY") or "1")
        if workers == 1:
            return True
        # uvicorn's supervisor, a multiprocessing helper, and one process per worker;
        # give the last workers a moment to finish their start-up too.
        time.sleep(1.0)
        children = psutil.Process(self.pid).children()
        return sum("spawn_main" in " ".join(c.cmdline()) for c in children) >= workers

    def pids(self) -> list[int]:
        try:
            root = psutil.Process(self.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the only one, or uvicorn's workers."""
        root = psutil.Process(self.pid)
        workers = [c.pid for c in root.children() if "spawn_main" in " ".join(c.cmdline())]
        return workers or [root.pid]

    def log_lines(self) -> dict:
        """What the server wrote to its log file: lines, JSON-object lines, those by their
        `event` field (`request` for each request's one line), and the request lines by their
        `outcome` (`moved`, `refused`, …)."""
        lines = json_lines = 0
        events: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        path = self.service.log_path
        with path.open(encoding="utf-8", errors="replace") if path.exists() else \
                contextlib.nullcontext([]) as log:
            for line in log:
                lines += 1
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    json_lines += 1
                    event = str(record.get("event", "(no event)"))
                    events[event] = events.get(event, 0) + 1
                    if "outcome" in record:
                        outcome = str(record["outcome"])
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return {"lines": lines, "json_lines": json_lines, "by_event": events,
                "by_outcome": outcomes}

    def stop(self) -> None:
        """SIGTERM (uvicorn stops its workers and drains), SIGKILL after TIMEOUT, then any
        process of its tree left behind."""
        self.service.stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _shipped_sampler() -> dict[str, str]:
    """OTEL_TRACES_SAMPLER and its argument as the compose stack ships them (env.example)."""
    shipped = parse_env_file(REPO / "env.example")
    return {name: shipped[name] for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")}


# Logs and traces on, as the compose stack ships them (env.example): JSON lines on stdout
# (here: the server's log file), one per request with its outcome, and requests
# traced at the shipped sampling, exported over OTLP/HTTP.
TELEMETRY_ON = {"LOG_FORMAT": "json", "ACCESS_LOG": "true", "LOG_LEVEL": "INFO",
                "OTEL_SERVICE_NAME": "bank-api", **_shipped_sampler()}
# Off: no line per request or per event (only warnings and errors), no tracing.
TELEMETRY_OFF = {"LOG_FORMAT": "console", "ACCESS_LOG": "false", "LOG_LEVEL": "WARNING"}
# Tracing is on when one of these is set; the caller's own OTEL_* variables are removed for
# every variant, so only the settings above apply.
OTEL_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def telemetry_env(otlp_endpoint: str | None) -> dict[str, str | None]:
    """The logging and tracing settings: on (traces to `otlp_endpoint`) or off (None)."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("OTEL_")}
    env |= dict.fromkeys(OTEL_ENDPOINTS)
    if otlp_endpoint is None:
        return env | TELEMETRY_OFF
    return env | TELEMETRY_ON | {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint}


def api_server(database_url: str, port: int, workers: int, metrics: bool,
               work_dir: Path, otlp_endpoint: str | None = None) -> Server:
    """The API with metrics on or off, and logs and traces on (traces exported to
    `otlp_endpoint`) or off (the default)."""
    telemetry = "on" if otlp_endpoint else "off"
    name = f"api-w{workers}-metrics-{'on' if metrics else 'off'}-telemetry-{telemetry}-{port}"
    env: dict[str, str | None] = {
        "DATABASE_URL": database_url,
        "HOST": HOST,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "METRICS_ENABLED": "true" if metrics else "false",
        **telemetry_env(otlp_endpoint),
    }
    if workers > 1:
        # Where the workers' metric files go; bank-api empties it before the workers start.
        env["PROMETHEUS_MULTIPROC_DIR"] = str(work_dir / f"prometheus-multiproc-{port}")
    else:
        # Unset, not empty: prometheus_client switches to multiprocess mode when the variable
        # merely exists.
        env["PROMETHEUS_MULTIPROC_DIR"] = None
    return Server(name, [str(VENV_BIN / "bank-api")], env, port, "/health/ready", work_dir)


def bare_server(port: int, workers: int, work_dir: Path) -> Server:
    env: dict[str, str | None] = {"HOST": HOST, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}
    return Server(f"bare-w{workers}-{port}", [sys.executable, "-m", "bankops.bench.bare_app"],
                  env, port, "/def", work_dir)


def ceiling_server(database_url: str, port: int, workers: int, work_dir: Path) -> Server:
    env: dict[str, str | None] = {"DATABASE_URL": database_url, "HOST": HOST, "PORT": str(port),
                                  "WEB_CONCURRENCY": str(workers)}
    return Server(f"ceiling-w{workers}-{port}",
                  [sys.executable, "-m", "bankops.bench.ceiling_app"], env, port,
                  "/accounts/1", work_dir)
