#!/usr/bin/env bash
# Print an .env for docker-compose with fresh random secrets (hex: safe inside URLs):
#   bash scripts/exhibit-env.sh > .env && chmod 600 .env
# Keep the file: the broker's and InfluxDB's accounts are created from it on first start.
set -euo pipefail
secret() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }
for service in INGEST RULES API SIMULATORS RECORDER ADMIN; do
    echo "SMARTCITY_BROKER_${service}_PASSWORD=$(secret)"
done
echo "SMARTCITY_INFLUX_TOKEN=$(secret)"
echo "SMARTCITY_INFLUX_PASSWORD=$(secret)"
echo "SMARTCITY_GRAFANA_INFLUX_PASSWORD=$(secret)"
echo "SMARTCITY_ADMIN_TOKEN=$(secret)"
echo "GRAFANA_ADMIN_PASSWORD=$(secret)"
echo "SMARTCITY_EXHIBIT_HOST=${SMARTCITY_EXHIBIT_HOST:-exhibit.local}"
