"""What `smartcity up` decides about its children: pure, with the clock passed in.

Each child (Mosquitto, InfluxDB, ingest, rules, api, simulators) is in one of four states:

- ``running``: started, and either still inside its start grace or seen alive recently;
- ``waiting``: it exited (or was killed as hung) and waits out its backoff before a restart;
- ``degraded``: like ``waiting``, but it has failed ``degraded_after`` times in a row: the
  city runs without it (or with a flapping one) and says so, and restarts go on at the
  longest backoff, so a child that recovers by itself (a disk freed, a port released) is back
  without an operator;
- ``stopped``: the city is stopping; nothing is restarted any more.

The process I/O (spawning, signals, probes) lives in :mod:`launcher.supervisor`; this module
only turns events (started, exited, seen alive) and the time into actions (start, kill).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    DEGRADED = "degraded"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Policy:
    backoff_first_s: float = 1.0
    backoff_max_s: float = 30.0
    # A child that ran this long without failing has its failure count and backoff reset.
    stable_after_s: float = 60.0
    # Consecutive failures before the city reports the child as degraded.
    degraded_after: int = 5
    # No sign of life for this long (after the start grace of the same length): hung.
    hang_after_s: float = 30.0

    def backoff(self, failures: int) -> float:
        """1 s, 2 s, 4 s ... up to the limit, for the 1st, 2nd, 3rd ... consecutive failure."""
        if failures <= 0:
            return 0.0
        return min(self.backoff_max_s, self.backoff_first_s * 2.0 ** min(failures - 1, 30))


@dataclass(frozen=True)
class Start:
    name: str
    attempt: int  # 0 for the first start, then which restart this is (1, 2, ...)


@dataclass(frozen=True)
class Kill:
    """Kill a hung child; its exit is reported back and handled as any other failure."""

    name: str
    reason: str


Action = Start | Kill


@dataclass
class Child:
    name: str
    state: State = State.WAITING
    started_at: float = 0.0
    last_alive: float = 0.0
    failures: int = 0  # consecutive
    restarts: int = 0
    next_start: float = 0.0
    last_exit: str | None = None
    hung: bool = False  # killed as hung, exit not yet seen
    watched: bool = True  # has a liveness probe; hang detection applies


@dataclass
class Supervision:
    policy: Policy
    children: dict[str, Child] = field(default_factory=dict)
    stopping: bool = False

    def add(self, name: str, now: float, watched: bool = True) -> None:
        """A child to run from now on; started at the next :meth:`due`."""
        self.children[name] = Child(name, next_start=now, watched=watched)

    def started(self, name: str, now: float) -> None:
        c = self.children[name]
        c.state, c.started_at, c.last_alive, c.hung = State.RUNNING, now, now, False

    def alive(self, name: str, at: float) -> None:
        """A sign of life seen (a fresh heartbeat, an answer to a probe) at time ``at``."""
        c = self.children[name]
        if c.state is State.RUNNING and at >= c.started_at:
            c.last_alive = max(c.last_alive, at)

    def exited(self, name: str, cause: str, now: float) -> Child:
        """The child's process is gone (by itself, by a crash, or killed as hung)."""
        c = self.children[name]
        if self.stopping:
            c.state = State.STOPPED
            return c
        if c.state is State.RUNNING and now - c.started_at >= self.policy.stable_after_s \
                and not c.hung:
            c.failures = 0  # it had been fine for a while: this is a fresh failure
        c.failures += 1
        c.last_exit = f"{cause} (killed as hung)" if c.hung and "hung" not in cause else cause
        c.hung = False
        c.next_start = now + self.policy.backoff(c.failures)
        c.state = State.DEGRADED if c.failures >= self.policy.degraded_after else State.WAITING
        return c

    def start_failed(self, name: str, cause: str, now: float) -> Child:
        """It could not even be started (a port taken, a binary missing): a failure too."""
        c = self.children[name]
        c.state, c.started_at = State.RUNNING, now
        return self.exited(name, cause, now)

    def due(self, now: float) -> list[Action]:
        """What to do now: start children whose backoff is over, kill hung ones."""
        if self.stopping:
            return []
        actions: list[Action] = []
        p = self.policy
        for c in self.children.values():
            if c.state in (State.WAITING, State.DEGRADED) and now >= c.next_start:
                if c.started_at or c.last_exit is not None:
                    c.restarts += 1
                actions.append(Start(c.name, c.restarts))
                c.state = State.RUNNING  # until started() or start_failed() says more
                c.started_at = c.last_alive = now
            elif c.state is State.RUNNING and c.watched and not c.hung:
                silent = now - max(c.last_alive, c.started_at)
                if silent > p.hang_after_s:
                    c.hung = True
                    actions.append(Kill(c.name, f"no sign of life for {silent:.0f}s"))
            if c.state is State.RUNNING and c.failures and not c.hung \
                    and now - c.started_at >= p.stable_after_s:
                c.failures = 0  # stable again: no longer degraded, backoff from the start
        return actions

    def stop(self) -> None:
        self.stopping = True
        for c in self.children.values():
            c.state = State.STOPPED

    def degraded(self) -> list[str]:
        return sorted(c.name for c in self.children.values()
                      if c.state is State.DEGRADED or (c.failures >= self.policy.degraded_after
                                                       and c.state is not State.STOPPED))

    def summary(self) -> dict[str, dict[str, object]]:
        """Per child: state, restarts, consecutive failures, the last exit cause."""
        return {c.name: {"state": c.state.value, "restarts": c.restarts,
                         "failures": c.failures, "last_exit": c.last_exit}
                for c in self.children.values()}
