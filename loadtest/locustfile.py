"""Locust entry point: bank customers, an optional load shape, and the Prometheus export.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000            # web UI on :8089
    LOAD_SHAPE=spike LOAD_USERS=50 LOAD_DURATION=2m locust -f loadtest/locustfile.py ...
    python loadtest/run.py --help                       # headless-style run with checks after

Locust runs every LoadTestShape class it finds in this module, so only the one LOAD_SHAPE
names is bound here (see load_shapes.py for the shapes and their settings).
"""

import prometheus_export  # noqa: F401  (registers /export/prometheus on the master's web UI)
from bank_customer import BankCustomer  # noqa: F401
from load_shapes import selected_shape

SelectedShape = selected_shape()
