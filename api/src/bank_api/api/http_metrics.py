"""HTTP RED metrics, as prometheus-fastapi-instrumentator defines them.

The request layer (api/request_layer.py) observes them from the request's record
(observability/request_record.py), once per request: one layer for every cross-cutting concern
instead of the instrumentator's own middleware, which builds a Request, a Response and an Info
per request. The route is named as the library names it (api/route_index.py). /metrics, which
exposes them, is api/metrics_endpoint.py.

The latency histograms carry the request's trace id as an exemplar when its trace is sampled,
so a latency graph leads to the trace of a slow request. Exemplars exist only in the
OpenMetrics format (/metrics answers in it when the scraper asks, as Prometheus does) and only
in a single process: prometheus_client's multiprocess mode (WEB_CONCURRENCY > 1) drops them.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from bank_api.observability.request_record import RequestRecord

# Fine enough for p50/p95/p99 from a few milliseconds to seconds (the library's default,
# 0.1/0.5/1 s, puts every fast request in one bucket).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1,
                   0.15, 0.25, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 5, 10)
# One histogram over all routes, for the latency heatmap.
HEATMAP_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05,
                   0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10)


class HttpMetrics:
    """The instrumentator's default metrics (prometheus_fastapi_instrumentator.metrics.default:
    same names, labels and buckets, docs/metrics.md), plus http_requests_inprogress{method,
    handler}, observed by the request layer (api/request_layer.py) once per request.

    `handler` is the route template, or `none` for a path no route matches (the library's
    should_group_untemplated); /metrics itself is not measured. Both latency histograms carry
    the request's trace id as an exemplar when its trace is sampled (`exemplar`, from
    observability/tracing.py). Each label set's children
    are looked up once and kept: label sets are bounded (routes × methods × statuses)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.in_progress = Gauge("http_requests_inprogress", "HTTP requests being served",
                                 ["method", "handler"], multiprocess_mode="livesum",
                                 registry=registry)
        self.total = Counter("http_requests_total", "Total number of requests by method, "
                             "status and handler.", ["method", "status", "handler"],
                             registry=registry)
        self.request_size = Summary("http_request_size_bytes", "Content length of incoming "
                                    "requests by handler.", ["handler"], registry=registry)
        self.response_size = Summary("http_response_size_bytes", "Content length of outgoing "
                                     "responses by handler.", ["handler"], registry=registry)
        self.latency_all = Histogram("http_request_duration_highr_seconds", "Latency with many "
                                     "buckets but no API specific labels.",
                                     buckets=HEATMAP_BUCKETS, registry=registry)
        self.latency = Histogram("http_request_duration_seconds", "Latency with only few "
                                 "buckets by handler.", ["method", "handler"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self._by_route: dict[tuple[str, str], tuple] = {}
        self._totals: dict[tuple[str, str, str], Counter] = {}

    def started(self, method: str, handler: str) -> None:
        self._route(method, handler)[0].inc()

    def finished(self, record: RequestRecord, seconds: float,
                 exemplar: dict[str, str] | None) -> None:
        method, handler = record.method, record.route or "none"
        in_progress, request_size, response_size, latency = self._route(method, handler)
        in_progress.dec()
        key = (method, str(record.status), handler)
        total = self._totals.get(key) or self._totals.setdefault(key, self.total.labels(*key))
        total.inc()
        request_size.observe(record.request_bytes)
        response_size.observe(record.response_bytes)
        self.latency_all.observe(seconds, exemplar)
        latency.observe(seconds, exemplar)

    def _route(self, method: str, handler: str) -> tuple:
        children = self._by_route.get((method, handler))
        if children is None:
            children = self._by_route[(method, handler)] = (
                self.in_progress.labels(method, handler), self.request_size.labels(handler),
                self.response_size.labels(handler), self.latency.labels(method, handler))
        return children
