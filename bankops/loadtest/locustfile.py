"""Locust entry point: bank customers, an optional load shape, the Prometheus export, and
the request ids of the slowest and failed requests (request_ids.py).

    locust -f bankops/loadtest/locustfile.py --host http://127.0.0.1:8000    # web UI on :8089
    LOAD_SHAPE=spike LOAD_USERS=50 LOAD_DURATION=2m locust -f bankops/loadtest/locustfile.py
    python -m bankops.loadtest --help              # headless-style run with checks after

Locust runs every LoadTestShape class it finds in this module, so only the one LOAD_SHAPE
names is bound here (see shapes.py for the shapes and their settings).
"""

# Bare sibling imports, not `bankops.loadtest.…`: Locust loads this file by its path and puts
# its folder on sys.path, and the compose stack runs it in the stock Locust image, where only
# this folder is mounted (bankops is not installed there). The siblings import nothing but
# Locust and the standard library, so they work both ways. (I001: request_ids is first-party
# like its siblings; pyproject.toml's isort known-first-party list should name it.)
import prometheus_export  # noqa: F401  (registers /export/prometheus on the master's web UI)
import request_ids  # noqa: F401  (keeps the slowest and failed requests' X-Request-ID)
from customer import BankCustomer  # noqa: F401
from shapes import selected_shape

SelectedShape = selected_shape()
