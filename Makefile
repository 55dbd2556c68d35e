# Entry points. `make run` serves the API on an embedded PostgreSQL; `make test` installs
# everything the tests need (Python packages from uv.lock, Prometheus tools, the npm packages
# that type-check the dashboards) and runs every test.

UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint setup system-tools clean

run: $(VENV)/.synced
	$(VENV)/bin/bank-api

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .

setup: $(VENV)/.synced system-tools

# uv itself, pinned, in a small venv of its own.
$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml api/pyproject.toml
	$(UV) sync --locked --python python3.11
	touch $@

# promtool, amtool, prometheus, alertmanager, postgres-exporter (Debian), Node.js for tsc.
system-tools:
	scripts/install-observability-tools.sh
	scripts/install-node.sh

clean:
	rm -rf $(VENV) $(TOOLS) .data tests/grafana/node_modules tests/grafana/generated
