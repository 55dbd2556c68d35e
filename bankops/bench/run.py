"""The benchmark: one command, one machine, one run; the ratios are the result.

    .venv/bin/python -m bankops.bench                  # full run, about 20 minutes
    .venv/bin/python -m bankops.bench --quick          # a smoke test, about 4 minutes
    .venv/bin/python -m bankops.bench --duration 20 --rounds 2 --connections 64

It starts its own PostgreSQL (embedded, in a temporary folder) unless --database-url names an
empty, migrated database, and seeds 10,000 funded accounts. Then, for 1 and then 2 uvicorn
workers, with the bare app, the stack ceiling and three API servers running side by side:
metrics on and metrics off, both with logs and traces off (ACCESS_LOG=false, LOG_LEVEL=WARNING,
no OTEL_* variable), and metrics on with logs and traces on as the compose stack ships them
(JSON lines, one per request with its outcome, to the server's log file; requests
traced at the shipped sampling, exported over OTLP/HTTP to the trace sink, trace_sink.py, a
process of its own):

1. rounds of, for each operation (account read, credit, credit with Idempotency-Key,
   transfer): the database ceiling, pgbench running the API's own SQL (pgbench/*.sql);
   the stack ceiling (ceiling_app.py: the same FastAPI, uvicorn, SQLAlchemy and psycopg2
   with none of the API's layers, running its SQL; not for the keyed credit);
   then the API under wrk (wrk/*.lua), the three servers back to back with metrics on in
   the middle and the other two swapping sides every round (logs+traces on, metrics on,
   metrics off; then metrics off, metrics on, logs+traces on); then the web ceiling, the
   bare FastAPI endpoint (bare_app.py), `def` and `async def`. Measuring each ratio's two
   sides one after the other keeps slow drift of a shared machine out of the ratios;
2. the Locust mixed workload (python -m bank_loadtest) and the cost of one /metrics scrape;
3. what logs and traces produced: the spans and traces the sink received (per measurement
   and in all) and the lines each API server wrote (none with them off).

Finally the /metrics series count after the same traffic with 100 and with 10,000 accounts,
and the money invariants over the whole database (bank_api.audit; every benchmark write
included).

Results: bankops/bench/results/latest.md and latest.json (--quick: quick.md and quick.json),
with the machine, the versions, every command and every measurement; ratios against the
targets of bankops/bench/README.md. Every process started here is stopped here
(bankops.processes.Service: the process and everything it started).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bank_api.audit import check_database
from bankops.bench import database, loadgen, machine, scrape, servers, summary
from bankops.bench.cpu import CpuMeter
from bankops.bench.trace_sink import TraceSink
from bankops.processes import Service

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]

# What each API operation is called in the wrk and pgbench scripts, in the order they run.
OPERATIONS = ("read", "credit", "credit_key", "transfer")
# The operations the stack ceiling (ceiling_app.py) serves; idempotency is the API's alone.
CEILING_OPERATIONS = ("read", "credit", "transfer")
# The API's variants, side by side in each worker count's block: (metrics, logs and traces).
# "on" and "off" are metrics on and off with logs and traces off, as before logs and traces
# existed; "telemetry" is "on" with JSON logs (a line per request and per event) and traces
# (every request, exported to the trace sink), as the compose stack ships them.
VARIANTS = ("on", "off", "telemetry")
SETTINGS = {"on": (True, False), "off": (False, False), "telemetry": (True, True)}


@dataclass(frozen=True)
class Plan:
    duration: float  # seconds per measurement
    warmup: float  # seconds of the same load, not measured, before each measurement
    connections: int  # wrk connections = pgbench clients = Locust users
    threads: int  # wrk and pgbench threads
    rounds: int  # rounds per worker count (each: every operation, every API variant)
    workers: tuple[int, ...]
    accounts: int
    scrapes: int
    port_base: int

    def api_port(self, variant: str = "on") -> int:  # one port per API variant
        return self.port_base + 10 + VARIANTS.index(variant)

    def bare_port(self) -> int:
        return self.port_base + 20

    def ceiling_port(self) -> int:
        return self.port_base + 21

    def series_port(self) -> int:
        return self.port_base + 30

    def trace_sink_port(self) -> int:
        return self.port_base + 40

    def locust_port(self) -> int:
        return self.port_base + 50


class Bench:
    """The run's state: where things are, what was measured, what commands ran."""

    def __init__(self, plan: Plan, wrk: str, work_dir: Path) -> None:
        self.plan, self.wrk_path, self.work_dir = plan, wrk, work_dir
        self.url = ""
        self.postgres_pid: int | None = None
        self.id_range = (1, plan.accounts)
        self.run_word = secrets.token_hex(4)
        self.wrk_runs = 0
        self.measurements: list[dict] = []
        self.commands: dict[str, str] = {}
        self.started = time.monotonic()

    def log(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {text}", flush=True)

    def command(self, what: str, argv: list[str] | str, cwd: Path | None = None) -> str:
        """Record a command as run, with the database URL and the run's word made generic."""
        text = argv if isinstance(argv, str) else " ".join(argv)
        text = text.replace(self.url, "<database-url>") if self.url else text
        text = re.sub(self.run_word + r"r\d+", "<run-word>", text).replace(sys.executable, "python")
        text = text.replace(str(self.work_dir), "<work-dir>").replace(str(REPO) + "/", "")
        if cwd is not None:
            text = f"(cd {cwd.relative_to(REPO)} && {text})"
        self.commands.setdefault(what, text)
        return text

    def add(self, measurement: dict) -> dict:
        self.measurements.append(measurement)
        return measurement

    # pgbench ------------------------------------------------------------------------------

    def pgbench(self, operation: str, workers: int, round_: int) -> dict:
        plan = self.plan
        log_dir = self.work_dir / "pgbench-logs" / f"{operation}-w{workers}-r{round_}"
        log_dir.mkdir(parents=True)
        if plan.warmup:
            argv, env = database.pgbench_command(self.url, operation, plan.connections,
                                                 plan.threads, plan.warmup, self.id_range, None)
            subprocess.run(argv, env=os.environ | env, capture_output=True, check=True)
        argv, env = database.pgbench_command(self.url, operation, plan.connections, plan.threads,
                                             plan.duration, self.id_range, log_dir / "txn")
        with CpuMeter({"postgres": [self.postgres_pid] if self.postgres_pid else []}) as meter:
            process = subprocess.Popen(argv, env=os.environ | env, cwd=log_dir,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True)
            meter.add("load generator", process.pid)
            output, _ = process.communicate(timeout=plan.duration + 120)
        if process.returncode != 0:
            raise RuntimeError(f"pgbench {operation} failed:\n{output[-3000:]}")
        result = database.parse_pgbench(output)
        result |= database.latency_percentiles(sorted(log_dir.glob("txn*")))
        result["rps"] = result.pop("tps")
        shown = self.command(f"pgbench {operation}", [
            a if not a.startswith("--log-prefix") else "--log-prefix=<dir>/txn" for a in argv])
        return self.add({
            # `workers`: the block this ceiling was measured in (pgbench has no workers).
            "kind": "pgbench", "operation": operation, "workers": workers, "round": round_,
            **result,
            "cpu": meter.result, "cpu_ms_per_request": meter.per_request_ms(
                int(result["transactions"] or 0)),
            "command": shown,
        })

    # wrk ----------------------------------------------------------------------------------

    def wrk_args(self) -> list[str]:
        # A word new to each wrk run: its Idempotency-Keys must never have been used before.
        self.wrk_runs += 1
        return [str(self.id_range[0]), str(self.id_range[1]), f"{self.run_word}r{self.wrk_runs}"]

    def wrk_log(self) -> Path:
        """A new file for the output of the wrk run about to start."""
        return self.work_dir / "wrk" / f"{self.wrk_runs}.log"

    def wrk(self, server: servers.Server, script: str, path: str = "",
            trace_sink: TraceSink | None = None) -> dict:
        plan = self.plan
        url = server.url + path
        warmup_requests = 0
        if plan.warmup:
            warmup = loadgen.wrk_command(self.wrk_path, url, script, plan.connections,
                                         plan.threads, plan.warmup, self.wrk_args())
            warmup_requests = loadgen.finish_wrk(loadgen.start_wrk(warmup, self.wrk_log()),
                                                 timeout=plan.warmup + 60)["requests"]
        argv = loadgen.wrk_command(self.wrk_path, url, script, plan.connections, plan.threads,
                                   plan.duration, self.wrk_args())
        groups = {"server": [server.pid]}
        if self.postgres_pid and script != "bare":
            groups["postgres"] = [self.postgres_pid]
        if trace_sink is not None:  # its CPU apart, not in "other"
            groups["trace sink"] = [trace_sink.pid]
        with CpuMeter(groups) as meter:
            wrk = loadgen.start_wrk(argv, self.wrk_log())
            meter.add("load generator", wrk.pid)
            result = loadgen.finish_wrk(wrk, timeout=plan.duration + 60)
        result["warmup_requests"] = warmup_requests
        result["cpu"] = meter.result
        result["cpu_ms_per_request"] = meter.per_request_ms(result["requests"])
        result["command"] = self.command(f"wrk {script}", argv, cwd=loadgen.WRK_SCRIPTS)
        return result


def run_block(bench: Bench, workers: int) -> None:
    """Everything measured at one worker count, interleaved.

    The bare app, the stack ceiling and the three API variants (metrics on, metrics off, and
    metrics on with logs and traces on) run side by side (an idle server costs nothing), so
    each round measures, operation by operation, pgbench, the stack ceiling, then the API
    variants back to back, then the bare endpoints. "Metrics on" runs between the other two,
    whose sides flip every round (logs+traces on, metrics on, metrics off; then metrics off,
    metrics on, logs+traces on): each ratio's two sides are measured minutes apart at most,
    one after the other, and drift on a shared machine hits both alike.
    """
    plan = bench.plan
    sink = TraceSink(plan.trace_sink_port(), bench.work_dir)
    with sink:
        api = {variant: servers.api_server(
                   bench.url, plan.api_port(variant), workers, SETTINGS[variant][0],
                   bench.work_dir, sink.endpoint if SETTINGS[variant][1] else None)
               for variant in VARIANTS}
        bare = servers.bare_server(plan.bare_port(), workers, bench.work_dir)
        ceiling = servers.ceiling_server(bench.url, plan.ceiling_port(), workers, bench.work_dir)
        traced: list[tuple[dict, dict]] = []  # (measurement, the sink's counts at its start)
        with bare, ceiling, api["on"], api["off"], api["telemetry"]:
            bench.command(f"bare app, {workers} worker(s)", bare.command())
            bench.command(f"stack ceiling, {workers} worker(s)", ceiling.command())
            for variant, server in api.items():
                bench.command(f"API, {workers} worker(s), {variant_label(variant)}",
                              server.command())
            bench.command("trace sink", sink.argv)
            for round_ in range(1, plan.rounds + 1):
                order = ("telemetry", "on", "off") if round_ % 2 else ("off", "on", "telemetry")
                for operation in OPERATIONS:
                    measure_pgbench(bench, operation, workers, round_)
                    if operation in CEILING_OPERATIONS:
                        measure_ceiling(bench, ceiling, operation, workers, round_)
                    for variant in order:
                        counts = sink.stats() if variant == "telemetry" else {}
                        m = measure_api(bench, api[variant], operation, workers, variant,
                                        round_, sink if variant == "telemetry" else None)
                        if variant == "telemetry":
                            traced.append((m, counts))
                for endpoint in ("def", "async"):
                    measure_bare(bench, bare, endpoint, workers, round_)
            run_locust(bench, api["on"], workers)
            run_scrapes(bench, api["on"], workers)
        # The servers are stopped: the API has exported the spans it still held (tracing's
        # shutdown), and written its last lines.
        final = sink.stop()
    record_telemetry(bench, workers, api, traced, final)


def variant_label(variant: str) -> str:
    return {"on": "metrics on", "off": "metrics off",
            "telemetry": "metrics on, logs+traces on"}[variant]


def _spans_between(before: dict, after: dict) -> dict:
    by_root = {}
    for name, counts in after["by_root"].items():
        earlier = before.get("by_root", {}).get(name, {"traces": 0, "spans": 0})
        if counts["traces"] != earlier["traces"]:
            by_root[name] = {k: counts[k] - earlier[k] for k in ("traces", "spans")}
    return {"spans": after["spans"] - before.get("spans", 0),
            "traces": after["traces"] - before.get("traces", 0), "by_root": by_root}


def record_telemetry(bench: Bench, workers: int, api: dict[str, servers.Server],
                     traced: list[tuple[dict, dict]], final: dict) -> None:
    """What logs and traces produced: the spans the sink received while each measurement of
    the API with logs and traces on ran (until the next one started: the API exports in
    batches, up to 5 s late), and the lines each API variant wrote.

    A request is one trace and one `request` line. Both can exceed wrk's count of requests
    (warm-ups included) by up to the connections per wrk run: the requests in flight when wrk
    stops are answered, traced and logged, but not counted by wrk."""
    for (m, before), (_, after) in zip(traced, [*traced[1:], (None, final)], strict=True):
        m["trace_sink"] = spans = _spans_between(before, after)
        m["spans_per_trace"] = round(spans["spans"] / spans["traces"], 2) \
            if spans["traces"] else None
    served = sum(m["requests"] + m["warmup_requests"] for m, _ in traced)
    logs = {variant: server.log_lines() for variant, server in api.items()}
    m = bench.add({"kind": "telemetry", "workers": workers, "requests": served,
                   "trace_sink": final,
                   "spans_per_trace": round(final["spans"] / final["traces"], 2)
                   if final["traces"] else None,
                   "request_lines": logs["telemetry"]["by_event"].get("request", 0),
                   "logs": logs})
    bench.log(f"w{workers} logs+traces: {final['spans']} spans in {final['traces']} traces "
              f"({m['spans_per_trace']} spans per trace), {m['request_lines']} request lines, "
              f"for {served} requests counted by wrk; log lines: " + ", ".join(
                  f"{variant_label(v)} {logs[v]['lines']} ({logs[v]['json_lines']} JSON)"
                  for v in VARIANTS))


def measure_pgbench(bench: Bench, operation: str, workers: int, round_: int) -> None:
    m = bench.pgbench(operation, workers, round_)
    bench.log(f"w{workers} r{round_} pgbench {operation:10}     {m['rps']:8.1f} tx/s   "
              f"p50 {m.get('p50_ms', 0):7.2f} ms  p99 {m.get('p99_ms', 0):7.2f} ms  "
              f"failed {m['failed']:.0f}")


def measure_api(bench: Bench, server: servers.Server, operation: str, workers: int,
                variant: str, round_: int, trace_sink: TraceSink | None = None) -> dict:
    metrics, telemetry = SETTINGS[variant]
    m = bench.add({"kind": "api", "operation": operation, "workers": workers,
                   "metrics": metrics, "telemetry": telemetry, "round": round_,
                   **bench.wrk(server, operation, trace_sink=trace_sink)})
    shown = {"on": "metrics on", "off": "metrics off", "telemetry": "logs+traces on"}[variant]
    bench.log(f"w{workers} r{round_} api {operation:10} {shown:14}  "
              f"{m['rps']:8.1f} req/s  p50 {m['p50_ms']:7.2f} ms  p99 {m['p99_ms']:7.2f} ms  "
              f"refused {m['refused_share']:.2%}  errors {m['error_share']:.2%}")
    return m


def measure_ceiling(bench: Bench, server: servers.Server, operation: str, workers: int,
                    round_: int) -> None:
    m = bench.add({"kind": "ceiling", "operation": operation, "workers": workers,
                   "round": round_, **bench.wrk(server, operation)})
    bench.log(f"w{workers} r{round_} ceiling {operation:10}  {m['rps']:8.1f} req/s  "
              f"p50 {m['p50_ms']:7.2f} ms  p99 {m['p99_ms']:7.2f} ms  "
              f"errors {m['error_share']:.2%}")


def measure_bare(bench: Bench, server: servers.Server, endpoint: str, workers: int,
                 round_: int) -> None:
    m = bench.add({"kind": "bare", "operation": endpoint, "workers": workers, "round": round_,
                   **bench.wrk(server, "bare", f"/{endpoint}")})
    bench.log(f"w{workers} r{round_} bare {endpoint:10}     {m['rps']:8.1f} req/s  "
              f"p50 {m['p50_ms']:7.2f} ms  p99 {m['p99_ms']:7.2f} ms")


def run_locust(bench: Bench, server: servers.Server, workers: int) -> None:
    plan = bench.plan
    run_dir = bench.work_dir / f"locust-w{workers}"
    argv = loadgen.locust_command(server.url, plan.connections, plan.duration, run_dir,
                                  plan.locust_port(), bench.url)
    groups = {"server": [server.pid]}
    if bench.postgres_pid:
        groups["postgres"] = [bench.postgres_pid]
    # Stopped with everything it started (Locust's master and workers) if it overruns or
    # the benchmark is interrupted.
    locust = Service("Locust mixed workload", argv, log_path=bench.work_dir / "logs" / "locust.log",
                     cwd=bench.work_dir, timeout=30)
    with CpuMeter(groups) as meter, locust:
        meter.add("load generator", locust.pid)
        locust.wait(timeout=plan.duration + 300)
    result = loadgen.read_locust(run_dir)
    m = bench.add({"kind": "locust", "operation": "mixed", "workers": workers, "metrics": True,
                   **result, "cpu": meter.result,
                   "cpu_ms_per_request": meter.per_request_ms(result["requests"] or 0),
                   "command": bench.command("Locust mixed workload", argv)})
    bench.log(f"locust w{workers} mixed: {m['rps'] or 0:8.1f} req/s  "
              f"failures {m['failure_ratio'] or 0:.2%}  books {m['invariants']}")


def run_scrapes(bench: Bench, server: servers.Server, workers: int) -> None:
    # The server's CPU time per scrape too: on a busy machine the wall time a client sees
    # includes waiting for a core, the CPU time does not.
    with CpuMeter({"server": [server.pid]}) as meter:
        cost = scrape.scrape_cost(server.url, bench.plan.scrapes)
    server_ms = meter.result["cpu_seconds"]["server"] * 1000 / (cost["scrapes"] + 1)
    m = bench.add({"kind": "scrape", "workers": workers, "accounts": bench.plan.accounts,
                   **cost, "server_cpu_ms": round(server_ms, 2), "cpu": meter.result})
    bench.log(f"scrape w{workers}: median {m['median_ms']} ms (server CPU "
              f"{m['server_cpu_ms']} ms), p95 {m['p95_ms']} ms, {m['bytes']} bytes, "
              f"{m['series']} series")


def run_series_check(bench: Bench) -> dict:
    """The same traffic against 100 and against 10,000 accounts: equal series counts?"""
    small_name = f"{database.database_name(bench.url)}_series_100"
    try:
        small_url = database.create_database(bench.url, small_name)
        bench.command("migrate", database.migrate(small_url, bench.work_dir))
        small_range = database.seed(small_url, 100)
    except Exception as exc:  # e.g. no CREATEDB right on a given server
        return {"skipped": f"could not create {small_name}: {type(exc).__name__}: {exc}"}
    found = {}
    for accounts, url, id_range in ((100, small_url, small_range),
                                    (bench.plan.accounts, bench.url, bench.id_range)):
        server = servers.api_server(url, bench.plan.series_port(), 1, True, bench.work_dir)
        with server:
            exposition, families = scrape.series_check(server.url, id_range)
        found[accounts] = {"series": scrape.count_series(exposition),
                           "bytes": len(exposition.encode()), "families": families}
    small, large = found[100], found[bench.plan.accounts]
    differing = {name: (small["families"].get(name), large["families"].get(name))
                 for name in set(small["families"]) | set(large["families"])
                 if small["families"].get(name) != large["families"].get(name)}
    result = {"by_accounts": {str(k): {"series": v["series"], "bytes": v["bytes"]}
                              for k, v in found.items()},
              "equal": small["series"] == large["series"] and not differing,
              "differing_families": differing}
    bench.log(f"series: {small['series']} with 100 accounts, {large['series']} with "
              f"{bench.plan.accounts}: {'equal' if result['equal'] else 'DIFFERENT'}")
    with contextlib.suppress(Exception):
        database.drop_database(bench.url, small_name)
    return result


def postgres_pid(url: str) -> int | None:
    """The postmaster's PID when the server runs on this machine (parent of our backend)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            backend = connection.scalar(text("SELECT pg_backend_pid()"))
            return psutil.Process(backend).ppid()
    except (psutil.Error, Exception):
        return None
    finally:
        engine.dispose()


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(prog="python -m bankops.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds per measurement, one on/off round: a smoke test")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 8; "
                        "quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each "
                        "measurement (default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=32,
                        help="wrk connections, pgbench clients, Locust users (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk and pgbench threads")
    parser.add_argument("--rounds", type=int, help="rounds per worker count (default 3; "
                        "quick 1)")
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2")
    parser.add_argument("--scrapes", type=int, help="timed /metrics scrapes (default 50)")
    parser.add_argument("--port-base", type=int, default=8400,
                        help="ports used: base+10 (API), +20 (bare), +30, +50 (Locust UI)")
    parser.add_argument("--database-url", help="an empty, migrated database to fill and "
                        "measure (default: an embedded PostgreSQL in a temporary folder)")
    parser.add_argument("--output", type=Path, help="results file stem (default "
                        "bankops/bench/results/latest, quick: bankops/bench/results/quick)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    quick = args.quick
    plan = Plan(
        duration=args.duration or (3 if quick else 8),
        warmup=args.warmup if args.warmup is not None else (1 if quick else 2),
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds or (1 if quick else 3),
        workers=tuple(int(w) for w in args.workers.split(",")),
        accounts=10_000,
        scrapes=args.scrapes or (20 if quick else 50),
        port_base=args.port_base,
    )
    args.output = args.output or BENCH / "results" / ("quick" if quick else "latest")
    return args, plan


def main(argv: list[str] | None = None) -> int:
    args, plan = parse_args(argv)
    wrk = loadgen.ensure_wrk()
    work_dir = Path(tempfile.mkdtemp(prefix="bank-bench-"))
    bench = Bench(plan, wrk, work_dir)
    bench.command("bench", ["python", "-m", "bankops.bench",
                            *(sys.argv[1:] if argv is None else argv)])
    started_at = datetime.now(UTC)
    facts = {"machine": machine.describe(),
             "tools": {"wrk": loadgen.wrk_version(wrk),
                       "pgbench": subprocess.run([str(database.pg_bin("pgbench")), "--version"],
                                                 capture_output=True, text=True).stdout.strip()}}
    bench.log(f"work folder {work_dir}; load average {facts['machine']['load_average_at_start']}")
    embedded_dir = None
    try:
        if args.database_url:
            bench.url = args.database_url
        else:
            embedded_dir = work_dir / "postgres"
            bench.url = database.start_embedded(embedded_dir)
            bench.command("migrate", database.migrate(bench.url, work_dir))
        bench.postgres_pid = postgres_pid(bench.url)
        bench.id_range = database.seed(bench.url, plan.accounts)
        facts["postgres"] = database.server_facts(bench.url)
        facts["postgres"]["embedded"] = embedded_dir is not None
        bench.log(f"seeded {plan.accounts} accounts (ids {bench.id_range[0]}.."
                  f"{bench.id_range[1]}) on {facts['postgres']['version'].split(',')[0]}")

        for workers in plan.workers:
            run_block(bench, workers)
        series = run_series_check(bench)
        books = check_database(bench.url).verdict()
        bench.log(f"books after the run: {books['verdict']} "
                  f"({books.get('ledger_entries')} ledger entries)")
    finally:
        if embedded_dir is not None:
            database.stop_embedded(embedded_dir)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)

    facts["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results = {
        "title": "Bank API benchmark",
        "mode": "quick" if args.quick else "full",
        "started_at": started_at.isoformat(timespec="seconds"),
        "ended_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": asdict(plan),
        **facts,
        "commands": bench.commands,
        "measurements": bench.measurements,
        "series_check": series,
        "books": books,
    }
    results["summary"], results["ratios"] = summary.summarize(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(summary.markdown(results))
    bench.log(f"results in {args.output.with_suffix('.md')} and .json")
    print(summary.verdict_lines(results))
    return 0

