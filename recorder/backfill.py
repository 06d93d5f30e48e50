"""``replay --into-influx``: store a recording's telemetry in InfluxDB without the broker.

Every message goes through ingest's own :class:`~ingest.judge.Judge`, so a backfilled point is
exactly the point live ingest would have stored, and a message ingest would refuse is refused
here too, counted by reason. With ``rebase_time`` the *last* selected reading lands at now (a
backfill fills the recent past; anchoring the first reading at now would put the rest in the
future, where no dashboard looks).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ingest.judge import Accepted, Judge
from recorder.fileformat import RecordingReader
from recorder.rebase import rebase_payload
from recorder.selection import Selection, select
from smartcity.city import load_city
from smartcity.settings import IngestSettings
from smartcity.topics import TopicFilter, telemetry_filter, value_filter
from storage.influx import InfluxRejected, InfluxUnavailable
from storage.outbox import PointWriter

log = logging.getLogger(__name__)

RETRY_WAITS_S = (0.5, 2.0, 5.0)


class BackfillError(RuntimeError):
    pass


@dataclass
class BackfillResult:
    selected: int = 0
    not_telemetry: int = 0
    stored: int = 0
    refused_by_influx: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (f"{self.stored} points stored from {self.selected} selected messages "
                f"({self.not_telemetry} not telemetry, {sum(self.rejected.values())} rejected, "
                f"{self.refused_by_influx} refused by InfluxDB)")
        if self.rejected:
            text += "; rejections: " + ", ".join(f"{reason} {n}" for reason, n in
                                                 self.rejected.most_common())
        return text


def ingest_judge(settings: IngestSettings) -> Judge:
    """The judge live ingest runs with these settings: the same city, root and limits."""
    registry = load_city(settings.city_file, scale=settings.scale).registry()
    return Judge(registry, settings.mqtt.root, settings.max_payload_bytes)


def backfill(path: Path | str, judge: Judge, sink: PointWriter, selection: Selection, *,
             rebase_time: bool = False, mark_source: bool = True,
             batch_size: int = 5000) -> BackfillResult:
    result = BackfillResult()
    telemetry = _Telemetry(telemetry_filter(judge.root), value_filter(judge.root))
    with RecordingReader(path) as reader:
        first_ns = reader.summary().first_ns
        delta_ms = 0
        if rebase_time:
            last = _last_telemetry_ns(reader, selection, first_ns, telemetry)
            delta_ms = round((time.time_ns() - last) / 1e6) if last is not None else 0
        lines: list[str] = []
        for r in select(reader, selection, first_ns):
            result.selected += 1
            if not telemetry.matches(r.topic):
                result.not_telemetry += 1
                continue
            payload = rebase_payload(r.payload, delta_ms, mark_source=mark_source)
            # Formats without a time of their own (single values, relative SenML) are stamped
            # with when the message was recorded, moved like every other time when rebasing.
            verdict = judge(r.topic, payload, now_ms=r.arrival_ns // 1_000_000 + delta_ms)
            if isinstance(verdict, Accepted):
                lines.append(verdict.line)
            else:
                result.rejected[verdict.reason] += 1
            if len(lines) >= batch_size:
                _write(sink, lines, result)
                lines = []
        if lines:
            _write(sink, lines, result)
        result.problems = list(reader.problems)
    return result


@dataclass(frozen=True)
class _Telemetry:
    """Readings in any format: on the telemetry topic or a single-value topic below it."""

    whole: TopicFilter
    single: TopicFilter

    def matches(self, topic: str) -> bool:
        return self.whole.matches(topic) or self.single.matches(topic)


def _last_telemetry_ns(reader: RecordingReader, selection: Selection, first_ns: int | None,
                       telemetry: _Telemetry) -> int | None:
    last = None
    for r in select(reader, selection, first_ns):
        if telemetry.matches(r.topic):
            last = r.arrival_ns if last is None else max(last, r.arrival_ns)
    return last


def _write(sink: PointWriter, lines: list[str], result: BackfillResult) -> None:
    body = ("\n".join(lines) + "\n").encode()
    for wait in (*RETRY_WAITS_S, None):
        try:
            sink.write(body)
        except InfluxRejected as e:
            # InfluxDB 1.x stores the good lines of a partial write; the error names the rest.
            log.error("InfluxDB refused part of a batch of %d points: %s", len(lines), e)
            result.refused_by_influx += len(lines)
            return
        except InfluxUnavailable as e:
            if wait is None:
                raise BackfillError(f"InfluxDB unavailable, stopped after storing "
                                    f"{result.stored} points: {e}") from e
            log.warning("InfluxDB unavailable (%s); retrying in %.1fs", e, wait)
            time.sleep(wait)
            continue
        result.stored += len(lines)
        return
