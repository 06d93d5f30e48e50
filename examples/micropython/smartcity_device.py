# smartcity exhibitor device for MicroPython (ESP32): the part that talks to the exhibit.
# Board-independent, so it also runs under CPython against a real broker (the exhibit's tests
# do exactly that). main.py does the board setup: Wi-Fi, clock, sensor.
import json
import time

try:
    from umqtt.simple import MQTTClient
except ImportError:  # only on a board without umqtt installed
    raise ImportError("install umqtt.simple: mpremote mip install umqtt.simple") from None

# MicroPython on the ESP32 counts seconds from 2000-01-01; smartcity wants Unix time.
EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0


def unix_ms():
    return (int(time.time()) + EPOCH_OFFSET) * 1000


def topics(cfg):
    base = f"{cfg.ROOT}/{cfg.DOMAIN}/{cfg.DEVICE_ID}"
    return {
        "telemetry": base + "/telemetry",
        "status": base + "/status",
        "errors": f"{cfg.ROOT}/devices/{cfg.DEVICE_ID}/errors",
    }


def payload(seq, values, ts_ms):
    body = {"ts": ts_ms, "seq": seq}
    body.update(values)
    return json.dumps(body)


class Device:
    """One connection to the exhibit: online status with an offline last will, readings with a
    counter, and the exhibit's explanations of rejected messages printed to the console."""

    def __init__(self, cfg, client_id):
        self.cfg = cfg
        self.topics = topics(cfg)
        self.seq = 0
        self.rejections = []
        self.client = MQTTClient(client_id, cfg.BROKER_HOST, port=cfg.BROKER_PORT,
                                 user=cfg.USERNAME, password=cfg.PASSWORD, keepalive=60)
        self.client.set_last_will(self.topics["status"], b'{"state":"offline"}', retain=True,
                                  qos=1)
        self.client.set_callback(self._on_message)

    def _on_message(self, topic, msg):
        error = json.loads(msg)
        self.rejections.append(error)
        print("REJECTED:", error.get("reason"), error.get("errors"))

    def connect(self):
        self.client.connect()
        self.client.subscribe(self.topics["errors"], qos=1)
        self.client.publish(self.topics["status"], b'{"state":"online"}', retain=True, qos=1)

    def send(self, values):
        self.seq += 1
        self.client.publish(self.topics["telemetry"], payload(self.seq, values, unix_ms()),
                            qos=1)
        self.client.check_msg()  # deliver an explanation that has arrived meanwhile

    def close(self):
        self.client.publish(self.topics["status"], b'{"state":"offline"}', retain=True, qos=1)
        self.client.disconnect()
