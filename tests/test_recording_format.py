"""The recording file format and record selection, without a broker."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from recorder.fileformat import (
    CLOSE_SLOT_SIZE,
    CRC,
    FILE_HEAD,
    FRAME_HEADER_SIZE,
    FRAME_HEADS,
    MAGIC,
    Header,
    Record,
    RecordingError,
    RecordingWriter,
    encode_frame,
)
from recorder.reading import RecordingReader, read_all
from recorder.selection import Remap, Selection, TimePoint, select
from smartcity.durations import parse_duration
from smartcity.errors import ContractError
from smartcity.topics import TopicFilter

T0 = 1_752_449_400_000_000_000  # ns
SECOND = 1_000_000_000


def make_records(n: int, gap_ns: int = SECOND // 10) -> list[Record]:
    topics = ["city/flood/f1/telemetry", "city/traffic/r1/telemetry", "city/flood/f1/status"]
    return [Record(T0 + i * gap_ns, topics[i % 3], f'{{"seq":{i}}}'.encode(), qos=i % 3,
                   retain=topics[i % 3].endswith("status"), initial=i == 2)
            for i in range(n)]


def write(path: Path, records: list[Record], per_frame: int = 10) -> list[int]:
    """Write ``records`` in frames of ``per_frame``; return the file size after each frame."""
    ends = []
    with RecordingWriter(path, Header(started_ns=T0, broker="mqtt://127.0.0.1:1883",
                                      root="city", filters=("city/#",), note="test"),
                         max_frame_records=per_frame, fsync=False) as w:
        ends.append(w.bytes_written)
        for i, r in enumerate(records):
            w.add(r, now=float(i))
            if w.bytes_written != ends[-1]:
                ends.append(w.bytes_written)
    return ends


def test_round_trip(tmp_path: Path) -> None:
    records = [*make_records(95), Record(T0 + 10 * SECOND, "city/x", b"\x00\xff" * 5000, 1),
               Record(T0 + 11 * SECOND, "city/empty", b"")]
    write(tmp_path / "r.screc", records)
    assert read_all(tmp_path / "r.screc") == records
    with RecordingReader(tmp_path / "r.screc") as reader:
        summary = reader.summary()
        assert reader.header.root == "city" and reader.header.filters == ("city/#",)
        assert reader.header.note == "test" and reader.header.started_ns == T0
    assert (summary.records, summary.frames, summary.problems) == (97, 10, [])
    assert (summary.first_ns, summary.span_ns) == (T0, 11 * SECOND)


def test_a_frame_is_written_on_time(tmp_path: Path) -> None:
    w = RecordingWriter(tmp_path / "r.screc", Header(started_ns=T0), flush_interval_s=0.5,
                        fsync=False)
    w.add(make_records(1)[0], now=100.0)
    assert w.flush_due_in(100.2) == pytest.approx(0.3)
    assert read_all(tmp_path / "r.screc") == []  # buffered, not yet on disk
    w.flush()
    assert len(read_all(tmp_path / "r.screc")) == 1 and w.flush_due_in(101.0) is None
    w.close()


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    write(tmp_path / "r.screc", make_records(3))
    with pytest.raises(FileExistsError):
        RecordingWriter(tmp_path / "r.screc", Header(started_ns=T0))


def unclosed(data: bytes) -> bytes:
    """``data`` as a recorder killed before closing would have left it: no close slot."""
    at = data.index(b"SCCLOSED")
    return data[:at] + bytes(CLOSE_SLOT_SIZE) + data[at + CLOSE_SLOT_SIZE:]


def test_truncated_anywhere_reads_every_complete_frame_and_counts_the_loss(
        tmp_path: Path) -> None:
    records = make_records(50)
    ends = write(tmp_path / "full.screc", records)
    data = (tmp_path / "full.screc").read_bytes()
    cuts = {ends[0], ends[0] + 3, ends[0] + FRAME_HEADER_SIZE - 1, ends[0] + FRAME_HEADER_SIZE,
            ends[1] + 1, (ends[1] + ends[2]) // 2, ends[2], ends[3] - 1, len(data) - 1, len(data)}
    for cut in sorted(cuts):
        complete = sum(1 for end in ends[1:] if end <= cut)
        # Closed cleanly, then cut: the close slot says exactly what is missing.
        path = tmp_path / f"cut{cut}.screc"
        path.write_bytes(data[:cut])
        with RecordingReader(path) as reader:
            assert list(reader) == records[:10 * complete], f"cut at {cut}"
            summary = reader.summary()
        assert summary.lost() == (50 - 10 * complete, True), f"cut at {cut}"
        assert summary.sound == (cut == len(data)), f"cut at {cut}"
        # Never closed (killed mid-recording): sound up to the last complete frame.
        path = tmp_path / f"open{cut}.screc"
        path.write_bytes(unclosed(data)[:cut])
        with RecordingReader(path) as reader:
            assert list(reader) == records[:10 * complete], f"cut at {cut}"
            summary = reader.summary()
        assert summary.sound and summary.closed is None, f"cut at {cut}"
        assert [d.kind for d in summary.damage] == ([] if cut in ends else ["unfinished"])


def test_a_file_never_closed_is_sound_up_to_its_last_complete_frame_whatever_follows(
        tmp_path: Path) -> None:
    records = make_records(30)
    ends = write(tmp_path / "r.screc", records)
    data = unclosed((tmp_path / "r.screc").read_bytes())
    # After a power loss the file may end in zeros or in a header that was half written.
    for tail in (bytes(4096), data[ends[2]:ends[2] + FRAME_HEADER_SIZE - 5] + bytes(5)):
        (tmp_path / "lost.screc").write_bytes(data[:ends[2]] + tail)
        with RecordingReader(tmp_path / "lost.screc") as reader:
            assert list(reader) == records[:20]
            summary = reader.summary()
        assert summary.sound and [d.kind for d in summary.damage] == ["unfinished"]


def test_damaged_frames_are_skipped_and_their_records_counted(tmp_path: Path) -> None:
    records = make_records(50)
    ends = write(tmp_path / "r.screc", records)
    clean = (tmp_path / "r.screc").read_bytes()
    data = bytearray(clean)
    data[ends[1] + FRAME_HEADER_SIZE + 5] ^= 0xFF  # the second frame's body
    (tmp_path / "body.screc").write_bytes(data)
    with RecordingReader(tmp_path / "body.screc") as reader:
        assert list(reader) == records[:10] + records[20:]
        assert any("damaged frame" in p for p in reader.problems)
        assert reader.summary().lost() == (10, True)
    data = bytearray(clean)
    data[ends[0] + 6] ^= 0xFF  # the first frame's header: found again at the next sync
    data[ends[1] + 6] ^= 0xFF  # and the second's: one stretch of 20 records
    data[ends[3] + FRAME_HEADER_SIZE + 2] ^= 0xFF  # the fourth frame's body
    (tmp_path / "head.screc").write_bytes(data)
    with RecordingReader(tmp_path / "head.screc") as reader:
        assert list(reader) == records[20:30] + records[40:]
        assert any("damaged data" in p for p in reader.problems)
        summary = reader.summary()
    assert summary.lost() == (30, True) and not summary.sound
    assert (summary.records, summary.frames) == (20, 2)
    # The same damage in a file that was never closed, cut inside the last frame: the loss
    # in the middle is still exact, the unfinished write is not a loss.
    (tmp_path / "both.screc").write_bytes(unclosed(bytes(data))[:-3])
    with RecordingReader(tmp_path / "both.screc") as reader:
        summary = reader.summary()
    assert summary.lost() == (30, True)
    assert [d.kind for d in summary.damage] == ["corrupt", "corrupt", "unfinished"]


def write_version_1(path: Path, records: list[Record], per_frame: int = 10) -> None:
    """A recording as the version 1 writer made it: no close slot, no ``before``."""
    header = Header(started_ns=T0, root="city").to_json()
    body = FILE_HEAD.pack(1, len(header)) + header
    out = [MAGIC, body, CRC.pack(zlib.crc32(body))]
    for i in range(0, len(records), per_frame):
        frame = encode_frame(records[i:i + per_frame])  # version 2, then made version 1:
        head = FRAME_HEADS[2].unpack(frame[:FRAME_HEADS[2].size])
        v1 = FRAME_HEADS[1].pack(*head[:6], head[7])  # without ``before``
        out += [v1, CRC.pack(zlib.crc32(v1)), frame[FRAME_HEADER_SIZE:]]
    path.write_bytes(b"".join(out))


def test_version_1_files_are_still_read(tmp_path: Path) -> None:
    records = make_records(45)
    write_version_1(tmp_path / "v1.screc", records)
    with RecordingReader(tmp_path / "v1.screc") as reader:
        assert reader.version == 1
        assert list(reader) == records
        summary = reader.summary()
    assert summary.sound and summary.closed is None and summary.records == 45
    data = (tmp_path / "v1.screc").read_bytes()
    (tmp_path / "cut.screc").write_bytes(data[:len(data) // 2])
    with RecordingReader(tmp_path / "cut.screc") as reader:
        summary = reader.summary()
    lost, exact = summary.lost()
    assert not summary.sound and not exact and lost > 0  # a lower bound: v1 has no total
    assert "at least" in summary.problems[0]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a smartcity recording"),
    (b"hello world, not a recording", "not a smartcity recording"),
    (MAGIC + b"\x01\x00", "ends inside its header"),
    (MAGIC + struct.pack("<HI", 9, 2) + b"{}" + b"\0" * 4, "format version 9"),
    (MAGIC + struct.pack("<HI", 1, 2) + b"{}" + b"\0" * 4, "damaged"),
    (MAGIC + struct.pack("<HI", 2, 2) + b"{}" + b"\0" * 4, "ends inside its header"),
])
def test_not_a_recording(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(RecordingError, match=message):
        RecordingReader(tmp_path / "bad")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("1.5s", 1.5), ("250ms", 0.25), ("5m", 300), ("1h2m", 3720),
    ("1h2m3s", 3723), ("0", 0), (".5s", 0.5),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m", "-5", "nan", "5m3", "inf", "1h-2m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_time_points() -> None:
    assert TimePoint.parse("90s").resolve(T0) == T0 + 90 * SECOND
    assert TimePoint.parse("2025-07-14T06:30:05+07:00").resolve(0) == \
        TimePoint.parse("2025-07-13T23:30:05Z").resolve(0)
    with pytest.raises(ValueError, match="no UTC offset"):
        TimePoint.parse("2025-07-14T06:30:05")


@pytest.mark.parametrize(("remap", "topic", "after"), [
    ("city=lab", "city/flood/f1/telemetry", "lab/flood/f1/telemetry"),
    ("city/flood=lab/water", "city/flood/f1/telemetry", "lab/water/f1/telemetry"),
    ("city=lab", "city", "lab"),
    ("city=lab", "citylights/x", None),
    ("city/flood=x", "city/traffic/r1/telemetry", None),
])
def test_remap(remap: str, topic: str, after: str | None) -> None:
    assert Remap.parse(remap).apply(topic) == after


@pytest.mark.parametrize("remap", ["city", "=lab", "city=", "city/#=lab", "city=lab/+"])
def test_bad_remap(remap: str) -> None:
    with pytest.raises(ContractError):
        Remap.parse(remap)


def _select(path: Path, selection: Selection) -> list[Record]:
    with RecordingReader(path) as reader:
        return list(select(reader, selection, reader.summary().first_ns))


def test_selection(tmp_path: Path) -> None:
    records = make_records(60)  # 0.1 s apart, status every third
    write(tmp_path / "r.screc", records)
    flood = TopicFilter("city/flood/+/telemetry")
    got = _select(tmp_path / "r.screc", Selection(filters=(flood,),
                                                   remaps=(Remap.parse("city=lab"),)))
    assert [r.payload for r in got] == [r.payload for r in records
                                        if r.topic == "city/flood/f1/telemetry"]
    assert {r.topic for r in got} == {"lab/flood/f1/telemetry"}

    window = Selection(start=TimePoint.parse("2s"), end=TimePoint.parse("3s"),
                       restore_state=False)
    assert _select(tmp_path / "r.screc", window) == records[20:31]

    # From 2 s on, the last retained message before it comes first, timed as the first one.
    got = _select(tmp_path / "r.screc", Selection(start=TimePoint.parse("2050ms")))
    assert got[0] == records[20]._replace(arrival_ns=records[21].arrival_ns)
    assert got[1:] == records[21:]
    absolute = TimePoint(absolute_ns=T0 + 5 * SECOND)
    assert _select(tmp_path / "r.screc", Selection(end=absolute)) == records[:51]


def test_the_package_exports_what_it_lists() -> None:
    import recorder

    for name in recorder.__all__:
        assert getattr(recorder, name) is not None
    with pytest.raises(AttributeError):
        recorder.nothing_like_this  # noqa: B018
