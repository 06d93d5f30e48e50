"""Taking a batch off a work queue: by size and by time. Used by the outbox's writer thread and
by the rules service's worker, which both turn a stream of items into batches.
"""

from __future__ import annotations

import queue
import time
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.005


def collect(work: queue.SimpleQueue[T | None], size: int, interval_s: float,
            first_wait_s: float = 0.5) -> tuple[list[T], bool]:
    """Wait up to ``first_wait_s`` for the first item (so an idle thread still turns, e.g. to
    drain a spool), then take items until the batch holds ``size`` or the first has waited
    ``interval_s``. Returns the batch and whether ``None`` (stop) was taken."""
    batch: list[T] = []
    try:
        first = work.get(timeout=first_wait_s)
    except queue.Empty:
        return batch, False
    if first is None:
        return batch, True
    batch.append(first)
    deadline = time.monotonic() + interval_s
    while len(batch) < size:
        try:
            item = work.get_nowait()
        except queue.Empty:
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            # Poll on a short tick: a blocking get() would wake this thread for every item
            # and hand the GIL back and forth with the producing thread (measured in ingest:
            # two context switches per message, a fifth of its throughput).
            time.sleep(min(POLL_S, wait))
            continue
        if item is None:
            return batch, True
        batch.append(item)
    return batch, False
