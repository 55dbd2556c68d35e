#!/usr/bin/env bash
# Chromium from Debian's packages, for the test that renders the API's /docs in a real browser
# with no network (api/tests/test_docs_offline.py). Idempotent; root needed to install.
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-browser.sh: chromium is missing; install it (apt-get install chromium)" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
chromium --version
