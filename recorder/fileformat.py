"""The recording file format (``.screc``): compressed, append-only, crash-safe.

Layout (all integers little-endian)::

    file    = file-header close-slot frame*          (version 1: no close slot)
    file-header:
        magic      8 bytes   89 53 43 52 0D 0A 1A 0A   ("\\x89SCR\\r\\n\\x1a\\n")
        version    u16       2 (1 is still read)
        length     u32       byte length of the JSON that follows
        json       UTF-8 JSON object (see Header)
        crc        u32       CRC-32 of version, length and json
    close-slot (version 2), 28 bytes, zero until the recording is closed cleanly:
        tag        8 bytes   "SCCLOSED"
        records    u64       records in the whole file
        frames     u64       frames in the whole file
        crc        u32       CRC-32 of tag, records and frames
    frame:
        sync       4 bytes   "SCFR"
        clen       u32       length of the compressed body
        ulen       u32       length of the body once decompressed
        count      u32       records in the body
        first_ns   u64       arrival time of the body's first record
        last_ns    u64       arrival time of the body's last record
        before     u64       records in all earlier frames (version 2 only)
        body_crc   u32       CRC-32 of the compressed body
        head_crc   u32       CRC-32 of the header fields above (sync .. body_crc)
        body       clen bytes, a zlib stream holding `count` records
    record:
        arrival_ns u64       arrival at the recorder, nanoseconds since the Unix epoch
        flags      u8        bits 0-1 QoS, bit 2 retain, bit 3 initial (a retained message
                             the broker held when recording began)
        topic_len  u16, payload_len u32, then the topic (UTF-8) and the payload bytes

The writer appends frames, each flushed and fsynced, every ``flush_interval_s`` (0.5 s) or
``max_frame_records`` (1000) records, so a crash loses at most the unflushed tail. The one
write that is not an append is the close slot, filled once when the recording stops cleanly:
it sits before the frames, so a file cut short still says how many records it should hold.
``before`` lets a reader count exactly what a damaged stretch cost, and ``first_ns``/``last_ns``
let it seek by time without decompressing. Reading (and accounting for damage) is
:mod:`recorder.reading`; the prose version is ``docs/recording-format.md``.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, Self

import orjson

MAGIC = b"\x89SCR\r\n\x1a\n"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SYNC = b"SCFR"
CLOSED = b"SCCLOSED"

FILE_HEAD = struct.Struct("<HI")
# Everything before head_crc, per version.
FRAME_HEADS = {1: struct.Struct("<4sIIIQQI"), 2: struct.Struct("<4sIIIQQQI")}
CLOSE_SLOT = struct.Struct("<8sQQ")
CRC = struct.Struct("<I")
RECORD = struct.Struct("<QBHI")
CLOSE_SLOT_SIZE = CLOSE_SLOT.size + CRC.size
FRAME_HEADER_SIZE = FRAME_HEADS[VERSION].size + CRC.size

# Sanity bounds: a frame header whose CRC happens to hold cannot make the reader allocate
# gigabytes; MQTT itself caps a payload at 256 MiB.
MAX_FRAME_BYTES = 256 * 2**20
QOS_MASK, RETAIN, INITIAL = 0b0011, 0b0100, 0b1000


class RecordingError(Exception):
    """The file is not a recording this reader understands (bad magic, header, version)."""


class Record(NamedTuple):
    # A NamedTuple, not a dataclass: a long replay builds millions of these.
    arrival_ns: int
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    initial: bool = False


@dataclass(frozen=True)
class Header:
    """What a recording says about itself, as JSON in the file header."""

    started_ns: int
    broker: str = ""
    root: str = ""
    filters: tuple[str, ...] = ()
    note: str = ""
    tool: str = "smartcity record"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        from smartcity.models import format_ts

        return orjson.dumps({
            "format": "smartcity-recording", "started_ns": self.started_ns,
            "started": format_ts(self.started_ns // 1_000_000), "broker": self.broker,
            "root": self.root, "filters": list(self.filters), "note": self.note,
            "tool": self.tool, **self.extra})

    @classmethod
    def from_json(cls, data: bytes) -> Header:
        try:
            d = orjson.loads(data)
            known = {"format", "started", "started_ns", "broker", "root", "filters", "note",
                     "tool"}
            return cls(started_ns=int(d["started_ns"]), broker=str(d.get("broker", "")),
                       root=str(d.get("root", "")),
                       filters=tuple(str(f) for f in d.get("filters", [])),
                       note=str(d.get("note", "")), tool=str(d.get("tool", "")),
                       extra={k: v for k, v in d.items() if k not in known})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise RecordingError(f"the recording header is not valid: {e}") from None


def encode_header(header: Header) -> bytes:
    """The file header and its empty close slot."""
    js = header.to_json()
    body = FILE_HEAD.pack(VERSION, len(js)) + js
    return MAGIC + body + CRC.pack(zlib.crc32(body)) + bytes(CLOSE_SLOT_SIZE)


def encode_close_slot(records: int, frames: int) -> bytes:
    slot = CLOSE_SLOT.pack(CLOSED, records, frames)
    return slot + CRC.pack(zlib.crc32(slot))


def decode_close_slot(data: bytes) -> tuple[int, int] | None:
    """(records, frames) of a cleanly closed recording; None while it is still open (or was
    never closed: killed, or the machine lost power)."""
    if len(data) < CLOSE_SLOT_SIZE:
        return None
    tag, records, frames = CLOSE_SLOT.unpack_from(data)
    (crc,) = CRC.unpack_from(data, CLOSE_SLOT.size)
    if tag != CLOSED or zlib.crc32(data[:CLOSE_SLOT.size]) != crc:
        return None
    return records, frames


def encode_frame(records: list[Record], level: int = 6, *, before: int = 0) -> bytes:
    """One frame of ``records``; ``before`` is the number of records in earlier frames."""
    parts: list[bytes] = []
    for r in records:
        topic = r.topic.encode()
        flags = (r.qos & QOS_MASK) | (RETAIN if r.retain else 0) | (INITIAL if r.initial else 0)
        parts += (RECORD.pack(r.arrival_ns, flags, len(topic), len(r.payload)), topic,
                  r.payload)
    raw = b"".join(parts)
    body = zlib.compress(raw, level)
    head = FRAME_HEADS[VERSION].pack(SYNC, len(body), len(raw), len(records),
                                     min(r.arrival_ns for r in records),
                                     max(r.arrival_ns for r in records), before,
                                     zlib.crc32(body))
    return head + CRC.pack(zlib.crc32(head)) + body


def iter_records(raw: bytes) -> Iterator[Record]:
    """The records of a decompressed frame body, parsed one at a time as they are taken, so
    a replay spreads the cost of a frame over its messages instead of stalling on it. Raises
    ValueError (or struct.error) where the body is inconsistent."""
    pos, end, unpack = 0, len(raw), RECORD.unpack_from
    while pos < end:
        arrival, flags, tlen, plen = unpack(raw, pos)
        pos += RECORD.size
        if pos + tlen + plen > end:
            raise ValueError("record runs past the end of its frame")
        topic = raw[pos:pos + tlen].decode("utf-8", "replace")
        pos += tlen
        yield Record(arrival, topic, raw[pos:pos + plen], flags & QOS_MASK,
                     bool(flags & RETAIN), bool(flags & INITIAL))
        pos += plen


class RecordingWriter:
    """Appends records to a new recording, one compressed frame at a time.

    Guarantees: the header is on disk (flushed and fsynced) when the constructor returns;
    a frame is on disk once :meth:`flush` returns; frames already written are never
    rewritten. :meth:`close` fills the close slot last, after the final frame is on disk.
    Not thread-safe: one thread writes (the recorder's writer thread).
    """

    def __init__(self, path: Path | str, header: Header, *, overwrite: bool = False,
                 flush_interval_s: float = 0.5, max_frame_records: int = 1000,
                 max_frame_bytes: int = 2**20, fsync: bool = True) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.max_frame_records = max_frame_records
        self.max_frame_bytes = max_frame_bytes
        self.fsync = fsync
        self.records_written = 0
        self.frames_written = 0
        self.bytes_written = 0
        self._pending: list[Record] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._file: IO[bytes] = self.path.open("wb" if overwrite else "xb")
        head = encode_header(header)
        self._close_slot_at = len(head) - CLOSE_SLOT_SIZE
        self._write(head)

    def add(self, record: Record, now: float) -> None:
        """Buffer a record; ``now`` is a monotonic time in seconds, to age the buffer."""
        if not self._pending:
            self._pending_since = now
        self._pending.append(record)
        self._pending_bytes += len(record.payload) + len(record.topic) + RECORD.size
        if (len(self._pending) >= self.max_frame_records
                or self._pending_bytes >= self.max_frame_bytes):
            self.flush()

    def flush_due_in(self, now: float) -> float | None:
        """Seconds until the buffered records must be flushed (None: nothing buffered)."""
        if not self._pending:
            return None
        return max(0.0, self._pending_since + self.flush_interval_s - now)

    def flush(self) -> None:
        if not self._pending:
            return
        self._write(encode_frame(self._pending, before=self.records_written))
        self.records_written += len(self._pending)
        self.frames_written += 1
        self._pending.clear()
        self._pending_bytes = 0

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            os.pwrite(self._file.fileno(),
                      encode_close_slot(self.records_written, self.frames_written),
                      self._close_slot_at)
            if self.fsync:
                os.fsync(self._file.fileno())
            self._file.close()

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self.bytes_written += len(data)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
