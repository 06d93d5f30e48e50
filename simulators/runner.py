"""``smartcity simulate``: publish every simulated device's readings on a fixed schedule.

Every ``interval_s`` each device publishes one reading (QoS 1, ``ts`` the wall-clock time of
the tick). The readings come from :class:`~simulators.simulation.Simulation`, driven by a
simulated clock. By default that is the wall clock, so the city's day follows the real one.
With a seed it starts at :data:`SEEDED_START_MS` and advances exactly one interval per tick,
so the same seed gives the same readings whenever it runs (the readings' ``ts`` stay wall
clock).
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from simulators.base import HCMC_TZ
from simulators.devices import DeviceLink, wall_ms
from simulators.simulation import Message, Simulation, interval_ms, readings
from smartcity import logs
from smartcity.city import load_city
from smartcity.models import format_ts
from smartcity.settings import MqttSettings, SimulatorSettings

__all__ = ["SEEDED_START_MS", "Message", "Simulation", "main", "readings", "run"]

log = logging.getLogger(__name__)

# A rainy-season Monday at dawn, so a short seeded run sees the morning rush build up.
SEEDED_START_MS = int(datetime(2025, 7, 14, 6, 0, tzinfo=HCMC_TZ).timestamp() * 1000)
SHUTDOWN_TIMEOUT_S = 5.0
# Ticks this late are published at once, keeping a seeded stream reproducible through a
# hiccup; later ones are skipped.
CATCH_UP_S = 10.0
STATS_INTERVAL_S = 60.0


def main(settings: SimulatorSettings, duration_s: float | None = None, *,
         start_ms: int | None = None) -> int:
    """Run until SIGINT/SIGTERM or for ``duration_s`` seconds; return the exit code."""
    logs.setup("simulate", settings.log_level)
    stop = threading.Event()
    restore = _stop_on_signals(stop)
    try:
        return run(settings, stop=stop, duration_s=duration_s, start_ms=start_ms)
    finally:
        restore()


def run(settings: SimulatorSettings, *, stop: threading.Event | None = None,
        duration_s: float | None = None, start_ms: int | None = None) -> int:
    """:func:`main` without logging set-up and signal handlers: stops when ``stop`` is set.

    ``start_ms`` is the simulated time of the first tick (default: see the module doc)."""
    stop = threading.Event() if stop is None else stop
    deadline = None if duration_s is None else time.monotonic() + duration_s
    city = load_city(settings.city_file)
    seed = settings.seed if settings.seed is not None else secrets.randbelow(2**32)
    if start_ms is None and settings.seed is not None:
        start_ms = SEEDED_START_MS
    simulation = Simulation(city, seed, settings.mqtt.root)
    log.info("simulating %d devices of %s every %gs under %s/, seed %d%s",
             len(simulation.devices), city.name_en or city.name, settings.interval_s,
             settings.mqtt.root, seed, "" if settings.seed is not None else " (random)")
    # One connection and one network thread per device: fine for a city of tens of devices.
    # A large --scale will want fewer threads (one event loop over many sockets, or a
    # gateway connection publishing for many devices) and its own last-will story.
    links = [DeviceLink(settings.mqtt, ref) for ref in simulation.devices]
    for link in links:
        link.start()
    try:
        if not _wait_connected(links, settings.mqtt, stop, deadline):
            return 0 if stop.is_set() else 1
        _publish(simulation, links, settings.interval_s, stop, deadline, start_ms)
        return 0
    finally:
        _shut_down(links)


def _wait_connected(links: list[DeviceLink], mqtt: MqttSettings, stop: threading.Event,
                    deadline: float | None) -> bool:
    started = time.monotonic()
    warned = False
    while not all(link.connected.is_set() for link in links):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            log.error("gave up: the broker at %s:%d did not accept every device in time",
                      mqtt.host, mqtt.port)
            return False
        if not warned and now - started > 5:
            log.warning("waiting for the broker at %s:%d", mqtt.host, mqtt.port)
            warned = True
        if stop.wait(0.05):
            return False
    log.info("all %d devices connected and online", len(links))
    return True


def _publish(simulation: Simulation, links: list[DeviceLink], interval_s: float,
             stop: threading.Event, deadline: float | None, start_ms: int | None) -> None:
    """One scheduler loop for every device. Tick k is due at t0 + k * interval, so the
    schedule does not drift by however long a tick takes to publish."""
    by_id = {link.device_id: link for link in links}
    every_ms = interval_ms(interval_s)
    t0 = time.monotonic()
    last_ts = 0
    if start_ms is None:
        log.info("simulated clock follows the wall clock")
    else:  # with the seed, what it takes to replay the run: simulation.readings()
        log.info("simulated clock starts at %s", format_ts(start_ms))
    next_stats = t0 + STATS_INTERVAL_S
    published = 0
    k = 0
    while True:
        due = t0 + k * every_ms / 1000
        if deadline is not None and due > deadline:
            return
        if stop.wait(max(0.0, due - time.monotonic())):
            return
        late_s = time.monotonic() - due
        if late_s > CATCH_UP_S:  # suspended or starved: skip to now rather than burst
            skipped = int(late_s * 1000 // every_ms)
            log.warning("%.0fs behind schedule; skipping %d ticks", late_s, skipped)
            k += skipped
        # Strictly increasing, so no two readings of a device share a point in InfluxDB even
        # when late ticks are caught up within a millisecond.
        last_ts = max(wall_ms(), last_ts + 1)
        now_ms = last_ts if start_ms is None else start_ms + k * every_ms
        for m in simulation.step(now_ms, last_ts):
            published += by_id[m.device_id].publish(m.topic, m.payload)
        k += 1
        if time.monotonic() >= next_stats:
            next_stats += STATS_INTERVAL_S
            log.info("published %d readings; %d unacknowledged, %d dropped", published,
                     sum(x.pending for x in links), sum(x.dropped for x in links))


def _shut_down(links: list[DeviceLink]) -> None:
    for link in links:
        link.announce_offline()
    # Readings already handed to paho are worth waiting for, but not for ever.
    give_up = time.monotonic() + SHUTDOWN_TIMEOUT_S
    while (pending := sum(x.pending for x in links if x.connected.is_set())) and \
            time.monotonic() < give_up:
        time.sleep(0.02)
    if pending:
        log.warning("stopping with %d messages unacknowledged", pending)
    # All at once: a thread waiting to reconnect notices within a second, so this is bounded
    # by that second rather than by a second per device.
    for link in links:
        link.disconnect()
    for link in links:
        link.close()
    log.info("stopped")


def _stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGINT and SIGTERM set ``stop``; return a function restoring the old handlers.

    Python only lets the main thread install handlers, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s received; stopping", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore
