"""Locust entry point: bank customers, an optional load shape, the Prometheus export, the
request ids of the slowest and failed requests (bank_loadtest/request_ids.py), and the
classroom scenarios to pick from (--scenario, bank_loadtest/scenario_picker.py).

    cd loadtest && locust -f locustfile.py --host http://127.0.0.1:8000    # web UI on :8089
    LOAD_SHAPE=spike LOAD_USERS=50 LOAD_DURATION=2m locust -f loadtest/locustfile.py
    SCENARIO_SERVICE_URL=http://127.0.0.1:8090 locust -f loadtest/locustfile.py  # + scenarios
    python -m bank_loadtest --help              # one unattended run, the money checked after

Locust runs every LoadTestShape class it finds in this module, so only the one LOAD_SHAPE
names is bound here (see bank_loadtest/shapes.py for the shapes and their settings).
"""

# Locust loads this file by its path and puts this folder on sys.path, so `bank_loadtest`
# imports from beside it: in the project's environment (where it is also installed) and in the
# stock Locust image of the compose stack, where only this folder is mounted. The modules
# imported here use nothing but Locust and the standard library, and the package's
# __init__ imports nothing, so the runner's own dependencies are never needed there.
from bank_loadtest import (
    prometheus_export,  # noqa: F401  (/export/prometheus on the master)
    request_ids,  # noqa: F401  (the slowest and failed requests' ids)
    scenario_picker,  # noqa: F401  (--scenario, and the scenario's run during a test)
)
from bank_loadtest.customer import BankCustomer  # noqa: F401
from bank_loadtest.shapes import selected_shape

SelectedShape = selected_shape()
