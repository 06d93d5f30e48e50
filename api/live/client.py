"""One connected screen of the live stream, and the WebSocket codes it is closed with."""

from __future__ import annotations

import asyncio

from api.live.buffer import Outbox
from api.live.filter import LiveFilter
from api.live.wire import Event

# WebSocket close codes
GOING_AWAY = 1001
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class LiveClient:
    """One connected screen: its filter, first message, outbox, and whether it must go."""

    def __init__(self, flt: LiveFilter, first: Event, capacity: int) -> None:
        self.filter = flt
        self.first = first
        self.outbox = Outbox(capacity)
        self.wake = asyncio.Event()
        self.closing = asyncio.Event()
        self.close_code = 1000
        self.close_reason = ""

    @property
    def closed(self) -> bool:
        return self.closing.is_set()

    def close(self, code: int, reason: str) -> None:
        if not self.closing.is_set():
            self.close_code, self.close_reason = code, reason
            self.closing.set()
            self.wake.set()
