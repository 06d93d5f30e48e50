"""Ingest's counters, reported in the log and stored in InfluxDB for the operations board."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from smartcity.errors import Reason
from storage.outbox import WriteStats

_NOT_FIELD_CHARS = re.compile(r"[^a-z0-9]+")


def reason_field(reason: str) -> str:
    """The ``ingest_stats`` field counting one rejection reason: ``rejected_`` and the reason
    in lower case with every run of other characters as ``_`` (``rejected_unknown_device``),
    so it needs no escaping in line protocol and the operations board can select
    ``/^rejected_/``."""
    return "rejected_" + _NOT_FIELD_CHARS.sub("_", reason.lower()).strip("_")


# Reported from the start, at 0, so the first refusal of each kind is a difference to chart.
KNOWN_REASONS = (*(str(r) for r in Reason), "internal error")


@dataclass
class Stats(WriteStats):
    # The outbox's counters, and the MQTT loop's; each written by one thread only.
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    seq_gaps: int = 0
    seq_repeats: int = 0
    _last_seq: dict[str, int] = field(default_factory=dict, repr=False)

    def record_seq(self, device_id: str, seq: int) -> None:
        """Count readings lost upstream (a jump in seq) and repeats (a redelivery, or a device
        that restarted its counter)."""
        last = self._last_seq.get(device_id)
        if last is not None:
            if seq > last + 1:
                self.seq_gaps += seq - last - 1
            elif seq <= last:
                self.seq_repeats += 1
        self._last_seq[device_id] = seq

    def snapshot(self) -> dict[str, float]:
        """Cumulative counters since ingest started (the operations board charts their
        differences), with one ``rejected_<reason>`` counter per reason."""
        # dict() copies in one step: the MQTT thread may count a new reason meanwhile.
        by_reason = dict.fromkeys(KNOWN_REASONS, 0) | dict(self.rejected_by_reason)
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "stored": self.stored,
            "spooled": self.spooled,
            "unspooled": self.unspooled,
            "dead_lettered": self.dead_lettered,
            "write_errors": self.write_errors,
            "batches": self.batches,
            "write_seconds": round(self.write_seconds, 6),
            "seq_gaps": self.seq_gaps,
            "seq_repeats": self.seq_repeats,
            **{reason_field(r): n for r, n in by_reason.items()},
        }
