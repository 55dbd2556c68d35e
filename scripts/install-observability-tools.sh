#!/usr/bin/env bash
# Install Prometheus, Alertmanager and postgres-exporter from Debian 12's own packages, as
# root. They provide the binaries the config tests and the native stack run need:
#   prometheus, promtool                  (package prometheus)
#   prometheus-alertmanager, amtool       (package prometheus-alertmanager)
#   prometheus-postgres-exporter          (package prometheus-postgres-exporter)
#
# Idempotent: does nothing (except print versions) when every binary is already on PATH.
# Works without systemd: the packages' post-install scripts would try to start their services;
# a policy-rc.d that answers 101 ("action forbidden") stops that, and any daemon that starts
# anyway is stopped by PID afterwards. The stack starts these tools itself, with the repo's
# configs, when it needs them.
set -euo pipefail

PACKAGES=(prometheus prometheus-alertmanager prometheus-postgres-exporter)
BINARIES=(prometheus promtool prometheus-alertmanager amtool prometheus-postgres-exporter)
# Command lines of the daemons the packages may start (matched with pgrep -f).
DAEMON_PATTERN='^/usr/bin/(prometheus|prometheus-alertmanager|prometheus-postgres-exporter)( |$)'

missing=()
for bin in "${BINARIES[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done

if ((${#missing[@]} == 0)); then
    echo "All observability tools already installed; nothing to do."
else
    echo "Missing: ${missing[*]} -> installing ${PACKAGES[*]}"
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: run as root (apt-get install needs it), e.g. sudo $0" >&2
        exit 1
    fi

    # Daemons already running before we start are someone else's: never touch them.
    before=" $(pgrep -d ' ' -f "$DAEMON_PATTERN" || true) "

    # Forbid service starts during the install unless a policy already exists (Docker images
    # ship one that does the same).
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary: installed by %s\nexit 101\n' "$0" >"$policy"
        chmod 755 "$policy"
        created_policy=1
        trap 'rm -f "$policy"' EXIT
    fi

    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"

    if ((created_policy)); then
        rm -f "$policy"
        trap - EXIT
    fi

    # Stop, by PID, any daemon the install started anyway.
    for pid in $(pgrep -f "$DAEMON_PATTERN" || true); do
        if [[ $before != *" $pid "* ]]; then
            echo "Stopping daemon started by the package install: $(ps -o args= -p "$pid" || true)"
            kill "$pid" 2>/dev/null || true
        fi
    done
fi

echo "--- installed versions"
prometheus --version 2>&1 | sed -n 1p
promtool --version 2>&1 | sed -n 1p
prometheus-alertmanager --version 2>&1 | sed -n 1p
amtool --version 2>&1 | sed -n 1p
prometheus-postgres-exporter --version 2>&1 | sed -n 1p
