"""An exhibitor device in Python (paho-mqtt 2, MQTT 5): the quickest way to see a reading on
the city board.

Register the device first (``smartcity devices add ...`` or ``POST /api/v1/devices``); it
prints the broker, username, password and device id this script needs:

    python examples/python/device.py --broker mqtt://exhibit.local:1883 \\
        --username dev-booth-a3-1f2e --password '...' \\
        --domain flood --device-id booth-a3-1f2e --metric water_level_cm=12.5

It announces itself online (retained, with an offline last will), sends a reading every
``--interval`` seconds in smartcity's JSON, SenML or single-value form, and prints every
explanation the exhibit sends back on the device's errors topic, so a wrong payload is seen at
once. Needs only ``pip install paho-mqtt``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = "city"


def reading(fmt: str, device_id: str, seq: int, values: dict[str, float],
            now: float) -> list[tuple[str, str]]:
    """(topic suffix, payload) pairs for one reading in the chosen format."""
    if fmt == "single":
        return [(f"/{name}", f"{value:g}") for name, value in values.items()]
    if fmt == "senml":
        records: list[dict[str, object]] = [{"n": n, "v": v} for n, v in values.items()]
        records[0] = {"bn": f"{device_id}:", "bt": round(now, 3), **records[0]}
        return [("", json.dumps(records))]
    return [("", json.dumps({"ts": int(now * 1000), "seq": seq, **values}))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", required=True, help="mqtt://host:port")
    p.add_argument("--username", default=None)
    p.add_argument("--password", default=None)
    p.add_argument("--domain", required=True, choices=["home", "traffic", "flood", "weather"])
    p.add_argument("--device-id", required=True)
    p.add_argument("--metric", action="append", required=True,
                   help="name=start value, e.g. water_level_cm=12.5 (repeat for more)")
    p.add_argument("--format", choices=["json", "senml", "single"], default="json")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    p.add_argument("--count", type=int, default=0, help="readings to send (0: until Ctrl-C)")
    p.add_argument("--root", default=ROOT, help="first topic level (default: city)")
    args = p.parse_args(argv)

    values = {}
    for item in args.metric:
        name, _, start = item.partition("=")
        values[name] = float(start or 0)
    base = f"{args.root}/{args.domain}/{args.device_id}"
    errors_topic = f"{args.root}/devices/{args.device_id}/errors"

    url = urlsplit(args.broker)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         # The exhibit binds a device's account to one client id: its username.
                         client_id=args.username or f"{args.device_id}-py")
    if args.username:
        client.username_pw_set(args.username, args.password)
    client.will_set(f"{base}/status", json.dumps({"state": "offline"}), qos=1, retain=True)
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(c, userdata, flags, reason, properties):  # type: ignore[no-untyped-def]
        if reason.is_failure:
            refused.append(str(reason))
            connected.set()
            return
        c.subscribe(errors_topic, qos=1)
        c.publish(f"{base}/status", json.dumps({"state": "online"}), qos=1, retain=True)
        connected.set()

    def on_message(c, userdata, msg):  # type: ignore[no-untyped-def]
        error = json.loads(msg.payload)
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in error.get("errors", []))
        print(f"REJECTED ({error['reason']}): {problems}\n  payload: {error['payload']}",
              flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(10) or refused:
            print(f"the broker refused the connection: {refused or 'no answer'}",
                  file=sys.stderr)
            return 1
        seq = 0
        while args.count == 0 or seq < args.count:
            seq += 1
            for suffix, payload in reading(args.format, args.device_id, seq, values, time.time()):
                client.publish(f"{base}/telemetry{suffix}", payload, qos=1).wait_for_publish(10)
                print(f"sent {base}/telemetry{suffix} {payload}", flush=True)
            values = {n: round(v + random.uniform(-0.5, 0.5), 2) for n, v in values.items()}
            if args.count == 0 or seq < args.count:
                time.sleep(args.interval)
        time.sleep(1.0)  # leave time for an explanation of the last reading
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        client.publish(f"{base}/status", json.dumps({"state": "offline"}), qos=1,
                       retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
