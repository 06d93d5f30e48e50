"""The yardstick for publishers: a bare paho-mqtt QoS 1 publisher, as fast as the broker
acknowledges.

One MQTT 3.1.1 connection, paho's own network thread (``loop_start``), 1000 messages in
flight, every message handed to ``publish()`` in a loop: what any Python program built on
paho gets without tuning. Replay and the simulator are measured against it in the same run
(bench/replay_timing.py, bench/simulate_rate.py), so the ratio holds on a loaded machine.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def publish_all(port: int, messages: list[tuple[str, bytes]], inflight: int = 1000,
                timeout: float = 300.0) -> tuple[float, float]:
    """Publish ``messages`` at QoS 1; (seconds from the first publish to the last
    acknowledgement, CPU seconds this process used meanwhile)."""
    acked = [0]
    done = threading.Event()
    n = len(messages)

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{time.time_ns()}",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(inflight)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        cpu, start = time.process_time(), time.monotonic()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        if not done.wait(timeout):
            raise RuntimeError(f"paho publisher: only {acked[0]} of {n} acknowledged")
        return time.monotonic() - start, time.process_time() - cpu
    finally:
        client.disconnect()
        client.loop_stop()
