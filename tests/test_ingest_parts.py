"""Ingest's pure parts: the judge, line protocol, the spool, the report limiter, seq tracking."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from ingest.judge import Accepted, Judge, Rejection
from ingest.service import ReportLimiter
from ingest.stats import Stats
from smartcity.city import load_city
from smartcity.models import Source
from smartcity.registry import DeviceInfo, Registry
from smartcity.topics import Domain
from storage.lineprotocol import (
    LineProtocolError,
    escape_measurement,
    escape_string_field,
    escape_tag,
    format_value,
)
from storage.spool import Spool

TS = 1795316645123


@pytest.fixture
def judge() -> Judge:
    return Judge(load_city().registry(), "city", max_payload_bytes=1024)


def test_the_judge_turns_a_reading_into_one_line(judge: Judge) -> None:
    verdict = judge("city/traffic/nguyen-huu-canh/telemetry",
                    orjson.dumps({"ts": TS, "seq": 9, "speed_kmh": 18, "source": "simulated"}))
    assert isinstance(verdict, Accepted)
    assert verdict.line == ("traffic,device_id=nguyen-huu-canh,site=nguyen-huu-canh,"
                            "source=simulated,ward=thanh-my-tay speed_kmh=18.0,seq=9i "
                            f"{TS}")


@pytest.mark.parametrize(("topic", "body", "reason", "device"), [
    ("city/flood/flood-thao-dien/telemetry", b"x" * 1025, "payload too large", "flood-thao-dien"),
    ("city/flood/ghost/telemetry", orjson.dumps({"ts": TS, "seq": 1, "water_level_cm": 1}),
     "unknown device", "ghost"),
    ("city/home/flood-thao-dien/telemetry", orjson.dumps({"ts": TS, "seq": 1, "power_w": 1}),
     "wrong domain", "flood-thao-dien"),
    ("city/flood/BAD ID/telemetry", b"{}", "invalid id", None),
    ("other/flood/x/telemetry", b"{}", "topic outside the city root", None),
])
def test_the_judge_says_why(judge: Judge, topic: str, body: bytes, reason: str,
                            device: str | None) -> None:
    verdict = judge(topic, body)
    assert isinstance(verdict, Rejection)
    assert (verdict.reason, verdict.device_id) == (reason, device)


def test_a_registry_entry_with_a_line_break_cannot_reach_line_protocol() -> None:
    # Ids are checked on the way into the registry; this is the second line of defence.
    bad = DeviceInfo.model_construct(device_id="f1", domain=Domain.FLOOD, name="F", ward="w\n1",
                                     site="f1", lat=0.0, lon=0.0, source=Source.LIVE)
    judge = Judge(Registry([bad]), "city", 1024)
    verdict = judge("city/flood/f1/telemetry",
                    orjson.dumps({"ts": TS, "seq": 1, "water_level_cm": 1}))
    assert isinstance(verdict, Rejection) and verdict.reason == "unstorable value"


@pytest.mark.parametrize(("escape", "raw", "escaped"), [
    (escape_tag, "a b,c=d", r"a\ b\,c\=d"),
    (escape_tag, "back\\slash", "back\\\\slash"),
    (escape_measurement, "my flood,x", r"my\ flood\,x"),
    (escape_string_field, 'say "hi"', r'"say \"hi\""'),
])
def test_escaping(escape: object, raw: str, escaped: str) -> None:
    assert escape(raw) == escaped  # type: ignore[operator]


@pytest.mark.parametrize("escape", [escape_tag, escape_measurement, escape_string_field])
def test_line_breaks_are_refused_not_escaped(escape: object) -> None:
    with pytest.raises(LineProtocolError):
        escape("a\nb")  # type: ignore[operator]
    with pytest.raises(LineProtocolError):
        escape("a\rb")  # type: ignore[operator]


@pytest.mark.parametrize(("value", "text"), [(1.5, "1.5"), (3.0, "3.0"), (7, "7i"),
                                            (True, "true"), (1e-7, "1e-07")])
def test_field_values(value: object, text: str) -> None:
    assert format_value(value) == text  # type: ignore[arg-type]


def test_the_spool_keeps_batches_in_order_within_its_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    assert spool.put(b"a 1\n") and spool.put(b"b 2\n")
    assert not spool.put(os.urandom(20_000))  # would not fit: refused, not truncated
    path, body = spool.oldest()  # type: ignore[misc]
    assert body == b"a 1\n"
    spool.remove(path)
    reopened = Spool(tmp_path, max_bytes=10_000)  # what a restarted ingest finds
    assert len(reopened) == 1 and reopened.oldest()[1] == b"b 2\n"  # type: ignore[index]
    assert reopened.put(b"c 3\n")
    assert [p.name for p in sorted(tmp_path.glob("*.lp.gz"))][-1] == "000000000002.lp.gz"


def test_a_half_written_spool_file_is_discarded_at_start(tmp_path: Path) -> None:
    (tmp_path / "000000000000.tmp").write_bytes(b"partial")
    assert len(Spool(tmp_path, 1000)) == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_the_report_limiter_allows_a_burst_then_a_steady_rate() -> None:
    limiter = ReportLimiter(burst=3, rate=1)
    assert [limiter.allow("d", 0.0)[0] for _ in range(5)] == [True, True, True, False, False]
    assert limiter.allow("other", 0.0) == (True, 0)
    assert limiter.allow("d", 1.0) == (True, 2)  # one token back; reports the 2 suppressed


def test_seq_tracking_counts_gaps_and_repeats() -> None:
    stats = Stats()
    for seq in [1, 2, 5, 5, 6, 3]:
        stats.record_seq("d", seq)
    assert (stats.seq_gaps, stats.seq_repeats) == (2, 2)
