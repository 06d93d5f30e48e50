#!/bin/bash
# InfluxDB 2.x first-start setup for the exhibit (run once by the influxdb image, after it has
# created the org and the bucket; the influx CLI is already logged in with the admin token).
#
# smartcity speaks the v1-compatible API (/write, /query with InfluxQL), so it needs:
# - a DBRP mapping: database "$DOCKER_INFLUXDB_INIT_BUCKET" -> the bucket;
# - v1 credentials: "smartcity" (read and write: ingest, rules, api) and "grafana" (read only,
#   for the public screens).
set -euo pipefail

: "${SMARTCITY_INFLUX_PASSWORD:?set SMARTCITY_INFLUX_PASSWORD}"
: "${SMARTCITY_GRAFANA_INFLUX_PASSWORD:?set SMARTCITY_GRAFANA_INFLUX_PASSWORD}"

influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
  --rp autogen \
  --default

influx v1 auth create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --username smartcity \
  --password "${SMARTCITY_INFLUX_PASSWORD}" \
  --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --write-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --description "smartcity services"

influx v1 auth create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --username grafana \
  --password "${SMARTCITY_GRAFANA_INFLUX_PASSWORD}" \
  --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --description "Grafana on the public screens (read only)"
