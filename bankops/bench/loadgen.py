"""Load generators: wrk with the Lua scripts in wrk/, and the Locust mixed workload
(python -m bank_loadtest) for the API as its customers use it.

wrk keeps a fixed number of connections busy (a closed loop: each connection sends its next
request when the previous answer arrives), so a rate measured at the same concurrency can be
compared across servers. Its latencies are per request, from send to last byte.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bankops.processes import Service

BENCH = Path(__file__).resolve().parent
WRK_SCRIPTS = BENCH / "wrk"


def ensure_wrk() -> str:
    """wrk's path; installed from Debian's package when missing (root only)."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: install it (Debian/Ubuntu: apt-get install wrk)")
    return found


def wrk_version(wrk: str) -> str:
    output = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
    return output.splitlines()[0].strip() if output else "unknown"


def wrk_command(wrk: str, url: str, script: str, connections: int, threads: int,
                seconds: float, args: list[str]) -> list[str]:
    return [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", f"{script}.lua", url, "--", *args]


def start_wrk(argv: list[str], log_path: Path) -> Service:
    """wrk running, its output going to log_path (a new file for each run)."""
    log_path.unlink(missing_ok=True)  # the Service appends; one run's output per file
    # The scripts load common.lua by a relative path.
    return Service("wrk", argv, log_path=log_path, cwd=WRK_SCRIPTS, timeout=10).start()


def finish_wrk(wrk: Service, timeout: float) -> dict:
    """Wait for wrk and turn its summary line into the measurement (stopped after timeout
    seconds, or on any error, Ctrl-C included)."""
    try:
        wrk.wait(timeout)
    finally:
        returncode = wrk.stop()
    output = wrk.log_path.read_text(errors="replace")
    line = next((line for line in output.splitlines() if line.startswith("BENCH_JSON ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({returncode}):\n{output[-2000:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    return summarize(raw)


def summarize(raw: dict) -> dict:
    """Requests per second, latency percentiles in ms, and what the answers were:
    2xx, refusals (409 insufficient_funds: the bank said no, a normal answer) and errors
    (anything else, other 409s included)."""
    statuses = {int(status): n for status, n in raw["statuses"].items()}
    answered = sum(statuses.values())
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    refused = raw["refused"]
    socket_errors = sum(raw["socket_errors"].values())
    errors = answered - ok - refused + socket_errors
    seconds = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1),
        "ok_rps": round(ok / seconds, 1),
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p90_ms": round(latency["p90"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
        "max_ms": round(latency["max"] / 1000, 2),
        "statuses": dict(sorted(statuses.items())),
        "refused_share": round(refused / answered, 4) if answered else 0.0,
        "error_share": round(errors / max(answered + socket_errors, 1), 4),
        "socket_errors": raw["socket_errors"],
    }


def locust_command(host: str, users: int, seconds: float, run_dir: Path, web_port: int,
                   database_url: str) -> list[str]:
    argv = [sys.executable, "-m", "bank_loadtest", "--host", host,
            "--shape", "steady", "--users", str(users), "--spawn-rate", str(users),
            "--duration", f"{max(1, round(seconds))}s", "--think-time", "0-0",
            "--run-dir", str(run_dir), "--web-port", str(web_port), "--linger", "1",
            # Failures are reported below; the run's own verdict does not stop the benchmark.
            "--max-failure-ratio", "1",
            # After the run, the books are checked in SQL: the whole database, benchmark
            # writes included, must still balance.
            "--database-url", database_url]
    return argv


def read_locust(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "run.json").read_text())
    totals = summary.get("totals") or {}
    p99 = None
    with (run_dir / "locust_stats.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated" and row.get("99%", "N/A") != "N/A":
                p99 = float(row["99%"])
    return {
        "rps": totals.get("requests_per_second"),
        "requests": totals.get("requests"),
        "failure_ratio": totals.get("failure_ratio"),
        "p50_ms": totals.get("median_ms"),
        "p95_ms": totals.get("p95_ms"),
        "p99_ms": p99,
        "invariants": summary.get("invariants"),
        "verdict": summary.get("verdict"),
    }
