#!/usr/bin/env bash
# Install whatever is missing, then run the city or the test suite.
#
#   bash scripts/dev.sh up      # the whole city: Mosquitto, InfluxDB, ingest, api, simulators
#   bash scripts/dev.sh test    # the test suite, against real Mosquitto and InfluxDB
#
# Works as root on a fresh Debian 12+ / Ubuntu 24.04+ (or with sudo). Idempotent: a second
# run installs nothing. Extra arguments go to `smartcity up` or to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

install_system_packages() {
    local missing=()
    have mosquitto || missing+=(mosquitto)
    have mosquitto_pub || missing+=(mosquitto-clients)
    have influxd || missing+=(influxdb)
    # the kiosk board's browser test drives Debian's Chromium headless (never a downloaded one)
    have chromium || missing+=(chromium)
    # the deployment file's test parses it with the real docker-compose (no engine needed)
    have docker-compose || missing+=(docker-compose)
    have python3 || missing+=(python3)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    # smartcity runs its own private servers; keep the packages' system daemons from starting
    # on ports 1883/8086 (the standard Debian policy-rc.d switch, removed again afterwards).
    local policy=/usr/sbin/policy-rc.d placed=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        placed=yes
    fi
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    [ -n "$placed" ] && as_root rm -f "$policy"
    return 0
}

install_venv() {
    local stamp=.venv/.installed
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        python3 -m venv .venv
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing smartcity into .venv"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev]'
        echo "$want" > "$stamp"
    fi
}

command=${1:-}
shift || true
case "$command" in
    up)
        install_system_packages
        install_venv
        exec .venv/bin/smartcity up "$@"
        ;;
    test)
        install_system_packages
        install_venv
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        echo "usage: bash scripts/dev.sh up|test [args...]" >&2
        exit 2
        ;;
esac
