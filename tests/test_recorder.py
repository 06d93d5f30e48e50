"""Record and replay through the real broker (and backfill into the real InfluxDB)."""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from recorder import (
    Header,
    Record,
    Recorder,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    RecordOptions,
    Remap,
    Replayer,
    ReplayOptions,
    Selection,
    TimePoint,
    read_all,
)
from recorder.publisher import no_delay
from recorder.rebase import rebase_payload
from smartcity.city import load_city
from smartcity.models import format_ts
from smartcity.settings import InfluxSettings, MqttSettings
from smartcity.topics import TopicFilter
from storage.influx import InfluxClient
from tests.mqtt import connect, publish, wait_for

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parent.parent
MS = 1_000_000
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Got:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    at_ns: int  # monotonic, at arrival


@contextmanager
def collecting(settings: MqttSettings, *filters: str) -> Iterator[list[Got]]:
    """Like tests.mqtt.collecting, but QoS 2 with Retain As Published, so each message shows
    the QoS and retain flag it was published with, and stamped with its arrival time."""
    got: list[Got] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         client_id=f"sub-{uuid.uuid4().hex[:10]}")
    client.on_message = lambda c, u, m: got.append(Got(m.topic, bytes(m.payload), m.qos,
                                                       bool(m.retain), time.monotonic_ns()))
    client.on_subscribe = lambda *a: subscribed.set()
    opts = SubscribeOptions(qos=2, retainAsPublished=True)
    def on_connect(c: mqtt.Client, *a: object) -> None:
        no_delay(c)  # else QoS 2 deliveries wait for a delayed TCP ACK of our PUBREC
        c.subscribe([(f, opts) for f in filters])

    client.on_connect = on_connect
    client.connect(settings.host, settings.port)
    client.loop_start()
    assert subscribed.wait(10), "could not subscribe"
    try:
        yield got
    finally:
        client.disconnect()
        client.loop_stop()


def write_recording(path: Path, records: list[Record], per_frame: int = 1000) -> list[int]:
    """A recording as ``smartcity record`` would write it; the file size after each frame."""
    ends = []
    with RecordingWriter(path, Header(started_ns=records[0].arrival_ns, root="city"),
                         max_frame_records=per_frame, fsync=False) as w:
        ends.append(w.bytes_written)
        for r in records:
            w.add(r, now=0.0)
            if w.bytes_written != ends[-1]:
                ends.append(w.bytes_written)
    return ends


