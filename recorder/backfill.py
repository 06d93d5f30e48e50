"""``replay --into-influx``: store a recording's telemetry in InfluxDB without the broker.

Every message goes through ingest's own :class:`~ingest.judge.Judge`, so a backfilled point is
exactly the point live ingest would have stored, and a message ingest would refuse is refused
here too, counted by reason. With ``rebase_time`` the *last* selected reading lands at now,
anchored on the time it states like a live replay (:mod:`recorder.anchor`): a backfill fills
the recent past, and anchoring the first reading at now would put the rest in the future,
where no dashboard looks.

Only InfluxDB is needed (:class:`BackfillSettings` reads no broker setting). A database that
does not exist, or credentials it refuses, stop the backfill at once with the database named:
retrying cannot fix them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field, field_validator

from ingest.judge import Accepted, Judge
from recorder.anchor import rebase_delta_ms
from recorder.reading import Damage, RecordingReader, describe_loss
from recorder.rebase import rebase_payload
from recorder.replay import ReplayStatus
from recorder.selection import Selection, select
from smartcity.city import load_city
from smartcity.settings import InfluxSettings, Settings
from smartcity.topics import DEFAULT_ROOT, TopicFilter, check_root, telemetry_filter, value_filter
from storage.influx import InfluxRejected, InfluxUnavailable
from storage.outbox import PointWriter

log = logging.getLogger(__name__)

RETRY_WAITS_S = (0.5, 2.0, 5.0)
NOT_RETRIED = {401, 403, 404}


class BackfillSettings(Settings):
    """What a backfill reads: InfluxDB, the city (for ingest's judge) and the topic root."""

    log_level: str = "INFO"
    city_file: Path | None = None
    scale: int = Field(default=1, ge=1, le=10_000)
    root: str = Field(default=DEFAULT_ROOT, alias="SMARTCITY_MQTT_ROOT")
    max_payload_bytes: int = Field(default=16_384, ge=256,
                                   alias="SMARTCITY_INGEST_MAX_PAYLOAD_BYTES")
    influx: InfluxSettings = Field(default_factory=InfluxSettings)

    @field_validator("root")
    @classmethod
    def _root(cls, v: str) -> str:
        return check_root(v)


class BackfillError(RuntimeError):
    pass


@dataclass
class BackfillResult:
    selected: int = 0
    not_telemetry: int = 0
    stored: int = 0
    refused_by_influx: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    damage: list[Damage] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [d.text for d in self.damage]

    @property
    def lost(self) -> str | None:
        return describe_loss(self.damage)

    def describe(self) -> str:
        text = (f"{self.stored} points stored from {self.selected} selected messages "
                f"({self.not_telemetry} not telemetry, {sum(self.rejected.values())} rejected, "
                f"{self.refused_by_influx} refused by InfluxDB)")
        if self.rejected:
            text += "; rejections: " + ", ".join(f"{reason} {n}" for reason, n in
                                                 self.rejected.most_common())
        if self.lost:
            text += f"; damaged recording: {self.lost} were skipped"
        return text


class Backfill:
    """One backfill. :meth:`run` blocks; :meth:`status` may be called from another thread
    (the progress display), in the same terms as a replay's."""

    def __init__(self, path: Path | str, judge: Judge, sink: PointWriter,
                 selection: Selection, *, rebase_time: bool = False, mark_source: bool = True,
                 batch_size: int = 5000, db: str = "") -> None:
        self.path = Path(path)
        self.judge, self.sink, self.selection = judge, sink, selection
        self.rebase_time, self.mark_source, self.batch_size = rebase_time, mark_source, batch_size
        self.db = db
        self.result = BackfillResult()
        self._state = "starting"
        self._started = 0.0
        self._ended: float | None = None
        self._position_ns = self._span_ns = 0

    def status(self) -> ReplayStatus:
        r = self.result
        end = self._ended or time.monotonic()
        return ReplayStatus(
            state=self._state, file=str(self.path), speed=None, sent=r.selected,
            passes_done=0, position_s=self._position_ns / 1e9, span_s=self._span_ns / 1e9,
            elapsed_s=end - self._started if self._started else 0.0, late_p50_ms=0.0,
            late_p99_ms=0.0, late_max_ms=0.0, unacked=0, problems=r.problems,
            lost=r.lost, stored=r.stored)

    def run(self) -> BackfillResult:
        self._started = time.monotonic()
        self._state = "running"
        try:
            self._run()
        except BaseException:
            self._state = "failed"
            raise
        finally:
            self._ended = time.monotonic()
        self._state = "finished"
        return self.result

    def _run(self) -> None:
        result = self.result
        telemetry = _Telemetry(telemetry_filter(self.judge.root), value_filter(self.judge.root))
        # An empty write: InfluxDB says whether the database exists and takes our credentials
        # before a single message is read.
        self._store(b"", 0)
        with RecordingReader(self.path) as reader:
            summary = reader.summary()
            first_ns = summary.first_ns
            start, end = self.selection.window(first_ns or 0)
            lo = max(start, first_ns or 0) if start is not None else first_ns or 0
            hi = min(end, summary.last_ns or 0) if end is not None else summary.last_ns or 0
            self._span_ns = max(0, hi - lo)
            delta_ms = rebase_delta_ms(reader, self.selection, first_ns, time.time_ns() //
                                       1_000_000, last=True) if self.rebase_time else 0
            lines: list[str] = []
            for r in select(reader, self.selection, first_ns):
                result.selected += 1
                self._position_ns = max(0, r.arrival_ns - lo)
                if not telemetry.matches(r.topic):
                    result.not_telemetry += 1
                    continue
                payload = rebase_payload(r.payload, delta_ms, mark_source=self.mark_source)
                # Formats without a time of their own (single values, relative SenML) are
                # stamped with when the message was recorded, moved like every other time.
                verdict = self.judge(r.topic, payload,
                                     now_ms=r.arrival_ns // 1_000_000 + delta_ms)
                if isinstance(verdict, Accepted):
                    if verdict.line is not None:  # a message that holds no readings
                        lines.append(verdict.line)
                else:
                    result.rejected[verdict.reason] += 1
                if len(lines) >= self.batch_size:
                    self._write(lines)
                    lines = []
            if lines:
                self._write(lines)
            result.damage = list(reader.damage)

    def _write(self, lines: list[str]) -> None:
        self._store(("\n".join(lines) + "\n").encode(), len(lines))

    def _store(self, body: bytes, points: int) -> None:
        result = self.result
        for wait in (*RETRY_WAITS_S, None):
            try:
                self.sink.write(body)
            except InfluxRejected as e:
                if not points:  # a server that refuses the empty probe write: no verdict
                    return
                # InfluxDB 1.x stores the good lines of a partial write; the error names the
                # rest.
                log.error("InfluxDB refused part of a batch of %d points: %s", points, e)
                result.refused_by_influx += points
                return
            except InfluxUnavailable as e:
                if e.status == 404:
                    raise BackfillError(f"InfluxDB has no database {self.db!r} (create it, or "
                                        f"set SMARTCITY_INFLUX_DB): {e}") from e
                if e.status in NOT_RETRIED:
                    raise BackfillError(f"InfluxDB refused access to database {self.db!r} "
                                        f"(SMARTCITY_INFLUX_USERNAME/PASSWORD): {e}") from e
                if wait is None:
                    raise BackfillError(f"InfluxDB unavailable, stopped after storing "
                                        f"{result.stored} points: {e}") from e
                log.warning("InfluxDB unavailable (%s); retrying in %.1fs", e, wait)
                time.sleep(wait)
                continue
            result.stored += points
            return


def ingest_judge(settings: BackfillSettings) -> Judge:
    """The judge live ingest runs with these settings: the same city, root and limits."""
    registry = load_city(settings.city_file, scale=settings.scale).registry()
    return Judge(registry, settings.root, settings.max_payload_bytes)


def backfill(path: Path | str, judge: Judge, sink: PointWriter, selection: Selection, *,
             rebase_time: bool = False, mark_source: bool = True,
             batch_size: int = 5000) -> BackfillResult:
    return Backfill(path, judge, sink, selection, rebase_time=rebase_time,
                    mark_source=mark_source, batch_size=batch_size).run()


@dataclass(frozen=True)
class _Telemetry:
    """Readings in any format: on the telemetry topic or a single-value topic below it."""

    whole: TopicFilter
    single: TopicFilter

    def matches(self, topic: str) -> bool:
        return self.whole.matches(topic) or self.single.matches(topic)
