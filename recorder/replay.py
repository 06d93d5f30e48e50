"""The replay scheduler: publishes a recording on its original schedule, scaled by a factor.

Timing: message i of a pass is due at ``t0 + (arrival_i - arrival_0) / speed`` on the
monotonic clock. Every due time is computed from the pass's start, never by adding up
sleeps, so lateness cannot accumulate. What else would make a message late, and what is done
about it (each measured with ``bench/replay_timing.py``):

- waking up: the scheduler sleeps in select() until the due time, which wakes within ~0.1 ms
  on an idle machine. It can spin for the last ``spin_s``, but does not by default: on a busy
  machine a spinning process loses the kernel's wake-up preference and ends up later;
- decoding: records are parsed one by one as they are due, not a frame at a time;
- acknowledgements: read when there is time to spare (see :mod:`recorder.publisher`);
- the garbage collector: a full pass over an api process's objects takes tens of
  milliseconds, so the objects that exist when a replay starts are frozen out of it.

``speed=None`` publishes as fast as the broker acknowledges, holding at most ``window``
unacknowledged messages, so nothing is dropped however fast the file is read.
"""

from __future__ import annotations

import bisect
import gc
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from recorder.anchor import rebase_delta_ms
from recorder.publisher import MqttPublisher, Publisher, PublishError
from recorder.reading import Damage, RecordingReader, describe_loss
from recorder.rebase import rebase_payload
from recorder.selection import Selection, select
from smartcity.settings import MqttSettings

log = logging.getLogger(__name__)

LEAD_NS = 2_000_000  # the first message is due this long after the start: time to prepare it
SERVICE_EVERY = 256  # at full speed, read acknowledgements after this many publishes


