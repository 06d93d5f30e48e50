"""Ingest's fast paths judge exactly as the slow ones: validation without the pydantic models
gives the same verdict (lines, or the reason, code and problems of a refusal) on every payload,
and the hand-written MQTT codec reads what it writes, packet by packet and split anywhere."""

from __future__ import annotations

import itertools
import json
import random

import orjson
import pytest

from ingest import wire
from ingest.judge import Accepted, Judge, Rejection
from smartcity.city import load_city

ROOT = "city"
TS = 1_795_316_645_123

GOOD = [
    {"ts": TS, "seq": 1, "water_level_cm": 12.5},
    {"ts": TS, "seq": 0, "water_level_cm": 3, "battery_pct": 80},
    {"ts": TS, "seq": 2**63 - 1, "river_level_cm": -1000, "source": "replayed"},
    {"ts": TS, "seq": 5, "water_level_cm": None, "river_level_cm": 1.0},
    {"battery_pct": 99.5, "source": "simulated", "seq": 9, "ts": TS, "water_level_cm": 1000},
]
BAD = [
    {"ts": TS, "seq": 1},  # no metric
    {"ts": TS, "seq": 1, "water_level_cm": None},
    {"ts": TS, "seq": -1, "water_level_cm": 1.0},
    {"ts": TS, "seq": 2**63, "water_level_cm": 1.0},
    {"ts": TS, "seq": 1.0, "water_level_cm": 1.0},
    {"ts": TS, "seq": True, "water_level_cm": 1.0},
    {"ts": TS, "seq": "1", "water_level_cm": 1.0},
    {"ts": TS, "seq": None, "water_level_cm": 1.0},
    {"ts": 1_795_316_645, "seq": 1, "water_level_cm": 1.0},  # epoch seconds
    {"ts": 1, "seq": 1, "water_level_cm": 1.0},
    {"ts": 5_000_000_000_000, "seq": 1, "water_level_cm": 1.0},
    {"ts": True, "seq": 1, "water_level_cm": 1.0},
    {"ts": "2026-12-07T10:00:00Z", "seq": 1, "water_level_cm": 1.0},  # good, but the slow path
    {"ts": "2026-12-07T10:00:00", "seq": 1, "water_level_cm": 1.0},
    {"ts": float(TS), "seq": 1, "water_level_cm": 1.0},
    {"ts": TS, "seq": 1, "water_level_cm": 1000.01},
    {"ts": TS, "seq": 1, "water_level_cm": -100.5},
    {"ts": TS, "seq": 1, "water_level_cm": "3"},
    {"ts": TS, "seq": 1, "water_level_cm": True},
    {"ts": TS, "seq": 1, "water_level_cm": [1]},
    {"ts": TS, "seq": 1, "water_level_cm": {"v": 1}},
    {"ts": TS, "seq": 1, "water_level_cm": 10**30},
    {"ts": TS, "seq": 1, "water_level": 3},
    {"ts": TS, "seq": 1, "water_level_cm": 3, "extra": 1},
    {"ts": TS, "seq": 1, "speed_kmh": 3},  # another domain's metric
    {"ts": TS, "seq": 1, "water_level_cm": 3, "source": "dreamt"},
    {"ts": TS, "seq": 1, "water_level_cm": 3, "source": None},
    {"ts": TS, "seq": 1, "water_level_cm": 3, "source": ["live"]},
    {"ts": TS, "seq": 1, "water_level_cm": 3, "source": {"a": 1}},
]
RAW = [b"", b"{", b"{not json", b"[]", b"3.5", b'"x"', b"null", b"{}", b" {\"ts\": 1}",
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": NaN}',
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": Infinity}',
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 1e400}',
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 3, "water_level_cm": 4}',
       b'{"ts": 1795316645123, "seq": 99999999999999999999999, "water_level_cm": 3}',
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 3}\xff',
       b'\xef\xbb\xbf{"ts": 1795316645123, "seq": 1, "water_level_cm": 3}',
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 3} ',
       b'{"ts": 1795316645123, "seq": 1, "water_level_cm": 3}{}']
TOPICS = ["city/flood/flood-thao-dien/telemetry", "city/flood/nobody-knows-me/telemetry",
          "city/traffic/flood-thao-dien/telemetry", "city/flood/flood-thao-dien/telemetry/x",
          "city/flood/Flood/telemetry", "other/flood/flood-thao-dien/telemetry",
          "city/home/home-q7-01/telemetry", "city/weather/weather-tan-son-nhat/telemetry"]


def verdict(v: Accepted | Rejection) -> tuple[object, ...]:
    if isinstance(v, Accepted):
        return ("accepted", v.device_id, v.seq, v.line, v.points)
    return ("refused", v.reason, int(v.code), v.device_id,
            [(p.field, p.message) for p in v.problems])


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()  # not orjson: it refuses integers past 64 bits


def payloads() -> list[bytes]:
    out = [dumps(p) for p in GOOD + BAD] + RAW
    # Every good payload with each key dropped or each value swapped for another's.
    rng = random.Random(7)
    values = [v for p in GOOD + BAD for v in p.values()]
    for p in GOOD:
        for key in p:
            out.append(dumps({k: v for k, v in p.items() if k != key}))
            for v in rng.sample(values, 6):
                out.append(dumps({**p, key: v}))
    return out


@pytest.mark.parametrize("topic", TOPICS)
def test_fast_validation_gives_the_models_verdict_on_every_payload(topic: str) -> None:
    registry = load_city().registry()
    fast, slow = Judge(registry, ROOT, 16_384), Judge(registry, ROOT, 16_384, fast=False)
    assert fast._fast is not None and slow._fast is None
    taken = 0
    for payload in payloads():
        assert verdict(fast(topic, payload, TS)) == verdict(slow(topic, payload, TS)), payload
        taken += fast._fast(topic, payload) is not None
    # It does take the well-formed readings, and nothing on a topic that is not telemetry's.
    if topic == TOPICS[0]:
        assert taken >= len(GOOD)
    if topic in TOPICS[3:6]:
        assert taken == 0


