"""Locust's own statistics as Prometheus metrics, served by the master at /export/prometheus.

The load Locust injects can then sit beside the API's own view on one dashboard. Names and
labels are the contract in docs/metrics.md (section "Locust"). In a distributed run the
master's statistics already combine every worker's, so only the master (or a single local
runner) serves them; workers serve nothing.

Values are read from the runner at scrape time: nothing is copied or kept between scrapes.
The text format is written here rather than with prometheus_client, which the official Locust
container image does not ship: this file then runs unchanged natively and in compose.
"""

import time
from collections.abc import Iterable

from flask import Response
from locust import events
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW

PATH = "/export/prometheus"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = ("0.5", "0.95", "0.99")

Sample = tuple[dict[str, str], float]


def escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """One metric in the text exposition format: HELP, TYPE, then a line per sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{key}="{escape(val)}"' for key, val in labels.items())
        lines.append(f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}")
    return lines


def exposition(runner) -> str:
    workers = runner.worker_count if isinstance(runner, MasterRunner) else 0
    requests: list[Sample] = []
    failures: list[Sample] = []
    response_times: list[Sample] = []
    window_start = int(time.time()) - CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW
    # Per request name only: the "Aggregated" row would double every sum in a dashboard.
    for entry in runner.stats.entries.values():
        labels = {"method": entry.method or "", "name": entry.name}
        requests.append((labels, entry.num_requests))
        failures.append((labels, entry.num_failures))
        # Without requests in the window Locust reports 0 ms; no sample is the honest answer.
        recent = any(second >= window_start and count
                     for second, count in entry.num_reqs_per_sec.items())
        if not (entry.use_response_times_cache and recent):
            continue
        for quantile in QUANTILES:
            milliseconds = entry.get_current_response_time_percentile(float(quantile))
            if milliseconds is not None:
                response_times.append(({**labels, "quantile": quantile}, milliseconds / 1000))
    lines = [
        *family("locust_users", "gauge", "Simulated users running", [({}, runner.user_count)]),
        *family("locust_workers", "gauge", "Connected workers (0 when not distributed)",
                [({}, workers)]),
        *family("locust_requests_total", "counter", "Requests sent, over all workers", requests),
        *family("locust_failures_total", "counter", "Requests that failed", failures),
        *family("locust_response_time_seconds", "gauge",
                "Response-time percentiles over the last ~10 seconds", response_times),
    ]
    return "\n".join(lines) + "\n"


def add_route(environment) -> None:
    @environment.web_ui.app.route(PATH)
    def export_prometheus() -> Response:
        return Response(exposition(environment.runner), content_type=CONTENT_TYPE)


@events.init.add_listener
def on_init(environment, **_kwargs) -> None:
    # Workers have no web UI and no combined view; --headless runs have no web UI at all
    # (run python -m bank_loadtest, which keeps it up with --autostart --autoquit).
    if isinstance(environment.runner, WorkerRunner) or environment.web_ui is None:
        return
    add_route(environment)
