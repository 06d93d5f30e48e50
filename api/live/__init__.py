"""The live stream: the broker's events fanned out to every connected screen.

:mod:`~api.live.hub` judges and fans out, :mod:`~api.live.client` is one screen,
:mod:`~api.live.buffer` its bounded outbox, :mod:`~api.live.filter` what it asked for and
:mod:`~api.live.wire` the protocol (docs/live-stream.md); the route is ``api.routes.live``.
"""

from api.live.client import GOING_AWAY, POLICY_VIOLATION, TRY_AGAIN_LATER, LiveClient
from api.live.filter import LiveFilter, parse_filter
from api.live.hub import LiveHub, LiveStats, shutdown_streams

__all__ = ["GOING_AWAY", "POLICY_VIOLATION", "TRY_AGAIN_LATER", "LiveClient", "LiveFilter",
           "LiveHub", "LiveStats", "parse_filter", "shutdown_streams"]