def test_the_bench_stream_takes_the_fast_path() -> None:
    registry = load_city().registry()
    judge = Judge(registry, ROOT, 16_384)
    assert judge._fast is not None
    for device in registry:
        topic = f"{ROOT}/{device.domain.value}/{device.device_id}/telemetry"
        metrics = {m: 1.0 for m in ("water_level_cm", "speed_kmh", "power_w", "rain_mm_h")
                   if judge._fast._allowed[device.domain] >= {m}}
        payload = orjson.dumps({"ts": TS, "seq": 3, **metrics})
        assert judge._fast(topic, payload) is not None, topic
        assert isinstance(judge(topic, payload, TS), Accepted)


# -- the MQTT codec ----------------------------------------------------------------------------

def test_varint_round_trips_and_refuses_a_fifth_byte() -> None:
    for n in (0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455):
        encoded = wire.varint(n)
        assert wire.read_varint(encoded + b"\x00", 0) == (n, len(encoded))
        assert wire.read_varint(encoded[:-1], 0)[0] == -1  # incomplete
    with pytest.raises(wire.ProtocolError):
        wire.read_varint(b"\xff\xff\xff\xff\x01", 0)


def incoming_publish(topic: bytes, payload: bytes, pid: int, qos: int,
                     props: bytes = b"\x00") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if qos else b"")
    body += props + payload
    return bytes([0x30 | qos << 1]) + wire.varint(len(body)) + body


def test_split_reads_every_packet_however_the_stream_is_cut() -> None:
    packets = [
        incoming_publish(b"city/flood/a/telemetry", b'{"seq": 1}', 1, 1),
        incoming_publish(b"city/x", b"", 0, 0),
        b"\xd0\x00",  # PINGRESP
        incoming_publish(b"t", b"x" * 300, 65535, 1, props=b"\x05\x26\x00\x01k\x00"),  # user prop
        wire.pubacks([7]),
        incoming_publish("city/hồ/telemetry".encode(), b"y" * 20_000, 2, 1),
    ]
    stream = b"".join(packets)
    expected = [(b"city/flood/a/telemetry", b'{"seq": 1}', 1, 1), (b"city/x", b"", 0, 0),
                (b"t", b"x" * 300, 65535, 1), ("city/hồ/telemetry".encode(), b"y" * 20_000, 2, 1)]
    for cuts in [(), (1,), (2, 3), (5, 40, 41, 350, 400, 20_000)] + [
            tuple(sorted(random.Random(i).sample(range(1, len(stream)), 12))) for i in range(30)]:
        publishes: list[wire.Publish] = []
        others: list[tuple[int, bytes]] = []
        buf = b""
        for a, b in itertools.pairwise((0, *cuts, len(stream))):
            buf += stream[a:b]
            buf = buf[wire.split(buf, publishes, others):]
        assert buf == b""
        assert publishes == expected
        assert others == [(wire.PINGRESP, b""), (wire.PUBACK, b"\x00\x07")]


def test_pubacks_are_four_bytes_each_in_one_buffer() -> None:
    assert wire.pubacks([1, 258, 65535]) == (b"\x40\x02\x00\x01" b"\x40\x02\x01\x02"
                                             b"\x40\x02\xff\xff")
    assert wire.pubacks([]) == b""


def test_connect_subscribe_and_publish_are_well_formed() -> None:
    packet = wire.connect("ingest-1", keepalive_s=30, clean_start=False, session_expiry_s=86_400,
                          receive_maximum=20_000, username="ingest", password="p:w")
    publishes: list[wire.Publish] = []
    others: list[tuple[int, bytes]] = []
    assert wire.split(packet, publishes, others) == len(packet)
    (kind, body), = others
    assert kind == 1 and body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0x80 | 0x40  # username, password, no clean start
    props, end = wire.parse_properties(body, 10)
    assert props == {wire.SESSION_EXPIRY: 86_400, wire.RECEIVE_MAXIMUM: 20_000}
    assert body[end:] == b"\x00\x08ingest-1\x00\x06ingest\x00\x03p:w"

    sub = wire.subscribe(2, [("$share/ingest/city/+/+/telemetry", wire.sub_options(1)),
                             ("city/devices/+/profile", wire.sub_options(1, 2))])
    assert sub[0] == 0x82 and sub.endswith(b"city/devices/+/profile\x21")

    out = wire.publish("city/devices/a/errors", b"{}", 9, dup=True,
                       props=((0x01, 1), (0x03, "application/json"), (0x26, ("k", "v"))))
    assert out[0] == 0x3A  # PUBLISH, DUP, QoS 1
    got: list[wire.Publish] = []
    wire.split(out, got, [])
    assert got == [(b"city/devices/a/errors", b"{}", 9, 1)]


def test_connack_and_suback_are_read_with_their_properties() -> None:
    connack = wire.parse_connack(b"\x01\x00\x05\x21\x00\x14\x24\x01")
    assert connack.session_present and connack.reason_code == 0
    assert connack.receive_maximum == 20
    assert wire.parse_connack(b"\x00\x87\x00").reason_code == 0x87
    assert wire.parse_suback(b"\x00\x02\x00\x01\x87") == (2, [1, 0x87])
    assert wire.parse_disconnect(b"\x8e\x05\x1f\x00\x02hi") == (0x8E, "hi")
    with pytest.raises(wire.ProtocolError):
        wire.parse_properties(b"\x02\x7f\x00", 0)  # unknown property
