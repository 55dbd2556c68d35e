#!/bin/sh
# The one way to start the API, in the container (Dockerfile ENTRYPOINT) and natively (the
# native stack run): `entrypoint.sh` serves, `entrypoint.sh migrate` applies the migrations.
# bank-api reads every setting from the environment (DATABASE_URL, HOST, PORT, WEB_CONCURRENCY,
# ADMIN_TOKEN, DB_POOL_SIZE, ...); `exec` lets it receive SIGTERM directly for a graceful stop.
set -eu
exec bank-api "${@:-serve}"
