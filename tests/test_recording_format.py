"""The recording file format and record selection, without a broker."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from recorder.fileformat import (
    FRAME_HEADER_SIZE,
    MAGIC,
    Header,
    Record,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    read_all,
)
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


def test_truncated_anywhere_reads_every_complete_frame(tmp_path: Path) -> None:
    records = make_records(50)
    ends = write(tmp_path / "full.screc", records)
    data = (tmp_path / "full.screc").read_bytes()
    cuts = {ends[0], ends[0] + 3, ends[0] + FRAME_HEADER_SIZE - 1, ends[0] + FRAME_HEADER_SIZE,
            ends[1] + 1, (ends[1] + ends[2]) // 2, ends[2], ends[3] - 1, len(data) - 1, len(data)}
    for cut in sorted(cuts):
        path = tmp_path / f"cut{cut}.screc"
        path.write_bytes(data[:cut])
        complete = sum(1 for end in ends[1:] if end <= cut)
        with RecordingReader(path) as reader:
            got = list(reader)
            assert got == records[:10 * complete], f"cut at {cut}"
            assert bool(reader.problems) == (cut not in ends), f"cut at {cut}"


def test_a_damaged_frame_is_skipped(tmp_path: Path) -> None:
    records = make_records(30)
    ends = write(tmp_path / "r.screc", records)
    data = bytearray((tmp_path / "r.screc").read_bytes())
    data[ends[1] + FRAME_HEADER_SIZE + 5] ^= 0xFF  # the second frame's body
    (tmp_path / "body.screc").write_bytes(data)
    with RecordingReader(tmp_path / "body.screc") as reader:
        assert list(reader) == records[:10] + records[20:]
        assert any("damaged frame" in p for p in reader.problems)
    data = bytearray((tmp_path / "r.screc").read_bytes())
    data[ends[0] + 6] ^= 0xFF  # the first frame's header: found again at the next sync
    (tmp_path / "head.screc").write_bytes(data)
    with RecordingReader(tmp_path / "head.screc") as reader:
        assert list(reader) == records[10:]
        assert any("damaged data" in p for p in reader.problems)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a smartcity recording"),
    (b"hello world, not a recording", "not a smartcity recording"),
    (MAGIC + b"\x01\x00", "ends inside its header"),
    (MAGIC + struct.pack("<HI", 9, 2) + b"{}" + b"\0" * 4, "format version 9"),
    (MAGIC + struct.pack("<HI", 1, 2) + b"{}" + b"\0" * 4, "damaged"),
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
