"""Keeping a slow screen from stalling the others: a bounded outgoing buffer per client that
coalesces when full, and the hub's own pacing of readings it cannot hand out in full.
Pure: the caller passes the time.

A screen only needs the latest value, so when a client's buffer is full, a new event
replaces the pending one it supersedes (same :attr:`Event.key`: a device's reading with the
same metrics, its status, an alert, the simulation state) in place. When nothing can be
replaced, superseded entries left from before the buffer filled are dropped; if there is
still no room the event is refused and counted as lost, and the client must start over from
a fresh snapshot. :attr:`Outbox.behind_since` says since when the client has been full, so
the hub can close one that does not catch up.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable

from api.live.wire import Event


class _Slot:
    __slots__ = ("event", "key")

    def __init__(self, key: Hashable | None, event: Event | None) -> None:
        self.key = key
        self.event = event


class Outbox:
    """A client's pending events, oldest first, at most ``capacity`` of them."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._queue: deque[_Slot] = deque()
        self._latest: dict[Hashable, _Slot] = {}
        self._size = 0
        self._compacted = True  # no superseded entry left in the queue
        self.behind_since: float | None = None
        self.coalesced = 0
        self.lost = 0

    def __len__(self) -> int:
        return self._size

    def put(self, event: Event, now: float) -> bool:
        """Queue ``event``; False if it had to be dropped (the client missed it)."""
        key = event.key
        if self._size < self.capacity:
            self._append(key, event)
            return True
        if self.behind_since is None:
            self.behind_since = now
        slot = self._latest.get(key) if key is not None else None
        if slot is not None:
            slot.event = event
            self.coalesced += 1
            return True
        self._compact()
        if self._size < self.capacity:
            self._append(key, event)
            return True
        self.lost += 1
        return False

    def pop(self) -> Event | None:
        while self._queue:
            slot = self._queue.popleft()
            event = slot.event
            if event is None:
                continue
            if slot.key is not None and self._latest.get(slot.key) is slot:
                del self._latest[slot.key]
            self._size -= 1
            if self.behind_since is not None and self._size <= self.capacity // 2:
                self.behind_since = None  # caught up to half the buffer
            return event
        return None

    def pop_many(self, limit: int) -> list[Event]:
        out: list[Event] = []
        while len(out) < limit:
            event = self.pop()
            if event is None:
                break
            out.append(event)
        return out

    def behind_for(self, now: float) -> float:
        """Seconds the buffer has been full without draining to half; 0 if it is not."""
        return 0.0 if self.behind_since is None else now - self.behind_since

    def _append(self, key: Hashable | None, event: Event) -> None:
        slot = _Slot(key, event)
        self._queue.append(slot)
        if key is not None:
            if key in self._latest:
                self._compacted = False
            self._latest[key] = slot
        self._size += 1

    def _compact(self) -> None:
        if self._compacted:
            return
        kept: deque[_Slot] = deque()
        for slot in self._queue:
            if slot.event is None:
                continue
            if slot.key is not None and self._latest.get(slot.key) is not slot:
                slot.event = None
                self._size -= 1
                self.coalesced += 1
                continue
            kept.append(slot)
        self._queue = kept
        self._compacted = True


class Pacer:
    """Readings the hub holds back when handing them all out would cost more than it can
    afford: each waits in line once, a newer reading of the same key (device and metric set)
    takes the waiting one's place, and :meth:`offer` lets out at most ``allowance`` of them,
    oldest first, so every device gets its turn however busy the others are."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[Hashable, Event] = OrderedDict()
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def offer(self, readings: list[Event], allowance: int) -> list[Event]:
        waiting = self._waiting
        if not waiting and len(readings) <= allowance:
            return readings  # within budget: every reading, in order
        for event in readings:
            if event.key in waiting:
                self.coalesced += 1
            waiting[event.key] = event
        return [waiting.popitem(last=False)[1] for _ in range(min(allowance, len(waiting)))]
