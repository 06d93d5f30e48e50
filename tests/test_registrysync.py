"""The device registry read before anything is judged, on the real broker: every retained
profile arrives before the marker, a bad profile is skipped, a removed device is gone, and
an unreachable broker is a clear error."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.registrysync import RegistryUnavailable, sync_registry, wait_for_registry
from launcher.servers import free_port
from smartcity.city import load_city
from smartcity.models import Source
from smartcity.registry import DeviceInfo
from smartcity.settings import MqttSettings
from smartcity.topics import Domain, profile_topic

pytestmark = pytest.mark.servers

DEVICES = 300


def profile(n: int) -> DeviceInfo:
    return DeviceInfo(device_id=f"booth-{n}", domain=Domain.FLOOD, name=f"Gian hàng {n}",
                      ward="sai-gon", site=f"booth-{n}", lat=10.77, lon=106.70,
                      source=Source.LIVE, metrics=("water_level_cm",))


def publish_retained(settings: MqttSettings, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(settings.host, settings.port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_every_retained_profile_is_in_the_registry_when_the_read_returns(
        mqtt_settings: MqttSettings) -> None:
    root = mqtt_settings.root
    messages = [(str(profile_topic(f"booth-{n}", root)), profile(n).model_dump_json().encode())
                for n in range(DEVICES)]
    messages.append((str(profile_topic("booth-bad", root)), b"{not json"))
    messages.append((str(profile_topic("booth-7", root)), b""))  # removed again
    publish_retained(mqtt_settings, messages)
    registry = load_city().registry()
    city_devices = len(registry)

    read = sync_registry(mqtt_settings, registry, "ingest")

    # 299 profiles and the bad one: booth-7's removal cleared its retained profile.
    assert read == DEVICES
    assert len(registry) == city_devices + DEVICES - 1
    assert registry.get("booth-299") == profile(299)
    assert "booth-7" not in registry and "booth-bad" not in registry
    publish_retained(mqtt_settings, [(t, b"") for t, _ in messages])


def test_an_unreachable_broker_is_a_clear_error_and_the_wait_can_be_stopped() -> None:
    nowhere = MqttSettings(url=f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(RegistryUnavailable, match="unreachable"):
        sync_registry(nowhere, load_city().registry(), "ingest", timeout_s=2)
    stop = threading.Event()
    stop.set()
    assert wait_for_registry(nowhere, load_city().registry(), "ingest", stop) is False
