"""Load runs: the Locust user, shapes and exports that loadtest/locustfile.py loads, and the
runner around them.

    python -m bank_loadtest --host http://127.0.0.1:8000 ...   one run (runner.py)
    cd loadtest && locust -f locustfile.py ...                  Locust directly

customer.py, shapes.py, prometheus_export.py and request_ids.py are also what the compose
stack's stock Locust image loads from the mounted loadtest/ folder, where this project is not
installed: they import only Locust and the standard library. Nothing is imported here, so
importing the runner never imports Locust (gevent's patching), and the Locust image never
needs the runner's dependencies.
"""
