"""The process edge of `smartcity up`'s supervision: spawn, probe, kill, report.

:class:`launcher.supervision.Supervision` decides; this module does what it decides, on the
main thread only: the children get ``PR_SET_PDEATHSIG`` from the thread that forks them, so
forking from any other thread would kill them when that thread ends.

Signs of life: ingest, rules and simulators write heartbeat files (their mtime), the api
answers ``/healthz``, InfluxDB ``/ping``, Mosquitto a CONNECT (any CONNACK, even "not
authorised", proves its event loop turns). The state is written to a status file the api's
``/readyz`` reads and to InfluxDB (measurement ``city_supervision``) for the operations board.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import orjson
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from launcher.servers import ManagedServer, ServerError, kill_on_parent_death
from launcher.supervision import Kill, Policy, Start, State, Supervision
from smartcity.models import format_ts
from smartcity.settings import InfluxSettings, Settings
from storage.influx import InfluxClient, InfluxError

log = logging.getLogger("smartcity.up")

MEASUREMENT = "city_supervision"
STATE_CODES = {State.RUNNING: 0, State.WAITING: 1, State.DEGRADED: 2, State.STOPPED: 3}


class SupervisorSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="SMARTCITY_UP_")

    backoff_first_s: float = Field(default=1.0, gt=0, description="first restart delay")
    backoff_max_s: float = Field(default=30.0, gt=0, description="longest restart delay")
    stable_after_s: float = Field(default=60.0, gt=0,
                                  description="running this long resets the failure count")
    degraded_after: int = Field(default=5, ge=1, description="failures in a row before the "
                                                             "city reports itself degraded")
    hang_after_s: float = Field(default=30.0, ge=10, description="no sign of life for this "
                                                                "long: killed and restarted")
    probe_interval_s: float = Field(default=2.0, gt=0)

    def policy(self) -> Policy:
        return Policy(self.backoff_first_s, self.backoff_max_s, self.stable_after_s,
                      self.degraded_after, self.hang_after_s)


def exit_cause(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Child(Protocol):
    @property
    def name(self) -> str: ...

    def start(self) -> None: ...
    def poll(self) -> str | None: ...  # the exit cause once it has exited
    def kill(self) -> None: ...
    def stop(self) -> None: ...
    def pid(self) -> int | None: ...


@dataclass
class ServiceChild:
    """A smartcity service (``python -m launcher.cli NAME``) in its own process group."""

    name: str
    command: str
    env: Mapping[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", self.command],
                                     env=dict(self.env), stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=kill_on_parent_death)
        log.info("started %s (pid %d)", self.command, self.proc.pid)

    def poll(self) -> str | None:
        if self.proc is None or (code := self.proc.poll()) is None:
            return None
        return exit_cause(code)

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # A stopped (SIGSTOPped) child would never see the SIGTERM.
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            self._signal(signal.SIGKILL)
            self.proc.wait()


@dataclass
class ServerChild:
    """Mosquitto or InfluxDB, restarted on the same config, port and data directory."""

    server: ManagedServer
    last: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.server.name

    def start(self) -> None:
        self.server.start()
        self.last = self.server.proc
        log.info("started %s (pid %d)", self.name, self.pid() or 0)

    def poll(self) -> str | None:
        proc = self.last
        if proc is None or (code := proc.poll()) is None:
            return None
        tail = self.server.log_tail(5)
        self.server.proc = None
        return f"{exit_cause(code)}; its log {self.server.log_path} ends:\n{tail}"

    def pid(self) -> int | None:
        return self.last.pid if self.last else None

    def kill(self) -> None:
        if self.last is not None and self.last.poll() is None:
            self.last.send_signal(signal.SIGCONT)  # nothing to do for a running one
            self.last.kill()

    def stop(self) -> None:
        if self.last is not None and self.last.poll() is None:
            self.last.send_signal(signal.SIGCONT)
        self.server.stop()


# --- signs of life -------------------------------------------------------------------------

Probe = Callable[[], float | None]
"""The monotonic time of the child's latest sign of life, or None if there is none."""


def heartbeat_probe(path: Path) -> Probe:
    def probe() -> float | None:
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return None
        return time.monotonic() - max(0.0, age)
    return probe


def http_probe(url: str, ok: frozenset[int] = frozenset({200, 204}),
               timeout_s: float = 1.5) -> Probe:
    def probe() -> float | None:
        try:
            answered = httpx.get(url, timeout=timeout_s).status_code in ok
        except httpx.HTTPError:
            return None
        return time.monotonic() if answered else None
    return probe


# An MQTT 3.1.1 CONNECT without credentials, client id "smartcity-up-probe", clean session.
_CONNECT = bytes([0x10, 30, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 10, 0, 18]) + \
    b"smartcity-up-probe"


def broker_probe(port: int, every_s: float, timeout_s: float = 1.5) -> Probe:
    """At most one CONNECT every ``every_s`` (each is a line in the broker's log)."""
    last = [float("-inf"), float("-inf")]  # tried, answered

    def probe() -> float | None:
        if time.monotonic() - last[0] < every_s:
            return last[1] if last[1] > float("-inf") else None
        last[0] = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
                s.sendall(_CONNECT)
                answer = s.recv(4)
        except OSError:
            return None
        if answer[:1] != b"\x20":  # CONNACK
            return None
        last[1] = time.monotonic()
        return last[1]
    return probe


