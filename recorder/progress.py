"""Replay progress: a one-line bar on a terminal, a plain log line every few seconds otherwise."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol, TextIO

from recorder.replay import ReplayStatus

log = logging.getLogger("recorder.progress")

BAR_WIDTH = 24


def clock(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def describe(st: ReplayStatus, rate: float) -> tuple[float, str]:
    fraction = min(1.0, st.position_s / st.span_s) if st.span_s > 0 else 0.0
    speed = "max" if st.speed is None else f"{st.speed:g}x"
    timing = (f"  stored {st.stored}" if st.stored is not None
              else f"  late p99 {st.late_p99_ms:.1f} ms" if st.speed is not None and st.sent
              else f"  unacked {st.unacked}")
    return fraction, (f"pass {st.passes_done + 1}  {clock(st.position_s)}/{clock(st.span_s)}"
                      f"  {st.sent} msgs  {rate:,.0f} msg/s  {speed}{timing}")


class Reporting(Protocol):
    """A replay or a backfill: its status, readable from another thread at any time."""

    def status(self) -> ReplayStatus: ...


class Progress:
    """Reports on a running replay or backfill from its own thread until :meth:`close`."""

    def __init__(self, replayer: Reporting, stream: TextIO, *, tty: bool | None = None,
                 log_every_s: float = 5.0) -> None:
        self.replayer = replayer
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        # Redrawing more often than 10 times a second only costs the scheduler GIL time.
        self.interval = 0.1 if self.tty else log_every_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        if self.tty:  # the bar as it ended, then a line of its own for what follows
            st = self.replayer.status()
            self._draw(st, st.rate)
            self.stream.write("\n")
            self.stream.flush()

    def _run(self) -> None:
        last_sent, last_t, rate = 0, time.monotonic(), 0.0
        while not self._done.wait(self.interval):
            st = self.replayer.status()
            now = time.monotonic()
            # Averaged over a second or more, so the figure does not flicker on a terminal.
            if now - last_t >= 1.0 or not self.tty:
                rate = (st.sent - last_sent) / (now - last_t)
                last_sent, last_t = st.sent, now
            self._draw(st, rate)

    def _draw(self, st: ReplayStatus, rate: float) -> None:
        fraction, text = describe(st, rate)
        if self.tty:
            filled = round(fraction * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {fraction:4.0%}  {text}\x1b[K")
            self.stream.flush()
        else:
            log.info("%3.0f%%  %s", fraction * 100, text)
