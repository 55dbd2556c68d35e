# Entry points. `make run` serves the API on an embedded PostgreSQL; `make stack` adds
# Prometheus, Alertmanager and postgres-exporter around it; `make check` is the fast lane
# while editing (lint, and every test not marked slow); `make test` installs everything the
# tests need (Python packages from uv.lock, Prometheus tools, the npm packages that type-check
# the dashboards) and runs every test; `make bench` runs the benchmark.

UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
# The API alone, installed exactly as the container image installs it (api/install.sh); the
# native stack run and its tests start the API from here, through api/entrypoint.sh.
API_VENV := .data/api-venv
export UV_PYTHON_DOWNLOADS := never

.PHONY: run stack check test lint bench setup venv system-tools report-sample clean

run: $(VENV)/.synced
	$(VENV)/bin/bank-api

# The stack without Docker: the same config files as compose, plain processes on 127.0.0.1.
stack: setup
	$(VENV)/bin/python -m bankops.stack up

# While editing: lint, then the tests not marked slow (no live stack, Locust, benchmark or
# npm); under a minute.
check: $(VENV)/.synced system-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -m "not slow" -q

# Before pushing (and in CI, .ci/run): lint, then every test; about 35 minutes (the live
# stacks, load runs and classroom scenarios take most of it).
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .

setup: $(VENV)/.synced $(API_VENV)/.synced system-tools

# The project's Python environment alone (no root needed): the `bank` command, the load runner
# and the report, e.g. beside a compose stack.
venv: $(VENV)/.synced

# uv itself, pinned, in a small venv of its own.
$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml api/pyproject.toml
	$(UV) sync --locked --python python3.11
	touch $@

# --reinstall-package: uv caches a local package's build by its pyproject.toml, so an edit
# under api/src alone would otherwise leave the old code installed.
$(API_VENV)/.synced: $(UV) uv.lock api/pyproject.toml api/install.sh $(shell find api/src -type f)
	UV=$(UV) UV_PROJECT_ENVIRONMENT=$(API_VENV) api/install.sh --python python3.11 \
		--reinstall-package bank-api
	touch $@

# promtool, amtool, prometheus, alertmanager, postgres-exporter (Debian), Node.js for tsc,
# Chromium for the offline /docs test.
system-tools:
	scripts/install-observability-tools.sh
	scripts/install-node.sh
	scripts/install-browser.sh

# Regenerate report/sample/ from a real run of the native stack (about 3.5 minutes).
report-sample: setup
	$(VENV)/bin/python -m bank_report.sample

# The benchmark (about 20 minutes; bankops/bench/README.md): writes
# bankops/bench/results/latest.md and .json. wrk is installed from apt when missing.
bench: $(VENV)/.synced
	$(VENV)/bin/python -m bankops.bench

clean:
	rm -rf $(VENV) $(TOOLS) .data tests/grafana/node_modules tests/grafana/generated
