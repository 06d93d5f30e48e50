"""Record what the broker carries and replay it: on schedule, faster, looped, or into InfluxDB.

``smartcity record`` / ``smartcity replay`` are :mod:`recorder.commands`; the api starts a
replay with :class:`Replayer`. The file format is described in :mod:`recorder.fileformat`.

The names below are imported on first use, so building the ``smartcity`` command line does
not pay for paho, ingest and httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recorder.backfill import BackfillResult, backfill
    from recorder.fileformat import Header, Record, RecordingError, RecordingWriter
    from recorder.reading import Damage, RecordingReader, Summary, read_all
    from recorder.rebase import rebase_payload
    from recorder.record import Recorder, RecordError, RecordOptions, RecordStats, record
    from recorder.replay import Replayer, ReplayOptions, ReplayStatus
    from recorder.selection import Remap, Selection, TimePoint

_MODULES = {
    "recorder.backfill": ("BackfillResult", "backfill"),
    "recorder.fileformat": ("Header", "Record", "RecordingError", "RecordingWriter"),
    "recorder.reading": ("Damage", "RecordingReader", "Summary", "read_all"),
    "recorder.rebase": ("rebase_payload",),
    "recorder.record": ("RecordError", "RecordOptions", "RecordStats", "Recorder", "record"),
    "recorder.replay": ("ReplayOptions", "ReplayStatus", "Replayer"),
    "recorder.selection": ("Remap", "Selection", "TimePoint"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "BackfillResult",
    "Damage",
    "Header",
    "Record",
    "RecordError",
    "RecordOptions",
    "RecordStats",
    "Recorder",
    "RecordingError",
    "RecordingReader",
    "RecordingWriter",
    "Remap",
    "ReplayOptions",
    "ReplayStatus",
    "Replayer",
    "Selection",
    "Summary",
    "TimePoint",
    "backfill",
    "read_all",
    "rebase_payload",
    "record",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'recorder' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
