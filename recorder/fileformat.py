"""The recording file format (``.screc``): compressed, append-only, crash-safe.

Layout (all integers little-endian)::

    file    = file-header frame*
    file-header:
        magic      8 bytes   89 53 43 52 0D 0A 1A 0A   ("\\x89SCR\\r\\n\\x1a\\n")
        version    u16       1
        length     u32       byte length of the JSON that follows
        json       UTF-8 JSON object (see Header)
        crc        u32       CRC-32 of version, length and json
    frame:
        sync       4 bytes   "SCFR"
        clen       u32       length of the compressed body
        ulen       u32       length of the body once decompressed
        count      u32       records in the body
        first_ns   u64       arrival time of the body's first record
        last_ns    u64       arrival time of the body's last record
        body_crc   u32       CRC-32 of the compressed body
        head_crc   u32       CRC-32 of the 36 bytes above (sync .. body_crc)
        body       clen bytes, a zlib stream holding `count` records
    record:
        arrival_ns u64       arrival at the recorder, nanoseconds since the Unix epoch
        flags      u8        bits 0-1 QoS, bit 2 retain, bit 3 initial (a retained message
                             the broker held when recording began)
        topic_len  u16, payload_len u32, then the topic (UTF-8) and the payload bytes

The writer only appends. It writes and flushes a frame every ``flush_interval_s`` (0.5 s) or
``max_frame_records`` (1000) records, so a crash loses at most the unflushed tail. Every frame
decodes on its own: the reader stops quietly at a truncated tail, and skips a corrupt frame
(bad CRC) by scanning for the next ``SCFR`` whose header CRC holds. ``first_ns``/``last_ns``
let a reader seek by time without decompressing. The prose version is
``docs/recording-format.md``.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, Self

import orjson

MAGIC = b"\x89SCR\r\n\x1a\n"
VERSION = 1
SYNC = b"SCFR"

_FILE_HEAD = struct.Struct("<HI")
_FRAME_HEAD = struct.Struct("<4sIIIQQI")  # everything before head_crc
_CRC = struct.Struct("<I")
_RECORD = struct.Struct("<QBHI")
FRAME_HEADER_SIZE = _FRAME_HEAD.size + _CRC.size

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
    js = header.to_json()
    body = _FILE_HEAD.pack(VERSION, len(js)) + js
    return MAGIC + body + _CRC.pack(zlib.crc32(body))


def encode_frame(records: list[Record], level: int = 6) -> bytes:
    parts: list[bytes] = []
    for r in records:
        topic = r.topic.encode()
        flags = (r.qos & QOS_MASK) | (RETAIN if r.retain else 0) | (INITIAL if r.initial else 0)
        parts += (_RECORD.pack(r.arrival_ns, flags, len(topic), len(r.payload)), topic,
                  r.payload)
    raw = b"".join(parts)
    body = zlib.compress(raw, level)
    head = _FRAME_HEAD.pack(SYNC, len(body), len(raw), len(records),
                            min(r.arrival_ns for r in records),
                            max(r.arrival_ns for r in records), zlib.crc32(body))
    return head + _CRC.pack(zlib.crc32(head)) + body


def iter_records(raw: bytes) -> Iterator[Record]:
    """The records of a decompressed frame body, parsed one at a time as they are taken, so
    a replay spreads the cost of a frame over its messages instead of stalling on it. Raises
    ValueError (or struct.error) where the body is inconsistent."""
    pos, end, unpack = 0, len(raw), _RECORD.unpack_from
    while pos < end:
        arrival, flags, tlen, plen = unpack(raw, pos)
        pos += _RECORD.size
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
    a frame is on disk once :meth:`flush` returns; nothing already written is ever rewritten.
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
        self._write(encode_header(header))

    def add(self, record: Record, now: float) -> None:
        """Buffer a record; ``now`` is a monotonic time in seconds, to age the buffer."""
        if not self._pending:
            self._pending_since = now
        self._pending.append(record)
        self._pending_bytes += len(record.payload) + len(record.topic) + _RECORD.size
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
        self._write(encode_frame(self._pending))
        self.records_written += len(self._pending)
        self.frames_written += 1
        self._pending.clear()
        self._pending_bytes = 0

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
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


class FrameInfo(NamedTuple):
    offset: int  # of the frame header
    record_count: int
    first_ns: int
    last_ns: int
    body_start: int
    clen: int
    ulen: int
    body_crc: int


@dataclass
class Summary:
    header: Header
    frames: int
    records: int
    first_ns: int | None
    last_ns: int | None
    problems: list[str]

    @property
    def span_ns(self) -> int:
        return (self.last_ns - self.first_ns) if self.first_ns is not None and \
            self.last_ns is not None else 0


class RecordingReader:
    """Reads a recording, tolerating a truncated or damaged tail.

    Nothing after the file header raises: damage is skipped and described in
    :attr:`problems`. A file that is not a recording (or whose header is damaged) raises
    :class:`RecordingError` on opening.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.problems: list[str] = []
        with self.path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._data: mmap.mmap | bytes = (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                                             if size else b"")
        self.header, self._frames_start = self._read_header()

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_header(self) -> tuple[Header, int]:
        d = self._data
        if d[:len(MAGIC)] != MAGIC:
            raise RecordingError(f"{self.path} is not a smartcity recording (bad magic)")
        start = len(MAGIC)
        if len(d) < start + _FILE_HEAD.size:
            raise RecordingError(f"{self.path}: the file ends inside its header")
        version, length = _FILE_HEAD.unpack_from(d, start)
        if version != VERSION:
            raise RecordingError(f"{self.path} is format version {version}; this reader knows "
                                 f"version {VERSION}")
        end = start + _FILE_HEAD.size + length
        if len(d) < end + _CRC.size:
            raise RecordingError(f"{self.path}: the file ends inside its header")
        (crc,) = _CRC.unpack_from(d, end)
        if zlib.crc32(d[start:end]) != crc:
            raise RecordingError(f"{self.path}: the header is damaged (CRC mismatch)")
        return Header.from_json(bytes(d[start + _FILE_HEAD.size:end])), end + _CRC.size

    def frame_infos(self) -> Iterator[FrameInfo]:
        """Every intact frame header, in file order; damaged stretches are skipped."""
        pos, size = self._frames_start, len(self._data)
        self.problems.clear()
        while pos < size:
            if size - pos < FRAME_HEADER_SIZE:
                self.problems.append(f"truncated tail: the last {size - pos} bytes hold no "
                                     "complete frame")
                return
            info = self._frame_at(pos)
            if info is None:
                nxt = self._resync(pos + 1)
                self.problems.append(f"damaged data at offset {pos}: "
                                     f"{(nxt if nxt is not None else size) - pos} bytes skipped")
                if nxt is None:
                    return
                pos = nxt
                continue
            if info.body_start + info.clen > size:
                self.problems.append(f"truncated tail: the frame at offset {pos} is incomplete "
                                     f"({info.record_count} records lost)")
                return
            yield info
            pos = info.body_start + info.clen

    def _frame_at(self, pos: int) -> FrameInfo | None:
        d = self._data
        if len(d) - pos < FRAME_HEADER_SIZE or d[pos:pos + 4] != SYNC:
            return None
        head = d[pos:pos + _FRAME_HEAD.size]
        (head_crc,) = _CRC.unpack_from(d, pos + _FRAME_HEAD.size)
        if zlib.crc32(head) != head_crc:
            return None
        _, clen, ulen, count, first, last, body_crc = _FRAME_HEAD.unpack(head)
        if clen > MAX_FRAME_BYTES or ulen > MAX_FRAME_BYTES:
            return None
        return FrameInfo(pos, count, first, last, pos + FRAME_HEADER_SIZE, clen, ulen, body_crc)

    def _resync(self, pos: int) -> int | None:
        d = self._data
        while True:
            pos = d.find(SYNC, pos)
            if pos < 0:
                return None
            if self._frame_at(pos) is not None:
                return pos
            pos += 1

    def frame_records(self, info: FrameInfo) -> Iterator[Record]:
        """The records of one frame. The CRC and the decompressed length are checked before
        the first record is given out; a damaged frame gives none, with a problem noted."""
        body = self._data[info.body_start:info.body_start + info.clen]
        try:
            if zlib.crc32(body) != info.body_crc:
                raise ValueError("CRC mismatch")
            raw = zlib.decompressobj().decompress(body, info.ulen + 1)
            if len(raw) != info.ulen:
                raise ValueError("wrong decompressed length")
        except (ValueError, zlib.error) as e:
            self.problems.append(f"damaged frame at offset {info.offset} skipped "
                                 f"({info.record_count} records): {e}")
            return
        n = 0
        try:
            for record in iter_records(raw):
                n += 1
                yield record
        except (ValueError, struct.error) as e:
            self.problems.append(f"damaged frame at offset {info.offset}: {e}")
            return
        if n != info.record_count:
            self.problems.append(f"frame at offset {info.offset} holds {n} records, its header "
                                 f"says {info.record_count}")

    def __iter__(self) -> Iterator[Record]:
        for info in self.frame_infos():
            yield from self.frame_records(info)

    def summary(self) -> Summary:
        """Counts and time span from the frame headers alone (no decompression)."""
        frames = records = 0
        first: int | None = None
        last: int | None = None
        for info in self.frame_infos():
            frames += 1
            records += info.record_count
            first = info.first_ns if first is None else min(first, info.first_ns)
            last = info.last_ns if last is None else max(last, info.last_ns)
        return Summary(self.header, frames, records, first, last, list(self.problems))


def read_all(path: Path | str) -> list[Record]:
    """Every readable record of a recording (for tests and small files)."""
    with RecordingReader(path) as reader:
        return list(reader)
