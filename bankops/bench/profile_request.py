"""Where one request's CPU goes: py-spy samples the API while wrk drives one operation.

    python3 -m venv /tmp/py-spy && /tmp/py-spy/bin/pip install py-spy   # not a project dependency
    .venv/bin/python -m bankops.bench.profile_request --py-spy /tmp/py-spy/bin/py-spy  # credit
    .venv/bin/python -m bankops.bench.profile_request --py-spy … --operation read --metrics off
    .venv/bin/python -m bankops.bench.profile_request --py-spy … --operation scrape --workers 2
    .venv/bin/python -m bankops.bench.profile_request --py-spy … --telemetry on  # logs+traces

It starts an embedded PostgreSQL with 10,000 accounts and the API (one worker unless told; logs
and traces off unless told, as the benchmark runs it: --telemetry on adds JSON logs and traces,
exported to the benchmark's trace sink, trace_sink.py), puts the operation under wrk (same
scripts and concurrency as the benchmark), and meanwhile records the server with
`py-spy record --gil`: only the thread holding the GIL is sampled, so the samples are where
the process's Python time goes, and their split is the split of that time. (On a busy machine
a thread can hold the GIL while the OS runs something else, so the GIL-held time per request
can exceed the process's CPU time; the shares still hold.) The result is printed, and kept
(raw stacks, summary JSON) in --out.

The split names each sample after the innermost frame of a known kind (the database driver,
SQLAlchemy's ORM, FastAPI's validation, the metrics, …), so nested calls are not counted
twice; the "inclusive" lines add up whole call trees of a few functions worth knowing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bankops.bench import database, loadgen, servers
from bankops.bench.cpu import CpuMeter
from bankops.bench.trace_sink import TraceSink

# Innermost matching frame wins; checked in this order for each frame, leaf first.
# py-spy names a file from its package's top folder; OpenTelemetry's are namespace packages, so
# its files show from below `opentelemetry/sdk/`, `opentelemetry/instrumentation/` and so on
# (`trace/__init__.py`, `dbapi/__init__.py`): hence the needles anchored at "(".
OPENTELEMETRY = ("(trace/", "(context/", "(_shared_internal/", "(common/_internal/",
                 "(http/trace_exporter/", "(dbapi/", "CursorTracer.", "(attributes/",
                 "(baggage/", "(propagate/", "(util/", "(resources/", "(_semconv.py",
                 "(_decorator.py", "(protobuf/", "(requests/", "(urllib3/", "opentelemetry")
KINDS = (
    # Before the driver: the psycopg2 instrumentation's frames name psycopg2 too.
    ("tracing (OpenTelemetry: spans, SQL instrumentation, export; the server span)",
     (*OPENTELEMETRY, "fastapi/telemetry", "bank_api/observability/tracing")),
    ("database driver (psycopg2, round trips)", ("psycopg2",)),
    ("logging (log calls, request context, JSON formatting, writing lines)",
     ("logging/", "uvicorn/logging", "pythonjsonlogger", "bank_api/observability/logs",
      "bank_api/observability/events", "bank_api/observability/request_record")),
    ("metrics (prometheus_client, instrumentator, bank_api.observability)",
     ("prometheus_client", "prometheus_fastapi_instrumentator", "bank_api/observability",
      "bank_api/api/http_metrics")),
    ("SQLAlchemy ORM (session, unit of work, loading)", ("sqlalchemy/orm",)),
    ("SQLAlchemy Core (compile, execute, pool, results)", ("sqlalchemy/",)),
    ("pydantic (validation, serialization)", ("pydantic",)),
    ("FastAPI (dependencies, request/response handling)", ("fastapi/",)),
    ("Starlette (routing, middleware, threadpool hop)", ("starlette/", "anyio/")),
    ("uvicorn + HTTP parsing", ("uvicorn/", "httptools")),
    ("the API's own code (bank_api)", ("bank_api/",)),
    ("asyncio / event loop", ("asyncio/", "uvloop", "concurrent/", "threading.py", "queue.py")),
)
OTHER = "other (stdlib, json, …)"

# Call trees worth knowing on their own: (function or Class.method, a piece of its file).
INCLUSIVE = {
    "the route handler (in the threadpool)": ("_run_sync_endpoint", "fastapi/"),
    "the unit of work (in a database thread)": ("Database._on_connection", "bank_api/api/deps"),
    "the unit of work (in a session, in a database thread)": ("Database._in_session",
                                                               "bank_api/api/deps"),
    "ledger: lock the row (SELECT … FOR UPDATE)": ("lock_accounts", "bank_api/services/ledger"),
    "commit": ("Connection.commit", "sqlalchemy/engine"),
    "SQLAlchemy Connection.execute (every statement)": ("Connection.execute", "sqlalchemy/"),
    "cursor.execute in the driver": ("DefaultDialect.do_execute", "sqlalchemy/engine"),
    "request parsing + validation (solve_dependencies)": ("solve_dependencies", "fastapi/"),
    "session dependency enter/exit (pool checkout, close)": ("_solve_generator", "fastapi/"),
    "response serialization (serialize_response)": ("serialize_response", "fastapi/"),
    "sending the response (through every middleware)": ("Response.__call__", "starlette/"),
    "threadpool hop (run_in_threadpool, anyio)": ("run_sync", "anyio/to_thread"),
    "database thread hop, the event loop's side (run_in_executor)": ("run_in_executor",
                                                                     "asyncio/"),
    "route name look-ups (the route index)": ("name", "bank_api/api/route_index"),
    "metrics: HTTP metrics, once per request": ("HttpMetrics.finished",
                                                "bank_api/api/http_metrics"),
    "log lines (Logger.info: the request's line and any other, all of it)": ("Logger.info",
                                                                             "logging/"),
    "log lines: JSON formatting (pythonjsonlogger)": ("format", "pythonjsonlogger"),
    "log lines: the writer thread (batches: formatting + writing)": (
        "BackgroundStreamHandler._write_pending", "bank_api/observability/logs"),
    "log lines: request and span ids (ContextFilter)": ("ContextFilter.filter",
                                                        "bank_api/observability/logs"),
    "tracing: SQL spans (the cursor's, the statement's own call included)": (
        "sql_span", "bank_api/observability/tracing"),
    "tracing: starting spans (Tracer.start_span: sampler, ids, attributes)": (
        "Tracer.start_span", "(trace/__init__"),
    "tracing: ending spans (Span.end: into the batch queue)": ("Span.end", "(trace/__init__"),
    "tracing: export (the batch thread: protobuf encoding, HTTP POST)": (
        "BatchProcessor.worker", "(_shared_internal/"),
    "scrape: generate_latest (text format)": ("generate_latest", "prometheus_client"),
    "scrape: reading the workers' files (MultiProcessCollector)": ("MultiProcessCollector.collect",
                                                                  "prometheus_client"),
    "scrape: dropping dead workers (mark_dead_workers)": ("mark_dead_workers",
                                                          "bank_api/observability"),
}


def _is(frame: str, function: str, path: str) -> bool:
    name = frame.split(" (", 1)[0]
    return path in frame and (name == function or name.endswith("." + function))


def kind_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # leaf first
        for kind, needles in KINDS:
            if any(needle in frame for needle in needles):
                return kind
    return OTHER


def analyze(raw: str) -> dict:
    """py-spy's raw output: one line per distinct stack, 'frame;frame;… count', root first."""
    kinds: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        stack = stack_text.split(";")
        total += count
        kinds[kind_of(stack)] += count
        # The event loop runs in the main thread; `def` handlers run in anyio's worker threads.
        # (The event loop runs in the main thread, which has no Thread._bootstrap frame.)
        in_pool = any(frame.startswith("Thread._bootstrap (") for frame in stack)
        # With tracing on, OpenTelemetry's batch thread exports the spans.
        exporting = any(frame.startswith("BatchProcessor.worker (") for frame in stack)
        thread = "span export thread" if exporting else "threadpool" if in_pool else "event loop"
        threads[thread] += count
        leaves[stack[-1]] += count
        for name, (function, path) in INCLUSIVE.items():
            if any(_is(frame, function, path) for frame in stack):
                inclusive[name] += count
    share = {k: round(v / total, 4) for k, v in kinds.most_common()} if total else {}
    return {
        "samples": total,
        "by_kind": share,
        "by_thread": {k: round(v / total, 4) for k, v in threads.most_common()},
        "inclusive": {k: round(v / total, 4) for k, v in inclusive.most_common()},
        "top_leaves": [(frame, round(n / total, 4)) for frame, n in leaves.most_common(15)],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bankops.bench.profile_request",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--operation", default="credit",
                        choices=("read", "credit", "credit_key", "transfer", "bare", "scrape"),
                        help="an API operation; bare: the bare app's `def` endpoint; scrape: "
                        "GET /metrics, one connection, as Prometheus does")
    parser.add_argument("--server", choices=("api", "ceiling"), default="api",
                        help="ceiling: the stack ceiling (ceiling_app.py) instead of the API, "
                        "for read, credit and transfer")
    parser.add_argument("--metrics", choices=("on", "off"), default="on")
    parser.add_argument("--telemetry", choices=("on", "off"), default="off",
                        help="JSON logs and traces (to a trace sink on --port + 1), as the "
                        "benchmark's logs+traces variant")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--port", type=int, default=8460)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bank-profile")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    name = (f"{args.server}-{args.operation}-metrics-{args.metrics}"
            f"-telemetry-{args.telemetry}-w{args.workers}")
    raw_path = args.out / f"{name}.txt"
    result, meter = record(args, raw_path)

    profile = analyze(raw_path.read_text())
    # Requests answered while py-spy sampled, pro rata from wrk's whole run.
    requests = result["rps"] * meter.result["wall_seconds"]
    server_cpu_ms = meter.result["cpu_seconds"]["server"] * 1000 / requests
    gil_ms = profile["samples"] / args.rate * 1000 / requests
    summary = {"operation": args.operation, "metrics": args.metrics,
               "telemetry": args.telemetry, "workers": args.workers,
               "wrk": result,
               "server_cpu_ms_per_request": round(server_cpu_ms, 3),
               "gil_held_ms_per_request": round(gil_ms, 3), **profile}
    (args.out / f"{name}.json").write_text(
        json.dumps(summary, indent=2) + "\n")

    print(f"{args.operation}, metrics {args.metrics}, logs+traces {args.telemetry}, "
          f"{args.workers} worker(s): "
          f"{result['rps']} req/s, p50 "
          f"{result['p50_ms']} ms; server CPU {server_cpu_ms:.2f} ms/request, of which "
          f"{gil_ms:.2f} ms hold the GIL ({profile['samples']} samples)")
    print_split(profile, gil_ms)
    print(f"\nraw stacks: {raw_path}")
    return 0