_frozen = 0
_frozen_lock = threading.Lock()


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's passes while a replay
    runs (measured: a full pass took 27 ms in the bench process, under 2 ms once frozen).
    Process-wide, so counted across concurrent replays; cyclic garbage made of frozen objects
    waits for the last replay to end."""
    global _frozen
    with _frozen_lock:
        if not _frozen:
            gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if not _frozen:
                gc.unfreeze()


@dataclass(frozen=True)
class ReplayOptions:
    speed: float | None = 1.0  # None: as fast as the broker accepts
    selection: Selection = field(default_factory=Selection)
    loop: bool = False
    passes: int | None = None  # with loop: stop after this many passes (None: until stopped)
    rebase_time: bool = False
    mark_source: bool = True  # "source": "replayed" in telemetry payloads
    window: int = 1000  # unacknowledged messages at most
    spin_s: float = 0.0

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")

    @property
    def max_passes(self) -> int | None:
        return (self.passes or None) if self.loop else 1


class Lateness:
    """How late messages left, as a histogram of 0.1 ms buckets up to 1 s (O(1) per message,
    so a week-long replay can report percentiles)."""

    BUCKET_NS = 100_000
    BUCKETS = 10_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)
        self.n = 0
        self.max_ns = 0

    def add(self, late_ns: int) -> None:
        late_ns = max(0, late_ns)
        self.counts[min(late_ns // self.BUCKET_NS, self.BUCKETS)] += 1
        self.n += 1
        self.max_ns = max(self.max_ns, late_ns)

    def percentile_ms(self, p: float) -> float:
        """Upper edge of the bucket holding the p-th percentile (p in 0..100)."""
        if not self.n:
            return 0.0
        # Only up to the highest bucket in use: status() runs ten times a second on another
        # thread, and every millisecond it holds the GIL is a millisecond a message may wait.
        top = min(self.max_ns // self.BUCKET_NS, self.BUCKETS)
        cumulative = list(itertools.accumulate(self.counts[:top + 1]))
        i = bisect.bisect_left(cumulative, p / 100 * self.n)
        if i >= self.BUCKETS:  # the overflow bucket: all we know is the maximum
            return self.max_ns / 1e6
        return min((i + 1) * self.BUCKET_NS, self.max_ns) / 1e6


@dataclass
class ReplayStatus:
    state: str  # starting, running, finished, stopped, failed
    file: str
    speed: float | None
    sent: int
    passes_done: int
    position_s: float  # recorded time from the window's first record to the last one sent
    span_s: float  # recorded time the window covers
    elapsed_s: float
    late_p50_ms: float
    late_p99_ms: float
    late_max_ms: float
    unacked: int
    problems: list[str]
    error: str | None = None
    lost: str | None = None  # "N records lost (...)" when damage was skipped
    stored: int | None = None  # a backfill's points stored so far

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        timing = (f"; late p50 {self.late_p50_ms:.1f} ms, p99 {self.late_p99_ms:.1f} ms, "
                  f"max {self.late_max_ms:.1f} ms" if self.speed is not None and self.sent
                  else "")
        passes = f"{self.passes_done} pass{'es' if self.passes_done != 1 else ''}"
        damage = f"; damaged recording: {self.lost} were skipped" if self.lost else ""
        return (f"{self.state}: {self.sent} messages in {self.elapsed_s:.1f}s "
                f"({self.rate:.0f} msg/s), {passes}{timing}{damage}")


class Replayer:
    """One replay of one recording. :meth:`run` blocks; :meth:`start` runs it in a thread,
    :meth:`stop` ends it early, :meth:`status` may be called from any thread."""

    def __init__(self, path: Path | str, mqtt: MqttSettings, options: ReplayOptions,
                 *, publisher: Callable[[], Publisher] | None = None) -> None:
        self.path = Path(path)
        self.mqtt = mqtt
        self.options = options
        self.lateness = Lateness()
        self._make_publisher = publisher or (lambda: MqttPublisher(mqtt, inflight=options.window))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "starting"
        self._error: str | None = None
        self._sent = 0
        self._passes = 0
        self._position_ns = 0
        self._span_ns = 0
        self._started = 0.0
        self._ended: float | None = None
        # Monotonic ns at which the first pass's first message was due: the schedule's origin,
        # for whoever measures it from outside (bench/replay_timing.py).
        self.origin_ns: int | None = None
        self._damage: list[Damage] = []
        self._pub: Publisher | None = None
        with RecordingReader(self.path) as reader:  # fail early on a file that is not ours
            summary = reader.summary()
        self._first_ns = summary.first_ns
        start, end = options.selection.window(summary.first_ns or 0)
        lo = max(start, summary.first_ns or 0) if start is not None else summary.first_ns or 0
        hi = min(end, summary.last_ns or 0) if end is not None else summary.last_ns or 0
        self._span_ns = max(0, hi - lo)

    # -- control ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_logged, name="replay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        elif self._state == "starting":  # never started
            self._state = "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """True once the replay has ended (finished, stopped or failed)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._state in ("finished", "stopped", "failed")

    def status(self) -> ReplayStatus:
        lt = self.lateness
        end = self._ended or time.monotonic()
        return ReplayStatus(
            state=self._state, file=str(self.path), speed=self.options.speed, sent=self._sent,
            passes_done=self._passes, position_s=self._position_ns / 1e9,
            span_s=self._span_ns / 1e9, elapsed_s=end - self._started if self._started else 0.0,
            late_p50_ms=lt.percentile_ms(50), late_p99_ms=lt.percentile_ms(99),
            late_max_ms=lt.max_ns / 1e6, unacked=self._pub.unacked() if self._pub else 0,
            problems=[d.text for d in self._damage], error=self._error,
            lost=describe_loss(self._damage))

    def run(self) -> ReplayStatus:
        self._run_logged()
        return self.status()

    # -- the replay thread -------------------------------------------------------------------

    def _run_logged(self) -> None:
        try:
            self._run()
        except PublishError as e:  # the broker's fault, not ours: no traceback
            self._error = str(e)
            self._state = "failed"
            log.error("replay of %s failed: %s", self.path, e)
        except Exception as e:
            self._error = str(e) or type(e).__name__
            self._state = "failed"
            log.exception("replay of %s failed", self.path)
        finally:
            self._ended = time.monotonic()

    def _run(self) -> None:
        self._started = time.monotonic()
        self._pub = pub = self._make_publisher()
        self._state = "running"
        try:
            with gc_frozen():
                self._passes_loop(pub)
        finally:
            left = pub.close(timeout=2.0 if self._stop.is_set() else 30.0)
            if left:
                self._error = f"{left} messages were not acknowledged by the broker"
                self._state = "failed"
        if self._state == "running":
            self._state = "stopped" if self._stop.is_set() else "finished"
        log.debug("%s", self.status().describe())

    def _passes_loop(self, pub: Publisher) -> None:
        t0_ns: int | None = None
        delta_ms: int | None = None
        max_passes = self.options.max_passes
        while not self._stop.is_set() and (max_passes is None or self._passes < max_passes):
            result = self._one_pass(pub, t0_ns, delta_ms)
            if result is None:  # nothing selected, or stopped before the first message
                return
            self._passes += 1
            t0_ns, delta_ms, advance_ns = result
            # The next pass follows one mean gap after this one, in due times and in the
            # rebased timestamps alike, so a looped recording keeps moving forward in time.
            if self.options.speed is not None:
                t0_ns += round(advance_ns / self.options.speed)
            delta_ms += round(advance_ns / 1e6) if self.options.rebase_time else 0

    def _rebase_delta(self) -> int:
        """The first selected reading's stated time becomes the wall time it is due at."""
        with RecordingReader(self.path) as reader:
            return rebase_delta_ms(reader, self.options.selection, self._first_ns,
                                   round((time.time_ns() + LEAD_NS) / 1e6))

    def _one_pass(self, pub: Publisher, t0_ns: int | None,
                  delta_ms: int | None) -> tuple[int, int, int] | None:
        """Publish the selection once; return its (t0, delta, advance to the next pass)."""
        opts = self.options
        speed = opts.speed
        spin_ns = round(opts.spin_s * 1e9)
        ref_ns = last_ns = count = 0
        with RecordingReader(self.path) as reader:
            for r in select(reader, opts.selection, self._first_ns):
                if self._stop.is_set():
                    break
                if count == 0:
                    ref_ns = r.arrival_ns
                    if t0_ns is None:
                        t0_ns = time.monotonic_ns() + LEAD_NS
                        self.origin_ns = t0_ns
                    if delta_ms is None:
                        delta_ms = self._rebase_delta() if opts.rebase_time else 0
                assert t0_ns is not None and delta_ms is not None
                payload = rebase_payload(r.payload, delta_ms, mark_source=opts.mark_source
                                         and r.topic.endswith("/telemetry"))
                offset_ns = r.arrival_ns - ref_ns
                if speed is None:
                    self._flow_control(pub, count)
                else:
                    due = t0_ns + round(offset_ns / speed)
                    if not self._wait_until(pub, due, spin_ns):
                        break
                pub.publish(r.topic, payload, r.qos, r.retain)
                if speed is not None:
                    self.lateness.add(time.monotonic_ns() - due)
                self._sent += 1
                count += 1
                last_ns = r.arrival_ns
                self._position_ns = max(0, offset_ns)
            self._damage = list(reader.damage)
        if self._passes == 0:  # the same on every pass
            for d in self._damage:
                log.warning("%s: %s", self.path, d.text)
        if count == 0 or t0_ns is None or delta_ms is None:
            return None
        span = last_ns - ref_ns
        gap = span // (count - 1) if count > 1 else 1_000_000_000
        return t0_ns, delta_ms, span + gap

    def _flow_control(self, pub: Publisher, count: int) -> None:
        if count % SERVICE_EVERY == 0:
            pub.service(0)
        while pub.unacked() >= pub.window and not self._stop.is_set():
            pub.service(0.05)

    def _wait_until(self, pub: Publisher, due_ns: int, spin_ns: int) -> bool:
        """Wait for ``due_ns``, servicing the connection meanwhile; False if stopped."""
        while True:
            if self._stop.is_set():
                return False
            remaining = due_ns - time.monotonic_ns()
            if remaining > spin_ns:
                pub.service(min(0.1, (remaining - spin_ns) / 1e9))
                continue
            if pub.unacked() >= pub.window:
                pub.service(0.001)  # the broker is behind: this message will be late
                continue
            if remaining > 0:
                pub.service(0)
                while time.monotonic_ns() < due_ns:
                    pass
            return True
