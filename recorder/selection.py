"""Which records of a recording a replay uses: a time window, topic filters, topic remaps.

Pure apart from reading the file. Filters match the topics as recorded; remaps then rewrite
a matching topic prefix (``city=test``, ``city/flood=lab/flood``) on level boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from recorder.fileformat import Record
from recorder.reading import RecordingReader
from smartcity.durations import parse_duration
from smartcity.errors import ContractError, FieldProblem
from smartcity.topics import TopicFilter, check_publish_topic


@dataclass(frozen=True)
class TimePoint:
    """A position in a recording: an offset from its first record, or an absolute time."""

    offset_ns: int | None = None
    absolute_ns: int | None = None

    @classmethod
    def parse(cls, text: str) -> TimePoint:
        """``90s``/``5m``/``1h2m`` (offset) or RFC 3339 with a UTC offset (absolute)."""
        try:
            return cls(offset_ns=round(parse_duration(text) * 1e9))
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is neither an offset (90s, 5m, 1h2m) nor an RFC 3339 "
                             "time (2025-07-14T06:30:00+07:00)") from None
        if when.tzinfo is None:
            raise ValueError(f"{text!r} has no UTC offset (add 'Z' or '+07:00')")
        return cls(absolute_ns=round(when.timestamp() * 1e9))

    def resolve(self, first_ns: int) -> int:
        return self.absolute_ns if self.absolute_ns is not None else first_ns + (
            self.offset_ns or 0)


@dataclass(frozen=True)
class Remap:
    old: str
    new: str

    @classmethod
    def parse(cls, text: str) -> Remap:
        old, sep, new = text.partition("=")
        old, new = old.strip("/"), new.strip("/")
        if not sep or not old or not new:
            raise ContractError("invalid remap", [FieldProblem(
                "remap", f"{text!r} must look like OLD=NEW (a topic prefix each, no wildcards)")])
        check_publish_topic(old)
        check_publish_topic(new)
        return cls(old, new)

    def apply(self, topic: str) -> str | None:
        if topic == self.old:
            return self.new
        if topic.startswith(self.old) and topic[len(self.old)] == "/":
            return self.new + topic[len(self.old):]
        return None


@dataclass(frozen=True)
class Selection:
    start: TimePoint | None = None
    end: TimePoint | None = None
    filters: tuple[TopicFilter, ...] = ()
    remaps: tuple[Remap, ...] = ()
    # When replay starts after the beginning, publish first the last retained message of each
    # topic before the start: the broker state (device status, alerts) a viewer would have
    # seen at that moment.
    restore_state: bool = True

    def topic_for(self, topic: str) -> str | None:
        """The topic to replay ``topic`` on, or None if the filters leave it out."""
        if self.filters and not any(f.matches(topic) for f in self.filters):
            return None
        for remap in self.remaps:  # the first matching remap wins
            new = remap.apply(topic)
            if new is not None:
                return new
        return topic

    def window(self, first_ns: int) -> tuple[int | None, int | None]:
        return (self.start.resolve(first_ns) if self.start else None,
                self.end.resolve(first_ns) if self.end else None)


def select(reader: RecordingReader, selection: Selection,
           first_ns: int | None) -> Iterator[Record]:
    """The selected records, remapped, in order. With a start, the restored state comes
    first, timed as the first selected record."""
    start_ns, end_ns = selection.window(first_ns or 0)
    state: dict[str, Record] = {}
    started = False
    for info in reader.frame_infos():
        if end_ns is not None and info.first_ns > end_ns:
            return
        if start_ns is not None and info.last_ns < start_ns and not selection.restore_state:
            continue  # wholly before the window: skipped without decompressing
        for r in reader.frame_records(info):
            if end_ns is not None and r.arrival_ns > end_ns:
                return
            topic = selection.topic_for(r.topic)
            if topic is None:
                continue
            if topic != r.topic:
                r = r._replace(topic=topic)
            if start_ns is not None and r.arrival_ns < start_ns:
                if r.retain:
                    state[topic] = r
                continue
            if not started:
                started = True
                if selection.restore_state:
                    for s in state.values():
                        yield s._replace(arrival_ns=r.arrival_ns)
            yield r