def record(args: argparse.Namespace, raw_path: Path) -> tuple[dict, CpuMeter]:
    """Start PostgreSQL (seeded), the trace sink if asked and the server; sample the server
    into raw_path while wrk drives the operation; stop everything, even on failure.
    Returns wrk's result and the server's CPU meter."""
    work_dir = Path(tempfile.mkdtemp(prefix="bank-profile-"))
    wrk = loadgen.ensure_wrk()
    pg_dir = work_dir / "postgres"
    sink = TraceSink(args.port + 1, work_dir) if args.telemetry == "on" else None
    try:
        if sink is not None:
            sink.start()
        url = database.start_embedded(pg_dir)
        database.migrate(url, work_dir)
        id_range = database.seed(url, 10_000)
        with server_to_profile(args, url, work_dir, sink) as server:
            if args.operation == "scrape":  # something to expose: every route and outcome
                fill_metrics(args, wrk, server.url, id_range, work_dir)
            return sample_under_load(args, wrk, server, id_range, work_dir, raw_path)
    finally:
        if sink is not None:
            sink.service.stop()
        database.stop_embedded(pg_dir)
        shutil.rmtree(work_dir, ignore_errors=True)


def server_to_profile(args: argparse.Namespace, url: str, work_dir: Path,
                      sink: TraceSink | None) -> servers.Server:
    """The bare app for --operation bare, else the stack ceiling or the API (--server)."""
    if args.operation == "bare":
        return servers.bare_server(args.port, args.workers, work_dir)
    if args.server == "ceiling":
        return servers.ceiling_server(url, args.port, args.workers, work_dir)
    return servers.api_server(url, args.port, args.workers, args.metrics == "on",
                              work_dir, sink.endpoint if sink else None)


