"""Reading a recording, and accounting exactly for what damage cost.

Nothing after the file header raises: a damaged stretch is skipped and described as a
:class:`Damage`, with the records it lost. How exactly that can be counted depends on what
survived (version 2 files; version 1 files give lower bounds):

- a frame whose body CRC fails: its header held, so its ``count`` is exact;
- a stretch whose frame headers are broken: the next intact frame's ``before`` says how many
  records the stretch held (at the end of the file, the close slot says it);
- a file cut short: the close slot, written when the recording stopped cleanly, holds the
  total. A file without it was never closed (the recorder was killed or the machine lost
  power): frames are fsynced one by one, so everything up to the last fsync is there, and an
  incomplete last frame is the write that was under way, not damage.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Self

from recorder.fileformat import (
    CLOSE_SLOT_SIZE,
    CRC,
    FILE_HEAD,
    FRAME_HEADS,
    MAGIC,
    MAX_FRAME_BYTES,
    READABLE_VERSIONS,
    SYNC,
    Header,
    Record,
    RecordingError,
    decode_close_slot,
    iter_records,
)

CORRUPT, TRUNCATED, UNFINISHED = "corrupt", "truncated", "unfinished"


class Damage(NamedTuple):
    offset: int
    kind: str  # corrupt, truncated, or unfinished (a never-closed file's last write: sound)
    records: int | None  # records lost; None when the file cannot say (version 1)
    text: str
    exact: bool = True  # False: ``records`` is only a lower bound

    @property
    def counted(self) -> bool:
        return self.records is not None and self.exact

    @property
    def is_loss(self) -> bool:
        return self.kind != UNFINISHED


class FrameInfo(NamedTuple):
    offset: int  # of the frame header
    record_count: int
    first_ns: int
    last_ns: int
    body_start: int
    clen: int
    ulen: int
    body_crc: int
    before: int | None  # records in earlier frames (version 2)


@dataclass
class Summary:
    header: Header
    frames: int
    records: int  # readable records
    first_ns: int | None
    last_ns: int | None
    damage: list[Damage] = field(default_factory=list)
    version: int = 2
    closed: tuple[int, int] | None = None  # (records, frames) a clean stop wrote

    @property
    def span_ns(self) -> int:
        return (self.last_ns - self.first_ns) if self.first_ns is not None and \
            self.last_ns is not None else 0

    @property
    def problems(self) -> list[str]:
        return [d.text for d in self.damage]

    @property
    def sound(self) -> bool:
        """Every record the file should hold is readable (an unfinished last write of a
        recording that was never closed is not a loss: it was never on disk)."""
        return not any(d.is_loss for d in self.damage)

    def lost(self) -> tuple[int, bool]:
        """(records lost, exact?); not exact when some damage cannot be counted."""
        losses = [d for d in self.damage if d.is_loss]
        return sum(d.records or 0 for d in losses), all(d.counted for d in losses)


def describe_loss(damage: list[Damage]) -> str | None:
    """"1,576 records lost (2 damaged stretches)", or None when nothing was lost."""
    losses = [d for d in damage if d.is_loss]
    if not losses:
        return None
    n = sum(d.records or 0 for d in losses)
    exact = all(d.counted for d in losses)
    what = f"{n:,} records lost" if exact else f"at least {n:,} records lost"
    return f"{what} ({len(losses)} damaged stretch{'es' if len(losses) != 1 else ''})"


class RecordingReader:
    """Reads a recording, tolerating a truncated or damaged tail.

    A file that is not a recording (or whose header is damaged) raises
    :class:`RecordingError` on opening; anything after that is skipped and described in
    :attr:`damage` (and, as text, :attr:`problems`).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.damage: list[Damage] = []
        with self.path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._data: mmap.mmap | bytes = (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                                             if size else b"")
        self.header, self.version, self._frames_start = self._read_header()
        self._head = FRAME_HEADS[self.version]
        self._frame_header_size = self._head.size + CRC.size
        self.closed: tuple[int, int] | None = None
        if self.version >= 2:
            self.closed = decode_close_slot(
                bytes(self._data[self._frames_start - CLOSE_SLOT_SIZE:self._frames_start]))

    @property
    def problems(self) -> list[str]:
        return [d.text for d in self.damage]

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_header(self) -> tuple[Header, int, int]:
        d = self._data
        if d[:len(MAGIC)] != MAGIC:
            raise RecordingError(f"{self.path} is not a smartcity recording (bad magic)")
        start = len(MAGIC)
        if len(d) < start + FILE_HEAD.size:
            raise RecordingError(f"{self.path}: the file ends inside its header")
        version, length = FILE_HEAD.unpack_from(d, start)
        if version not in READABLE_VERSIONS:
            raise RecordingError(f"{self.path} is format version {version}; this reader knows "
                                 f"versions {', '.join(map(str, READABLE_VERSIONS))}")
        end = start + FILE_HEAD.size + length
        frames_start = end + CRC.size + (CLOSE_SLOT_SIZE if version >= 2 else 0)
        if len(d) < frames_start:
            raise RecordingError(f"{self.path}: the file ends inside its header")
        (crc,) = CRC.unpack_from(d, end)
        if zlib.crc32(d[start:end]) != crc:
            raise RecordingError(f"{self.path}: the header is damaged (CRC mismatch)")
        return (Header.from_json(bytes(d[start + FILE_HEAD.size:end])), version, frames_start)

    def frame_infos(self) -> Iterator[FrameInfo]:
        """Every intact frame header, in file order; damaged stretches are skipped and noted
        in :attr:`damage` with the records they cost."""
        pos, size = self._frames_start, len(self._data)
        self.damage.clear()
        seen = 0  # records accounted for: in intact frame headers, or counted as lost
        while pos < size:
            info = self._frame_at(pos) if size - pos >= self._frame_header_size else None
            if info is None and size - pos >= self._frame_header_size:
                nxt = self._resync(pos + 1)
                skipped = (nxt if nxt is not None else size) - pos
                if nxt is not None:
                    after = self._frame_at(nxt)
                    assert after is not None
                    lost = max(0, after.before - seen) if after.before is not None else None
                elif self.closed is not None:
                    lost = max(0, self.closed[0] - seen)
                elif self.version >= 2:
                    # Nothing valid follows in a file never closed: what a machine losing
                    # power leaves past its last fsync (zeros, or a half-written header).
                    self._tail(pos, size, seen, None)
                    return
                else:
                    lost = None
                seen += lost or 0
                self._note(pos, CORRUPT, lost, f"damaged data at offset {pos}: {skipped} bytes "
                           f"skipped ({_records(lost)})")
                if nxt is None:
                    return
                pos = nxt
                continue
            if info is None or info.body_start + info.clen > size:
                self._tail(pos, size, seen, info)
                return
            if info.before is not None and info.before > seen:  # cannot happen after resync
                seen = info.before
            yield info
            seen += info.record_count
            pos = info.body_start + info.clen
        if self.closed is not None and self.closed[0] > seen:
            self._note(pos, TRUNCATED, self.closed[0] - seen,
                       f"truncated: the file ends at offset {size}, "
                       f"{self.closed[0] - seen} records short of what it was closed with")

    def _tail(self, pos: int, size: int, seen: int, info: FrameInfo | None) -> None:
        """The file ends inside a frame."""
        in_frame = info.record_count if info is not None else None
        if self.closed is not None:
            lost = self.closed[0] - seen
            self._note(pos, TRUNCATED, lost, f"truncated: the file ends inside the frame at "
                       f"offset {pos} ({lost} records lost)")
        elif self.version >= 2:
            held = f"{in_frame} records" if in_frame is not None else "its records"
            self._note(pos, UNFINISHED, in_frame,
                       f"the recording was not closed (killed, or the machine lost power): "
                       f"the last {size - pos} bytes are a frame that was being written "
                       f"({held} never reached the disk); everything before it is sound")
        else:
            self._note(pos, TRUNCATED, in_frame,
                       f"truncated tail at offset {pos}: {size - pos} bytes hold no complete "
                       f"frame ({_records(in_frame, at_least=True)}; a version 1 file does not "
                       "say how many records followed)", exact=False)

    def _note(self, offset: int, kind: str, records: int | None, text: str,
              exact: bool = True) -> None:
        self.damage.append(Damage(offset, kind, records, text, exact))

    def _frame_at(self, pos: int) -> FrameInfo | None:
        d, head = self._data, self._head
        if len(d) - pos < self._frame_header_size or d[pos:pos + 4] != SYNC:
            return None
        raw = d[pos:pos + head.size]
        (head_crc,) = CRC.unpack_from(d, pos + head.size)
        if zlib.crc32(raw) != head_crc:
            return None
        fields = head.unpack(raw)
        _, clen, ulen, count, first, last = fields[:6]
        before = fields[6] if self.version >= 2 else None
        body_crc = fields[-1]
        if clen > MAX_FRAME_BYTES or ulen > MAX_FRAME_BYTES:
            return None
        return FrameInfo(pos, count, first, last, pos + self._frame_header_size, clen, ulen,
                         body_crc, before)

    def _resync(self, pos: int) -> int | None:
        d = self._data
        while True:
            pos = d.find(SYNC, pos)
            if pos < 0:
                return None
            if self._frame_at(pos) is not None:
                return pos
            pos += 1

    def body_intact(self, info: FrameInfo) -> bool:
        return zlib.crc32(self._data[info.body_start:info.body_start + info.clen]) \
            == info.body_crc

    def frame_records(self, info: FrameInfo) -> Iterator[Record]:
        """The records of one frame. The CRC and the decompressed length are checked before
        the first record is given out; a damaged frame gives none, with the damage noted."""
        body = self._data[info.body_start:info.body_start + info.clen]
        try:
            if zlib.crc32(body) != info.body_crc:
                raise ValueError("CRC mismatch")
            raw = zlib.decompressobj().decompress(body, info.ulen + 1)
            if len(raw) != info.ulen:
                raise ValueError("wrong decompressed length")
        except (ValueError, zlib.error) as e:
            self._note(info.offset, CORRUPT, info.record_count,
                       f"damaged frame at offset {info.offset} skipped "
                       f"({info.record_count} records lost): {e}")
            return
        n = 0
        try:
            for record in iter_records(raw):
                n += 1
                yield record
        except (ValueError, struct.error) as e:
            self._note(info.offset, CORRUPT, info.record_count - n,
                       f"damaged frame at offset {info.offset}: {e} "
                       f"({info.record_count - n} records lost)")
            return
        if n != info.record_count:
            self._note(info.offset, CORRUPT, max(0, info.record_count - n),
                       f"frame at offset {info.offset} holds {n} records, its header says "
                       f"{info.record_count}")

    def records_of(self, info: FrameInfo) -> list[Record]:
        return list(self.frame_records(info))

    def __iter__(self) -> Iterator[Record]:
        for info in self.frame_infos():
            yield from self.frame_records(info)

    def summary(self) -> Summary:
        """Counts, time span and damage from the frame headers and body CRCs (no
        decompression)."""
        frames = records = 0
        first: int | None = None
        last: int | None = None
        corrupt: list[Damage] = []
        for info in self.frame_infos():
            if not self.body_intact(info):
                corrupt.append(Damage(info.offset, CORRUPT, info.record_count,
                                      f"damaged frame at offset {info.offset} "
                                      f"({info.record_count} records lost): CRC mismatch"))
                continue
            frames += 1
            records += info.record_count
            first = info.first_ns if first is None else min(first, info.first_ns)
            last = info.last_ns if last is None else max(last, info.last_ns)
        damage = sorted([*self.damage, *corrupt], key=lambda d: d.offset)
        return Summary(self.header, frames, records, first, last, damage, self.version,
                       self.closed)


def _records(n: int | None, *, at_least: bool = False) -> str:
    if n is None:
        return "records lost: unknown"
    return f"{'at least ' if at_least else ''}{n} records lost"


def read_all(path: Path | str) -> list[Record]:
    """Every readable record of a recording (for tests and small files)."""
    with RecordingReader(path) as reader:
        return list(reader)