def telemetry(root: str, i: int, t_ns: int, device: str = "f1") -> Record:
    body = {"ts": format_ts(t_ns // MS), "seq": i, "water_level_cm": float(i)}
    return Record(t_ns, f"{root}/flood/{device}/telemetry", orjson.dumps(body), 1)


def as_replayed(r: Record) -> bytes:
    return rebase_payload(r.payload, 0, mark_source=r.topic.endswith("/telemetry"))


def replay(path: Path, settings: MqttSettings, **options: object) -> Replayer:
    replayer = Replayer(path, settings, ReplayOptions(**options))  # type: ignore[arg-type]
    status = replayer.run()
    assert status.state == "finished", status
    return replayer


def test_record_then_replay_same_messages_order_and_scaled_gaps(
        mqtt_settings: MqttSettings, tmp_path: Path, root: str) -> None:
    publish(mqtt_settings, f"{root}/flood/f1/status", b'{"state":"online"}', retain=True)
    recorder = Recorder(mqtt_settings, RecordOptions(out=tmp_path / "r.screc"))
    recorder.start()
    gaps_s = [0.03, 0.12, 0.06, 0.15, 0.04, 0.09, 0.05, 0.13, 0.07, 0.1]
    client = connect(mqtt_settings)
    for i, gap in enumerate(gaps_s):
        payload = orjson.dumps({"ts": format_ts(int(time.time() * 1000)), "seq": i,
                                "water_level_cm": i})
        client.publish(f"{root}/flood/f{i % 2}/telemetry", payload, qos=i % 3).wait_for_publish()
        time.sleep(gap)
    client.publish(f"{root}/flood/f1/status", b'{"state":"offline"}', qos=1,
                   retain=True).wait_for_publish()
    client.publish(f"{root}/devices/f1/errors", b"\x00binary\xff", qos=0).wait_for_publish()
    time.sleep(0.1)
    client.disconnect()
    stats = recorder.stop()
    recorded = read_all(tmp_path / "r.screc")
    assert stats.received == len(recorded) == 13 and stats.initial == 1
    assert recorded[0].initial and recorded[0].retain
    assert recorded[0].payload == b'{"state":"online"}'
    assert [r.qos for r in recorded[1:11]] == [i % 3 for i in range(10)]
    assert not any(r.retain or r.initial for r in recorded[1:11])
    assert recorded[11].retain and not recorded[11].initial

    replayed_root = f"{root}-r"
    with collecting(mqtt_settings, f"{replayed_root}/#") as got:
        replay(tmp_path / "r.screc", mqtt_settings, speed=2.0,
               selection=Selection(remaps=(Remap(root, replayed_root),)))
        wait_for(lambda: len(got) == len(recorded), timeout=5, what="every replayed message")
    assert [(g.topic, g.payload, g.qos, g.retain) for g in got] == [
        (r.topic.replace(root, replayed_root, 1), as_replayed(r), r.qos, r.retain)
        for r in recorded]
    # Each message's offset from the first (the schedule does not drift) and each gap.
    for i in range(1, len(got)):
        want_ms = (recorded[i].arrival_ns - recorded[0].arrival_ns) / 2 / MS
        seen_ms = (got[i].at_ns - got[0].at_ns) / MS
        assert abs(seen_ms - want_ms) < 15, f"message {i}: at {seen_ms:.1f} ms, want {want_ms:.1f}"
        want_gap = (recorded[i].arrival_ns - recorded[i - 1].arrival_ns) / 2 / MS
        seen_gap = (got[i].at_ns - got[i - 1].at_ns) / MS
        assert abs(seen_gap - want_gap) < 15, f"gap {i}: {seen_gap:.1f} ms, want {want_gap:.1f}"


def records_so_far(path: Path) -> list[Record]:
    try:
        return read_all(path)
    except (OSError, RecordingError):  # not created yet, or its header not yet written
        return []


def test_cli_record_killed_mid_recording_replays_what_was_flushed(
        mqtt_settings: MqttSettings, subprocess_env: dict[str, str], tmp_path: Path,
        root: str) -> None:
    env = {**subprocess_env, "SMARTCITY_MQTT_URL": mqtt_settings.url,
           "SMARTCITY_MQTT_ROOT": root, "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed.screc"
    publish(mqtt_settings, f"{root}/flood/f1/status", b'{"state":"online"}', retain=True)
    proc = subprocess.Popen([sys.executable, "-m", "recorder", "record", "--out", str(out)],
                            env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        # The retained status is recorded once the subscriptions stand.
        wait_for(lambda: records_so_far(out), timeout=15, what="the first frame")
        client = connect(mqtt_settings)
        for i in range(20):
            client.publish(f"{root}/flood/f1/telemetry", b'{"seq": %d}' % i,
                           qos=1).wait_for_publish()
            time.sleep(0.02)
        time.sleep(1.0)  # two flush intervals
        for i in range(20, 40):  # the unflushed tail, lost with the process
            client.publish(f"{root}/flood/f1/telemetry", b'{"seq": %d}' % i, qos=1)
        client.disconnect()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    recorded = read_all(out)
    seqs = [orjson.loads(r.payload)["seq"] for r in recorded[1:]]
    assert seqs == list(range(len(seqs))) and len(seqs) >= 20, err.decode()

    with collecting(mqtt_settings, f"{root}-r/#") as got:
        result = subprocess.run(
            [sys.executable, "-m", "recorder", "replay", str(out), "--speed", "max",
             "--remap", f"{root}={root}-r"], env=env, cwd=tmp_path, capture_output=True,
            timeout=30)
        assert result.returncode == 0, result.stderr.decode()
        wait_for(lambda: len(got) == len(recorded), timeout=5, what="the replayed messages")
    assert [g.payload for g in got] == [as_replayed(r) for r in recorded]
    assert b"finished: %d messages" % len(recorded) in result.stderr
    # Never closed, yet sound: every frame up to the last fsync reads back.
    info = subprocess.run([sys.executable, "-m", "recorder", "replay", str(out), "--info"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "status    sound" in info.stdout and "closed    no:" in info.stdout
    assert f"messages  {len(recorded)}" in info.stdout


def test_cli_record_stops_cleanly_on_sigterm(
        mqtt_settings: MqttSettings, subprocess_env: dict[str, str], tmp_path: Path,
        root: str) -> None:
    env = {**subprocess_env, "SMARTCITY_MQTT_URL": mqtt_settings.url,
           "SMARTCITY_MQTT_ROOT": root, "PYTHONPATH": str(REPO)}
    out = tmp_path / "r.screc"
    publish(mqtt_settings, f"{root}/flood/f1/status", b'{"state":"online"}', retain=True)
    proc = subprocess.Popen([sys.executable, "-m", "recorder", "record", "--out", str(out),
                             "--topic", f"{root}/flood/+/telemetry",
                             "--topic", f"{root}/flood/+/status"],
                            env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: records_so_far(out), timeout=15, what="the first frame")
        for i in range(3):
            publish(mqtt_settings, f"{root}/flood/f1/telemetry", b'{"seq": %d}' % i)
        publish(mqtt_settings, f"{root}/other", b"not recorded")
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # before the next flush is due
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert [r.payload for r in read_all(out)] == [
        b'{"state":"online"}', b'{"seq": 0}', b'{"seq": 1}', b'{"seq": 2}']
    with RecordingReader(out) as reader:
        assert reader.header.filters == (f"{root}/flood/+/telemetry", f"{root}/flood/+/status")
        assert reader.closed is not None and reader.closed[0] == 4


def test_truncated_file_replays_up_to_the_last_complete_frame(
        mqtt_settings: MqttSettings, tmp_path: Path, root: str) -> None:
    t0 = time.time_ns()
    records = [telemetry(root, i, t0 + i * MS) for i in range(35)]
    ends = write_recording(tmp_path / "full.screc", records, per_frame=10)
    data = (tmp_path / "full.screc").read_bytes()
    (tmp_path / "cut.screc").write_bytes(data[:(ends[2] + ends[3]) // 2])  # inside frame 3
    with collecting(mqtt_settings, f"{root}/#") as got:
        status = Replayer(tmp_path / "cut.screc", mqtt_settings,
                          ReplayOptions(speed=None)).run()
        assert status.state == "finished" and status.sent == 20
        assert any("truncated" in p for p in status.problems)
        assert status.lost == "15 records lost (1 damaged stretch)"
        wait_for(lambda: len(got) == 20, timeout=5, what="the 20 complete messages")
    assert [g.payload for g in got] == [as_replayed(r) for r in records[:20]]


def test_filters_remap_and_seek(mqtt_settings: MqttSettings, tmp_path: Path,
                                root: str) -> None:
    t0 = time.time_ns()
    records = []
    for i in range(30):  # 3 s, 100 ms apart; a status change every 10th
        records.append(telemetry(root, i, t0 + i * 100 * MS, device=f"f{i % 2}"))
        if i % 10 == 5:
            records.append(Record(t0 + i * 100 * MS + MS, f"{root}/flood/f1/status",
                                  b'{"state":"s%d"}' % i, 1, retain=True))
    write_recording(tmp_path / "r.screc", records, per_frame=7)
    selection = Selection(
        start=TimePoint.parse("1.2s"), end=TimePoint(absolute_ns=t0 + 2_000 * MS),
        filters=(TopicFilter(f"{root}/flood/f1/#"),), remaps=(Remap(f"{root}/flood", f"{root}/x"),))
    with collecting(mqtt_settings, f"{root}/x/#") as got:
        replay(tmp_path / "r.screc", mqtt_settings, speed=10.0, selection=selection)
        wait_for(lambda: len(got) >= 5, timeout=5, what="the selection")
        time.sleep(0.1)
    assert [(g.topic, orjson.loads(g.payload).get("seq"), g.retain) for g in got] == [
        (f"{root}/x/f1/status", None, True),  # the state at 1.2 s, first
        *[(f"{root}/x/f1/telemetry", i, False) for i in (13, 15)],
        (f"{root}/x/f1/status", None, True),
        *[(f"{root}/x/f1/telemetry", i, False) for i in (17, 19)]]
    assert orjson.loads(got[0].payload) == {"state": "s5"}


def test_speed_max_loses_nothing(mqtt_settings: MqttSettings, tmp_path: Path,
                                 root: str) -> None:
    t0 = time.time_ns()
    records = [telemetry(root, i, t0 + i * 10 * MS, device=f"f{i % 7}") for i in range(5000)]
    write_recording(tmp_path / "r.screc", records)
    with collecting(mqtt_settings, f"{root}/#") as got:
        replayer = replay(tmp_path / "r.screc", mqtt_settings, speed=None)
        wait_for(lambda: len(got) >= 5000, timeout=20, what="all 5000 messages")
        time.sleep(0.2)
    assert [orjson.loads(g.payload)["seq"] for g in got] == list(range(5000))
    status = replayer.status()
    assert status.sent == 5000 and status.unacked == 0 and status.elapsed_s < 10


def test_rebase_time_through_the_broker(mqtt_settings: MqttSettings, tmp_path: Path,
                                        root: str) -> None:
    week_ago = time.time_ns() - WEEK_MS * MS
    ts_s = week_ago / 1e9
    payloads = [
        orjson.dumps({"ts": format_ts(week_ago // MS), "seq": 1, "rain_mm_h": 3.5}),
        b'{"ts":"%s","seq":2,"rain_mm_h":4}' % format_ts(week_ago // MS + 7 * 3600_000)
        .replace("Z", "+07:00").encode(),
        orjson.dumps({"ts": week_ago // MS, "seq": 3, "rain_mm_h": 5}),
        orjson.dumps([{"bn": "g1/", "bt": ts_s, "n": "rain", "v": 1}, {"n": "rain", "t": 2}]),
        orjson.dumps([{"n": "rain", "t": ts_s, "v": 1}, {"n": "rain", "t": -3, "v": 2}]),
    ]
    records = [Record(week_ago + i * 10 * MS, f"{root}/weather/g1/telemetry", p, 1)
               for i, p in enumerate(payloads)]
    write_recording(tmp_path / "r.screc", records)
    with collecting(mqtt_settings, f"{root}/#") as got:
        replay(tmp_path / "r.screc", mqtt_settings, speed=None, rebase_time=True)
        wait_for(lambda: len(got) == 5, timeout=5, what="the rebased messages")
    now_s = time.time()
    docs = [orjson.loads(g.payload) for g in got]
    from smartcity.models import parse_ts

    for doc in docs[:3]:
        assert abs(parse_ts(doc["ts"]) / 1000 - now_s) < 5 and doc["source"] == "replayed"
    assert docs[1]["ts"].endswith("+07:00")
    assert isinstance(docs[2]["ts"], int)
    assert abs(docs[3][0]["bt"] - now_s) < 5 and docs[3][1]["t"] == 2
    assert abs(docs[4][0]["t"] - now_s) < 5 and docs[4][1]["t"] == -3


def test_loop_continues_forward_in_time(mqtt_settings: MqttSettings, tmp_path: Path,
                                        root: str) -> None:
    t0 = time.time_ns() - 3600 * 10**9
    records = [telemetry(root, i, t0 + i * 100 * MS) for i in range(4)]
    write_recording(tmp_path / "r.screc", records)
    with collecting(mqtt_settings, f"{root}/#") as got:
        replayer = replay(tmp_path / "r.screc", mqtt_settings, speed=4.0, loop=True, passes=3,
                          rebase_time=True)
        wait_for(lambda: len(got) == 12, timeout=5, what="three passes")
    assert replayer.status().passes_done == 3
    from smartcity.models import parse_ts

    stamps = [parse_ts(orjson.loads(g.payload)["ts"]) for g in got]
    assert [b - a for a, b in itertools.pairwise(stamps)] == [100] * 11
    gaps_ms = [(b.at_ns - a.at_ns) / MS for a, b in itertools.pairwise(got)]
    assert all(abs(g - 25) < 15 for g in gaps_ms), gaps_ms


def test_replayer_runs_in_the_background_and_stops(mqtt_settings: MqttSettings,
                                                   tmp_path: Path, root: str) -> None:
    t0 = time.time_ns()
    records = [telemetry(root, i, t0 + i * 1000 * MS) for i in range(60)]
    write_recording(tmp_path / "r.screc", records)
    replayer = Replayer(tmp_path / "r.screc", mqtt_settings, ReplayOptions(loop=True))
    replayer.start()
    wait_for(lambda: replayer.status().sent >= 1, timeout=5, what="the first message")
    status = replayer.status()
    assert status.state == "running" and status.span_s == pytest.approx(59)
    started = time.monotonic()
    replayer.stop()
    assert replayer.status().state == "stopped" and time.monotonic() - started < 2


def test_into_influx_stores_replayed_points_ending_now(
        influx_settings: InfluxSettings, influx: InfluxClient, subprocess_env: dict[str, str],
        tmp_path: Path) -> None:
    devices = [d.device_id for d in load_city().registry() if d.domain.value == "flood"]
    # A sped-up simulation recorded a week ago: 40 readings a simulated minute apart, arriving
    # 10 ms apart, stating times a day ahead of their arrival.
    t0 = time.time_ns() - WEEK_MS * MS
    sim0 = t0 + 24 * 3600 * 10**9
    records = [telemetry("city", i, sim0 + i * 60 * 10**9, device=devices[i % len(devices)])
               ._replace(arrival_ns=t0 + i * 10 * MS) for i in range(40)]
    records += [Record(t0, "city/flood/nope/telemetry", b'{"ts":1,"seq":1}'),
                Record(t0, "city/flood/f1/status", b'{"state":"online"}', retain=True),
                telemetry("city", 99, t0, device="unknown-device")]
    write_recording(tmp_path / "r.screc", sorted(records, key=lambda r: r.arrival_ns))
    # No broker setting is read: a broken one does not matter.
    env = {**subprocess_env, "SMARTCITY_INFLUX_URL": influx_settings.url,
           "SMARTCITY_INFLUX_DB": influx_settings.db, "PYTHONPATH": str(REPO),
           "SMARTCITY_MQTT_URL": "not a broker"}
    result = subprocess.run([sys.executable, "-m", "recorder", "replay", str(tmp_path / "r.screc"),
                             "--into-influx", "--rebase-time"], env=env, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert b"40 points stored" in result.stderr and b"unknown device 1" in result.stderr
    rows = influx.query("SELECT count(water_level_cm) FROM flood WHERE source = 'replayed' "
                        "AND time > now() - 1h")[0].rows()
    assert rows[0]["count"] == 40
    first = influx.query("SELECT first(water_level_cm) FROM flood")[0].rows()[0]
    last = influx.query("SELECT last(water_level_cm) FROM flood")[0].rows()[0]
    # The last reading's stated time lands at now, the first 39 simulated minutes before.
    assert abs(last["time"] / 1000 - time.time()) < 30
    assert last["time"] - first["time"] == 39 * 60 * 1000


def test_into_influx_shows_progress_like_a_replay(
        influx_settings: InfluxSettings, influx: InfluxClient, tmp_path: Path) -> None:
    from ingest.judge import Judge
    from recorder.backfill import Backfill
    from recorder.progress import Progress

    devices = [d.device_id for d in load_city().registry() if d.domain.value == "flood"]
    t0 = time.time_ns() - 3600 * 10**9
    write_recording(tmp_path / "r.screc", [
        telemetry("city", i, t0 + i * 10**9, device=devices[i % len(devices)])
        for i in range(30)])
    job = Backfill(tmp_path / "r.screc", Judge(load_city().registry(), "city", 16_384), influx,
                   Selection(), batch_size=7)
    screen = io.StringIO()
    progress = Progress(job, screen, tty=True)
    progress.start()
    job.run()
    progress.close()
    assert screen.getvalue().endswith("\n")
    last_bar = screen.getvalue().rsplit("\r", 1)[-1]
    assert last_bar.startswith("[########################] 100%") and "stored 30" in last_bar


def test_into_influx_names_a_missing_database_at_once(
        influx_settings: InfluxSettings, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    t0 = time.time_ns()
    write_recording(tmp_path / "r.screc", [telemetry("city", i, t0 + i * MS) for i in range(3)])
    env = {**subprocess_env, "SMARTCITY_INFLUX_URL": influx_settings.url,
           "SMARTCITY_INFLUX_DB": "no-such-db", "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "recorder", "replay", str(tmp_path / "r.screc"),
                             "--into-influx"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "InfluxDB has no database 'no-such-db'" in result.stderr, result.stderr
    assert "retrying" not in result.stderr and time.monotonic() - started < 20


def test_info_and_replay_of_a_damaged_recording_say_what_was_lost(
        mqtt_settings: MqttSettings, subprocess_env: dict[str, str], tmp_path: Path,
        root: str) -> None:
    t0 = time.time_ns()
    records = [telemetry(root, i, t0 + i * MS) for i in range(40)]
    ends = write_recording(tmp_path / "r.screc", records, per_frame=10)
    data = bytearray((tmp_path / "r.screc").read_bytes())
    data[ends[1] + 60] ^= 0x01  # inside the second frame's body
    data[ends[2] + 9] ^= 0x01  # the third frame's header
    (tmp_path / "bad.screc").write_bytes(data)
    env = {**subprocess_env, "SMARTCITY_MQTT_URL": mqtt_settings.url, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "recorder", "replay", str(tmp_path / "bad.screc")]
    info = subprocess.run([*cmd, "--info"], env=env, capture_output=True, text=True, timeout=30)
    assert info.returncode == 1, info.stdout + info.stderr
    assert "status    DAMAGED: 20 records lost" in info.stdout
    assert "messages  20" in info.stdout
    remap = ["--speed", "max", "--remap", f"{root}={root}-r"]
    with collecting(mqtt_settings, f"{root}-r/#") as got:
        replayed = subprocess.run([*cmd, *remap], env=env, capture_output=True, text=True,
                                  timeout=30)
        assert replayed.returncode == 1, replayed.stderr
        assert "20 records lost (2 damaged stretches) were skipped" in replayed.stderr
        skipped = subprocess.run([*cmd, *remap, "--skip-damaged"], env=env,
                                 capture_output=True, text=True, timeout=30)
        assert skipped.returncode == 0, skipped.stderr
        assert "20 records lost" in skipped.stderr
        wait_for(lambda: len(got) == 40, timeout=5, what="two replays of 20 messages")
    assert [g.payload for g in got[:20]] == [as_replayed(r) for r in records[:10] + records[30:]]


def test_info_counts_exactly_what_a_file_cut_in_half_lost(
        subprocess_env: dict[str, str], tmp_path: Path) -> None:
    t0 = time.time_ns()
    write_recording(tmp_path / "r.screc", [telemetry("city", i, t0 + i * MS)
                                           for i in range(5000)], per_frame=333)
    data = (tmp_path / "r.screc").read_bytes()
    (tmp_path / "half.screc").write_bytes(data[:len(data) // 2])
    with RecordingReader(tmp_path / "half.screc") as reader:
        readable = reader.summary().records
    env = {**subprocess_env, "PYTHONPATH": str(REPO)}
    info = subprocess.run([sys.executable, "-m", "recorder", "replay",
                           str(tmp_path / "half.screc"), "--info"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert info.returncode == 1
    assert f"status    DAMAGED: {5000 - readable:,} records lost" in info.stdout, info.stdout
    assert "closed    yes, with 5,000 records in 16 frames" in info.stdout


def test_into_influx_of_a_damaged_recording_says_what_was_lost(
        influx_settings: InfluxSettings, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    device = next(d.device_id for d in load_city().registry() if d.domain.value == "flood")
    t0 = time.time_ns() - 3600 * 10**9
    ends = write_recording(tmp_path / "r.screc", [
        telemetry("city", i, t0 + i * 10**9, device=device) for i in range(30)], per_frame=10)
    data = bytearray((tmp_path / "r.screc").read_bytes())
    data[ends[1] + 60] ^= 0x01  # the second frame's body
    (tmp_path / "bad.screc").write_bytes(data)
    env = {**subprocess_env, "SMARTCITY_INFLUX_URL": influx_settings.url,
           "SMARTCITY_INFLUX_DB": influx_settings.db, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "recorder", "replay", str(tmp_path / "bad.screc"),
           "--into-influx"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "20 points stored" in result.stderr
    assert "damaged: 10 records lost (1 damaged stretch) were skipped" in result.stderr
    tolerated = subprocess.run([*cmd, "--skip-damaged"], env=env, capture_output=True,
                               text=True, timeout=60)
    assert tolerated.returncode == 0 and "10 records lost" in tolerated.stderr


def test_info_into_a_closed_pipe_is_quiet(subprocess_env: dict[str, str]) -> None:
    env = {**subprocess_env, "PYTHONPATH": str(REPO)}
    path = REPO / "recorder" / "recordings" / "king-tide-storm.screc"
    for _ in range(3):  # the pipe closes at a different point each time
        result = subprocess.run(f"'{sys.executable}' -m recorder replay '{path}' --info | "
                                "head -1", shell=True, env=env, capture_output=True, text=True,
                                timeout=30)
        assert result.stdout.startswith("file") and result.stderr == ""


def test_python_m_recorder_help() -> None:
    result = subprocess.run([sys.executable, "-m", "recorder", "replay", "--help"],
                            capture_output=True, cwd=REPO, env={**os.environ,
                                                                "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and b"--rebase-time" in result.stdout
