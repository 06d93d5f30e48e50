"""Ingest: validate readings from the broker and store them in InfluxDB, losing none."""
