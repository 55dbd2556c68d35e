#!/usr/bin/env bash
# Node.js and npm, used to type-check the Grafana dashboards with tsc (tests/grafana).
# Machines of this project's kind ship them; a bare Debian gets them from apt.
set -euo pipefail
if command -v node >/dev/null && command -v npm >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-node.sh: Node.js and npm are missing; install them (apt-get install nodejs npm)" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
node --version
