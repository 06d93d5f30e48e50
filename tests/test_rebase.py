"""Rebasing payload timestamps: a table per format, pure."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from recorder.rebase import rebase_payload, shift_rfc3339, shift_ts

HOUR_MS = 3_600_000
WEEK_MS = 7 * 24 * HOUR_MS


@pytest.mark.parametrize(("before", "delta_ms", "after"), [
    ("2025-07-14T06:30:00.123Z", HOUR_MS, "2025-07-14T07:30:00.123Z"),
    ("2025-07-14T06:30:00.123+07:00", HOUR_MS, "2025-07-14T07:30:00.123+07:00"),
    ("2025-07-14T23:30:00.000+07:00", HOUR_MS, "2025-07-15T00:30:00.000+07:00"),
    ("2025-07-14T06:30:00.123-03:30", -WEEK_MS, "2025-07-07T06:30:00.123-03:30"),
    ("2025-07-14T06:30:00.123+00:00", 1, "2025-07-14T06:30:00.124+00:00"),
    # No fraction: stays without one while the shift is whole seconds, gains ms otherwise.
    ("2025-07-14T06:30:00Z", 2000, "2025-07-14T06:30:02Z"),
    ("2025-07-14T06:30:00Z", 2500, "2025-07-14T06:30:02.5Z"),
    ("2025-07-14T06:30:00Z", 2501, "2025-07-14T06:30:02.501Z"),
    # Digits past the millisecond are kept as written.
    ("2025-07-14T06:30:00.123456Z", 1000, "2025-07-14T06:30:01.123456Z"),
    ("2025-07-14T06:30:00.123456789Z", -1, "2025-07-14T06:30:00.122456789Z"),
    ("2025-07-14T06:30:00.5Z", 250, "2025-07-14T06:30:00.75Z"),
    # Separator and case as written.
    ("2025-07-14 06:30:00.000z", HOUR_MS, "2025-07-14 07:30:00.000z"),
    ("2024-12-31T23:59:59.999Z", 1, "2025-01-01T00:00:00.000Z"),
    ("2024-02-28T12:00:00Z", 24 * HOUR_MS, "2024-02-29T12:00:00Z"),
    # Not RFC 3339 with an offset: untouched.
    ("2025-07-14T06:30:00", HOUR_MS, "2025-07-14T06:30:00"),
    ("yesterday", HOUR_MS, "yesterday"),
    ("2025-07-14T23:59:60Z", 1, "2025-07-14T23:59:60Z"),
])
def test_rfc3339(before: str, delta_ms: int, after: str) -> None:
    assert shift_rfc3339(before, delta_ms) == after


@pytest.mark.parametrize(("before", "after"), [
    (1_752_449_400_123, 1_752_449_400_123 + HOUR_MS),
    (1_752_449_400_123.5, 1_752_449_400_123.5 + HOUR_MS),
    (1_752_449_400, 1_752_449_400),  # epoch seconds: not ours to guess, ingest refuses it
    (True, True),
    (None, None),
    ([1], [1]),
])
def test_epoch_ms(before: Any, after: Any) -> None:
    assert shift_ts(before, HOUR_MS) == after


def _rebased(doc: Any, delta_ms: int, **kw: bool) -> Any:
    return orjson.loads(rebase_payload(orjson.dumps(doc), delta_ms, **kw))


def test_json_object_ts_and_source() -> None:
    doc = {"ts": "2025-07-14T06:30:00.000+07:00", "seq": 4, "water_level_cm": 12.5,
           "source": "simulated"}
    assert _rebased(doc, HOUR_MS, mark_source=True) == {
        "ts": "2025-07-14T07:30:00.000+07:00", "seq": 4, "water_level_cm": 12.5,
        "source": "replayed"}
    assert _rebased(doc, HOUR_MS)["source"] == "simulated"
    assert _rebased({"ts": 1_752_449_400_000, "seq": 1}, -1000) == {
        "ts": 1_752_449_399_000, "seq": 1}


def test_key_order_and_text_survive() -> None:
    payload = '{"seq":1,"ts":"2025-07-14T06:30:00.000Z","name":"Phường Sài Gòn"}'.encode()
    assert rebase_payload(payload, 1000) == (
        '{"seq":1,"ts":"2025-07-14T06:30:01.000Z","name":"Phường Sài Gòn"}'.encode())


T0 = 1_752_449_400  # absolute SenML time, seconds


@pytest.mark.parametrize(("pack", "delta_ms", "after"), [
    # Absolute base time moves; t relative to it stays.
    ([{"bn": "f1/", "bt": T0, "n": "level", "v": 12}, {"n": "level", "t": 60, "v": 13}],
     HOUR_MS,
     [{"bn": "f1/", "bt": T0 + 3600, "n": "level", "v": 12}, {"n": "level", "t": 60, "v": 13}]),
    # Absolute t without a base time moves.
    ([{"n": "level", "t": T0, "v": 1}, {"n": "level", "t": T0 + 5.5, "v": 2}], 1500,
     [{"n": "level", "t": T0 + 1.5, "v": 1}, {"n": "level", "t": T0 + 7.0, "v": 2}]),
    # Relative times (below 2**28: "seconds from now") stay.
    ([{"n": "level", "t": -5, "v": 1}, {"bt": -60, "n": "x", "t": 10, "v": 2}], HOUR_MS,
     [{"n": "level", "t": -5, "v": 1}, {"bt": -60, "n": "x", "t": 10, "v": 2}]),
    # A base time carries to later records; a new relative one ends that.
    ([{"bt": T0 + 0.25, "n": "a", "v": 1}, {"n": "a", "t": 1, "v": 2},
      {"bt": 0, "n": "b", "t": T0, "v": 3}], 1000,
     [{"bt": T0 + 1.25, "n": "a", "v": 1}, {"n": "a", "t": 1, "v": 2},
      {"bt": 0, "n": "b", "t": T0 + 1, "v": 3}]),
    # Fractional seconds stay readable.
    ([{"bt": 1_752_449_400.1, "n": "a", "v": 1}], 200, [{"bt": 1_752_449_400.3, "n": "a",
                                                        "v": 1}]),
])
def test_senml(pack: list[dict[str, Any]], delta_ms: int,
               after: list[dict[str, Any]]) -> None:
    assert _rebased(pack, delta_ms) == after


@pytest.mark.parametrize("payload", [
    b"", b"online", b"\x00\x01\xff", b"12.5", b'"2025-07-14T06:30:00Z"', b"{not json",
    b'{"ts": 1e999}', b"[1, 2, 3]", b'{"seq": 1}', b'[{"n": "x", "v": 1}]',
])
def test_left_alone(payload: bytes) -> None:
    assert rebase_payload(payload, HOUR_MS) is payload


def test_nothing_to_do_is_free() -> None:
    payload = b'{"ts": "2025-07-14T06:30:00Z"}'
    assert rebase_payload(payload, 0) is payload
    marked = rebase_payload(payload, 0, mark_source=True)
    assert orjson.loads(marked) == {"ts": "2025-07-14T06:30:00Z", "source": "replayed"}
    assert rebase_payload(marked, 0, mark_source=True) is marked


@pytest.mark.parametrize(("payload", "ms"), [
    (b'{"ts": 1795316645123, "seq": 1}', 1795316645123),
    (b'{"ts": "2026-11-22T03:04:05.123Z"}', 1795316645123),
    (b'{"ts": "2026-11-22T10:04:05.123+07:00"}', 1795316645123),
    (b'[{"bn": "x", "bt": 1795316645.123, "v": 1}]', 1795316645123),
    (b'[{"bn": "x", "bt": 5, "v": 1}]', None),
    (b'{"ts": 1795316645}', None),  # epoch seconds: not ours to guess
    (b'{"state": "online"}', None),
    (b"42", None),
    (b"{broken", None),
])
def test_the_time_a_payload_states(payload: bytes, ms: int | None) -> None:
    from recorder.rebase import payload_time_ms

    assert payload_time_ms(payload) == ms
