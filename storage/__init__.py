"""Where smartcity keeps what it measured: the InfluxDB client, line protocol, the outbox."""