# --- reporting -----------------------------------------------------------------------------

@dataclass
class Reporter:
    """The status file (for the api's /readyz) and the ``city_supervision`` points (for the
    operations board), written off the main loop so a hung InfluxDB cannot stall it."""

    status_file: Path
    influx: InfluxSettings | None
    _lines: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(maxsize=4))
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        if self.influx is not None:
            self._thread = threading.Thread(target=self._write_points, daemon=True,
                                            name="up-report")
            self._thread.start()

    def report(self, supervision: Supervision) -> None:
        summary = supervision.summary()
        degraded = supervision.degraded()
        body = {"ts": format_ts(int(time.time() * 1000)),
                "state": "degraded" if degraded else "running",
                "degraded": degraded, "children": summary}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
        tmp.replace(self.status_file)
        if self._thread is None:
            return
        now_ms = int(time.time() * 1000)
        lines = [f"{MEASUREMENT},child={name} state_code={STATE_CODES[State(str(c['state']))]}i,"
                 f"restarts={c['restarts']}i,failures={c['failures']}i,"
                 f"degraded={int(name in degraded)}i {now_ms}"
                 for name, c in summary.items()]
        lines.append(f"{MEASUREMENT},child=city degraded={len(degraded)}i {now_ms}")
        # When InfluxDB is slow the queue is full: the next report supersedes this one.
        with contextlib.suppress(queue.Full):
            self._lines.put_nowait(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        if self._thread is not None:
            self._lines.put(None)
            self._thread.join(5)

    def _write_points(self) -> None:
        assert self.influx is not None
        client = InfluxClient(self.influx.model_copy(update={"timeout_s": 2.0}))
        try:
            while (body := self._lines.get()) is not None:
                try:
                    client.write(body)
                except InfluxError as e:
                    log.debug("supervision point not stored: %s", e)
        finally:
            client.close()


# --- the loop ------------------------------------------------------------------------------

@dataclass
class Supervisor:
    settings: SupervisorSettings
    reporter: Reporter
    children: dict[str, Child] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.supervision = Supervision(self.settings.policy())

    def add(self, child: Child, probe: Probe | None, started: bool = False) -> None:
        """Supervise ``child``; ``started``: it is already running (started by the caller)."""
        now = time.monotonic()
        self.children[child.name] = child
        self.order.append(child.name)
        self.supervision.add(child.name, now, watched=probe is not None)
        if probe is not None:
            self.probes[child.name] = probe
        if started:
            self.supervision.children[child.name].next_start = float("inf")
            self.supervision.started(child.name, now)

    def run(self, stop: threading.Event) -> None:
        self.reporter.start()
        next_probe = next_report = 0.0
        was_degraded: list[str] = []
        while not stop.is_set():
            now = time.monotonic()
            for name, child in self.children.items():
                if (cause := child.poll()) is not None and \
                        self.supervision.children[name].state is State.RUNNING:
                    self._exited(name, cause, now)
            if now >= next_probe:
                next_probe = now + self.settings.probe_interval_s
                for name, probe in self.probes.items():
                    if self.supervision.children[name].state is State.RUNNING and \
                            (seen := probe()) is not None:
                        self.supervision.alive(name, seen)
            for action in self.supervision.due(time.monotonic()):
                if stop.is_set():
                    break
                self._do(action)
            degraded = self.supervision.degraded()
            if degraded != was_degraded:
                if degraded:
                    log.error("the city is degraded: %s keep failing; still retrying every "
                              "%.0fs", ", ".join(degraded), self.settings.backoff_max_s)
                else:
                    log.info("the city is whole again")
                was_degraded = degraded
                next_report = 0.0
            if now >= next_report:
                next_report = now + 5.0
                self.reporter.report(self.supervision)
            stop.wait(0.2)

    def _exited(self, name: str, cause: str, now: float) -> None:
        c = self.supervision.exited(name, cause, now)
        log.error("%s %s; restarting it in %.0fs (failure %d in a row, %d restarts so far)",
                  name, c.last_exit, max(0.0, c.next_start - now), c.failures, c.restarts)

    def _do(self, action: Start | Kill) -> None:
        child = self.children[action.name]
        if isinstance(action, Kill):
            log.error("%s (pid %s) is hung: %s; killing it", action.name, child.pid(),
                      action.reason)
            child.kill()
            return
        try:
            child.start()
        except (ServerError, OSError) as e:
            c = self.supervision.start_failed(action.name, f"could not start: {e}",
                                              time.monotonic())
            log.error("%s could not start (%s); next try in %.0fs", action.name, e,
                      max(0.0, c.next_start - time.monotonic()))
            return
        self.supervision.started(action.name, time.monotonic())
        if action.attempt:
            log.info("restarted %s (restart %d)", action.name, action.attempt)

    def stop(self) -> None:
        """Newest first: simulators say goodbye, the api closes, rules and ingest store what
        they hold, then the database and the broker go."""
        self.supervision.stop()
        for name in reversed(self.order):
            self.children[name].stop()
        self.reporter.report(self.supervision)
        self.reporter.close()
