"""/metrics: what Prometheus scrapes, in its text format or OpenMetrics (with exemplars).

In one process it exposes the process-wide registry (the bank's own metrics, the database's,
the process's) and the app's HTTP metrics (api/http_metrics.py, a registry per app, so several
apps in one process, as in the tests, do not collide). With several workers
(WEB_CONCURRENCY > 1) every value lives in prometheus_client's multiprocess files
(observability/multiprocess.py), merged here at each scrape, whichever worker answers it.
"""

import sys

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Gauge,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder

from bank_api import __version__
from bank_api.api.http_metrics import HttpMetrics
from bank_api.api.paths import METRICS
from bank_api.observability import multiprocess as mp
from bank_api.observability.process_metrics import WorkerProcessesCollector

BUILD_INFO = Gauge("bank_build_info", "Version of the running API (value is always 1)",
                   ["version", "python_version"], multiprocess_mode="max")
BUILD_INFO.labels(__version__, sys.version.split()[0]).set(1)


class _Registries:
    """Exposes several registries as one (the app's HTTP metrics and the module-level ones)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self):
        for registry in self.registries:
            yield from registry.collect()


def instrument(app: FastAPI) -> HttpMetrics:
    """The app's HTTP metrics, for the request layer to observe, and its /metrics endpoint."""
    # No `_created` series: nothing reads them (dashboards, alerts and reports use rates,
    # which do not need them), and in a single process they are one more line per counter,
    # summary and histogram label set at every scrape (multiprocess mode never has them).
    # The switch is process-wide and read at each scrape; only /metrics below exposes them.
    disable_created_metrics()
    # Each app gets its own registry for HTTP metrics, so several apps in one process (tests)
    # do not collide; in multiprocess mode all values go to the shared files anyway.
    http_registry = REGISTRY if mp.enabled() else CollectorRegistry()
    recorder = HttpMetrics(http_registry)

    @app.get(METRICS, include_in_schema=False)
    def metrics(request: Request) -> Response:
        if mp.enabled():
            workers = mp.mark_dead_workers()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(WorkerProcessesCollector(workers))
            source = registry
        else:
            source = _Registries(REGISTRY, http_registry)
        # OpenMetrics when the scraper accepts it (Prometheus does): only it carries exemplars.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(source), headers={"Content-Type": content_type})

    return recorder
