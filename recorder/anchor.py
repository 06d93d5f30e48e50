"""Where ``--rebase-time`` anchors a recording: one rule for live replay and backfill alike.

The shift is "the wall time the anchor should land at, minus the time the anchor reading
states". The time a reading *states* (its ``ts``, a SenML ``bt``) is what dashboards and
rules see, and for a recording of a sped-up simulation it runs far ahead of the time the
messages arrived at the recorder; anchoring on arrival would put a fourteen-hour storm
recorded in 100 s fourteen hours into the future. Live replay anchors the selection's first
reading at the moment it is published; a backfill anchors the last one at now, so the
stored data ends now (the recent past, where the boards look).

Readings on a telemetry topic are preferred: status messages carry the wall clock of their
connection, not a simulation's. When no reading states a time, the anchor is the first (or
last) time any payload states, and failing that its arrival.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from recorder.fileformat import Record
from recorder.reading import RecordingReader
from recorder.rebase import payload_time_ms
from recorder.selection import Selection, select

LOOK = 1000  # records examined from the anchoring end before settling for a fallback


def rebase_delta_ms(reader: RecordingReader, selection: Selection, first_ns: int | None,
                    land_at_ms: int, *, last: bool = False) -> int:
    """The shift that puts the selection's first (``last``: last) reading at
    ``land_at_ms``; 0 when the selection is empty."""
    records = _from_the_end(reader, selection, first_ns) if last \
        else select(reader, selection, first_ns)
    anchor = stated_anchor_ms(records)
    return land_at_ms - anchor if anchor is not None else 0


def stated_anchor_ms(records: Iterable[Record], look: int = LOOK) -> int | None:
    """The time the first telemetry reading among ``records`` states; else the first time
    any of them states; else the first one's arrival (ms)."""
    stated_any: int | None = None
    arrival: int | None = None
    for i, r in enumerate(records):
        if i >= look:
            break
        arrival = arrival if arrival is not None else r.arrival_ns // 1_000_000
        stated = payload_time_ms(r.payload)
        if stated is not None and r.topic.endswith("/telemetry"):
            return stated
        stated_any = stated_any if stated_any is not None else stated
    return stated_any if stated_any is not None else arrival


def _from_the_end(reader: RecordingReader, selection: Selection,
                  first_ns: int | None) -> Iterator[Record]:
    """The selected records, newest first, decompressing only the frames it reaches."""
    start_ns, end_ns = selection.window(first_ns or 0)
    for info in reversed(list(reader.frame_infos())):
        if (end_ns is not None and info.first_ns > end_ns) or \
                (start_ns is not None and info.last_ns < start_ns):
            continue
        for r in reversed(reader.records_of(info)):
            if (end_ns is not None and r.arrival_ns > end_ns) or \
                    (start_ns is not None and r.arrival_ns < start_ns):
                continue
            topic = selection.topic_for(r.topic)
            if topic is not None:
                yield r._replace(topic=topic)
