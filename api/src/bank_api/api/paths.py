"""The paths each cross-cutting layer leaves alone, named once so the layers agree.

Each is a tuple of prefixes of route templates; `policy(route)` answers them all at once for a
route, once per route.
"""

from functools import cache
from typing import NamedTuple

HEALTH = "/health"
METRICS = "/metrics"
ADMIN = "/admin"
DOC_PAGES = ("/docs", "/redoc")  # HTML pages that load Swagger UI's or ReDoc's scripts
DOCS_ASSETS = "/docs/assets"  # those scripts, served by the API itself (main.py)
DOCS = (*DOC_PAGES, "/openapi.json")

# Never shed under overload: the orchestrator's health checks and Prometheus's scrapes must
# still get in when the API is full, or it would be restarted and go dark on the dashboards.
NOT_SHED = (HEALTH, METRICS)
# Never faulted by the fault switch: the switch itself, health checks (or the orchestrator
# would restart the API), metrics (or the dashboards would lose sight of the fault), the docs.
NOT_FAULTED = (ADMIN, HEALTH, METRICS, *DOCS)
# Not in the HTTP metrics: Prometheus's own scrapes are not traffic.
NOT_MEASURED = (METRICS,)
# No spans: health checks and scrapes every few seconds would bury the requests that matter.
NOT_TRACED = (HEALTH, METRICS)


class Policy(NamedTuple):
    """What the request layer does for the requests of one route."""

    shed: bool  # may be refused under overload
    faulted: bool  # the fault switch applies
    measured: bool  # in the HTTP metrics
    traced: bool  # a server span and a log line


@cache
def policy(route: str | None) -> Policy:
    """The policy of a route template (None: no route matched; everything applies, but the
    fault switch, which only targets routes, finds nothing to do)."""
    def leaves_alone(prefixes: tuple[str, ...]) -> bool:
        return route is not None and route.startswith(prefixes)

    return Policy(shed=not leaves_alone(NOT_SHED), faulted=not leaves_alone(NOT_FAULTED),
                  measured=not leaves_alone(NOT_MEASURED), traced=not leaves_alone(NOT_TRACED))
