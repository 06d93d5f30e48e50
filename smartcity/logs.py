"""Logging set-up shared by the services: one line per event, service name first."""

from __future__ import annotations

import logging
import sys


def setup(service: str, level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        force=True,
    )
    # One line per HTTP request to InfluxDB would drown everything else.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


def truncate(data: bytes | str, limit: int = 200) -> str:
    """A payload made safe and short for a log line or an error report."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
