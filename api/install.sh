#!/bin/sh
# The one way to install the API: exactly the locked versions (uv.lock), no dev tools, the
# package itself as a real install rather than a link to the source. Used by api/Dockerfile
# and by the native stack run, so the two cannot drift. Extra arguments go to `uv sync`.
#   UV      the uv binary (default: `uv` on PATH)
#   UV_PROJECT_ENVIRONMENT   where the virtualenv goes (default: .venv of the workspace)
set -eu
cd "$(dirname "$0")/.."
exec "${UV:-uv}" sync --locked --no-dev --no-editable --package bank-api "$@"