def wrk_target(args: argparse.Namespace) -> tuple[str, str, int]:
    """wrk's script, the path it requests ("": the script's own) and its connections."""
    if args.operation == "scrape":  # GET /metrics on one connection, as Prometheus scrapes
        return "bare", "/metrics", 1
    if args.operation == "bare":  # the bare app's `def` endpoint
        return "bare", "/def", args.connections
    return args.operation, "", args.connections


def fill_metrics(args: argparse.Namespace, wrk: str, url: str, id_range: tuple[int, int],
                 work_dir: Path) -> None:
    """A short run of every API operation, so that a scrape has every route and outcome."""
    for operation in ("read", "credit", "credit_key", "transfer"):
        loadgen.finish_wrk(loadgen.start_wrk(loadgen.wrk_command(
            wrk, url, operation, args.connections, 2, 2,
            [str(id_range[0]), str(id_range[1]), f"fill-{operation}"]),
            work_dir / f"wrk-fill-{operation}.log"), timeout=60)


def sample_under_load(args: argparse.Namespace, wrk: str, server: servers.Server,
                      id_range: tuple[int, int], work_dir: Path,
                      raw_path: Path) -> tuple[dict, CpuMeter]:
    """Warm up, then run py-spy on the server (and measure its CPU) while wrk drives the
    operation a little longer than py-spy samples. Returns wrk's result and the meter."""
    script, path, connections = wrk_target(args)
    wrk_args = [str(id_range[0]), str(id_range[1]), "profile-warmup"]
    loadgen.finish_wrk(loadgen.start_wrk(loadgen.wrk_command(
        wrk, server.url + path, script, connections, 1, 3, wrk_args),
        work_dir / "wrk-warmup.log"), timeout=60)
    wrk_args[2] = "profile"
    load = loadgen.start_wrk(loadgen.wrk_command(
        wrk, server.url + path, script, connections, min(2, connections),
        args.seconds + 2, wrk_args), work_dir / "wrk-profile.log")
    with CpuMeter({"server": [server.pid]}) as meter:
        subprocess.run([args.py_spy, "record", "--pid", str(server.pid), "--gil",
                        "--subprocesses", "--rate", str(args.rate),
                        "--duration", str(args.seconds), "--format", "raw",
                        "--output", str(raw_path)],
                       check=True, capture_output=True)
    result = loadgen.finish_wrk(load, timeout=args.seconds + 60)
    return result, meter


def print_split(profile: dict, gil_ms: float) -> None:
    """Print the GIL-held time per request by kind, by thread and by call tree, and the top
    leaf frames."""
    print("\nGIL-held time by kind (innermost known frame), ms per request:")
    for kind, share in profile["by_kind"].items():
        print(f"  {share:6.1%}  {share * gil_ms:6.3f} ms  {kind}")
    print("\nby thread:")
    for thread, share in profile["by_thread"].items():
        print(f"  {share:6.1%}  {share * gil_ms:6.3f} ms  {thread}")
    print("\ninclusive (whole call trees; they overlap):")
    for name, share in profile["inclusive"].items():
        print(f"  {share:6.1%}  {share * gil_ms:6.3f} ms  {name}")
    print("\ntop leaf frames:")
    for frame, share in profile["top_leaves"]:
        print(f"  {share:6.1%}  {frame[:110]}")


if __name__ == "__main__":
    sys.exit(main())
