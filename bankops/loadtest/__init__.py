"""Load runs: the Locust files and the runner around them.

    python -m bankops.loadtest --host http://127.0.0.1:8000 ...   one run (runner.py)
    locust -f bankops/loadtest/locustfile.py ...                   Locust directly

locustfile.py, customer.py, shapes.py and prometheus_export.py are also the directory the
compose stack mounts into the stock Locust image, where this package is not installed: they
import only Locust and the standard library, and locustfile.py its siblings by bare name.
Nothing is imported here, so importing the runner never imports Locust (gevent's patching).
"""
