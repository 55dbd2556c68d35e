"""The HTTP servers under test, each a bankops.processes.Service: the API (`bank-api`, the
README's command) and the bare FastAPI app (bare_app.py).

Both are started the same way: uvicorn with its defaults (uvloop and httptools when
installed, access log off), the same WEB_CONCURRENCY, listening on 127.0.0.1. Stopping one
stops its whole process tree (uvicorn's workers included).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from bankops.processes import LOOPBACK, Service

VENV_BIN = Path(sys.executable).parent
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

    def stop(self) -> None:
        """SIGTERM (uvicorn stops its workers and drains), SIGKILL after TIMEOUT, then any
        process of its tree left behind."""
        self.service.stop()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def api_server(database_url: str, port: int, workers: int, metrics: bool,
               work_dir: Path) -> Server:
    name = f"api-w{workers}-metrics-{'on' if metrics else 'off'}-{port}"
    env: dict[str, str | None] = {
        "DATABASE_URL": database_url,
        "HOST": HOST,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "METRICS_ENABLED": "true" if metrics else "false",
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
