"""The attract loop: when nobody has touched the controls for a while, the exhibit tells
its story by itself, over and over: an ordinary day, then the king-tide storm and the city's
recovery, then back to now for a breather. The board captions each phase.

Any command an operator sends through the api (:meth:`AttractLoop.touch`) hands the city
back to them; the loop starts again after ``idle_s`` without one. Its own commands carry ids
``attract-...``, so they show as such in the simulator's ``last_command``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from api.link import MqttLink, NotPublished
from smartcity.control import (
    Clock,
    ControlBody,
    ResetClock,
    SetSpeed,
    StartScenario,
    command_of,
    command_topic,
    encode_command,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Phase:
    scenario: str
    speed: float  # story seconds per second
    hold_s: float  # wall-clock seconds the phase is shown


# An ordinary day in a minute, then fourteen hours of king tide, storm and recovery in about
# a minute and a half; then the city at the wall clock's time for a breather.
DEFAULT_PLAN = (Phase("normal-day", 1440, 60), Phase("king-tide-storm", 600, 90))
REST_S = 30.0


class AttractLoop:
    def __init__(self, idle_s: float, plan: Sequence[Phase] = DEFAULT_PLAN,
                 rest_s: float = REST_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.plan = tuple(plan)
        self.rest_s = rest_s
        self._clock = clock
        self._touched = clock()
        self._phase: int | None = None  # index into plan; len(plan): resting
        self._since = 0.0
        self._ids = itertools.count(1)

    @property
    def active(self) -> bool:
        return self._phase is not None

    def touch(self) -> None:
        """An operator used the controls: the loop stops until they are idle again."""
        self._touched = self._clock()
        if self._phase is not None:
            log.info("attract loop stopped: an operator took over")
        self._phase = None

    def due(self) -> list[ControlBody]:
        """The commands to send now (pure but for the clock)."""
        now = self._clock()
        if self.idle_s <= 0 or not self.plan or now - self._touched < self.idle_s:
            return []
        if self._phase is None:
            log.info("nobody at the controls for %gs: the attract loop begins", self.idle_s)
            return self._enter(0, now)
        held = now - self._since
        if self._phase < len(self.plan):
            if held < self.plan[self._phase].hold_s:
                return []
            if self._phase + 1 < len(self.plan):
                return self._enter(self._phase + 1, now)
            self._phase, self._since = len(self.plan), now
            return [ResetClock(id=self._id())]
        return self._enter(0, now) if held >= self.rest_s else []

    def _enter(self, index: int, now: float) -> list[ControlBody]:
        phase = self.plan[index]
        self._phase, self._since = index, now
        return [StartScenario(name=phase.scenario, clock=Clock.EXHIBIT, id=self._id()),
                SetSpeed(speed=phase.speed, id=self._id())]

    def _id(self) -> str:
        return f"attract-{next(self._ids)}"


async def run_attract(loop: AttractLoop, link: MqttLink, root: str,
                      every_s: float = 1.0) -> None:
    """Send the loop's commands while a simulator runs; until cancelled."""
    while True:
        await anyio.sleep(every_s)
        state = link.simulator()
        if not link.connected or state is None or not state.running:
            continue
        for body in loop.due():
            topic = str(command_topic(command_of(body), root))
            try:
                await anyio.to_thread.run_sync(link.publish, topic, encode_command(body))
            except NotPublished as e:
                log.warning("attract loop: %s not delivered: %s", topic, e)
