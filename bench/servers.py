"""The HTTP servers under test, each a process tree started here and stopped by its own PIDs:
the API (`bank-api`, the README's command) and the bare FastAPI app (bench/bare_app.py).

Both are started the same way: uvicorn with its defaults (uvloop and httptools when
installed, access log off), the same WEB_CONCURRENCY, listening on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str | None], port: int,
                 ready_path: str, work_dir: Path) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.ready_path = ready_path
        self.work_dir = work_dir
        self.log_path = work_dir / "logs" / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> str:
        """The command as a person would type it (settings as environment variables)."""
        settings = " ".join(f"{k}={v}" for k, v in self.env.items()
                            if k != "DATABASE_URL" and v is not None)
        database = "DATABASE_URL=<the benchmark database> " if "DATABASE_URL" in self.env else ""
        return f"{database}{settings} {' '.join(self.argv)}"

    def start(self, timeout: float = 60) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # cwd: a folder without a .env, so only the settings given here apply.
            env = {k: v for k, v in (os.environ | self.env).items() if v is not None}
            self.process = subprocess.Popen(
                self.argv, env=env, cwd=self.work_dir, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; "
                                   f"see {self.log_path}")
            if self._answers() and self._all_workers_up():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer {self.ready_path} in {timeout:.0f}s; "
                           f"see {self.log_path}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _all_workers_up(self) -> bool:
        """With several workers, uvicorn answers as soon as the first one is up."""
        workers = int(self.env.get("WEB_CONCURRENCY", "1"))
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

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        family = [psutil.Process(pid) for pid in self.pids()]
        if self.process.poll() is None:
            self.process.terminate()  # uvicorn stops its workers and drains
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for process in family[1:]:  # any worker left behind, by its own PID
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process = None

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
    return Server(f"bare-w{workers}-{port}", [sys.executable, str(BENCH / "bare_app.py")], env,
                  port, "/def", work_dir)
