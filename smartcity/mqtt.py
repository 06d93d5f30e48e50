"""MQTT clients of the services that must lose nothing (ingest, rules).

A persistent session (fixed client id, clean start off, bounded session expiry) with manual
acknowledgements and a bounded Receive Maximum: the broker keeps what a service has not
acknowledged across crashes and reconnects, and sends it no more unacknowledged messages than
it asked for. Both services get exactly the same session semantics from here.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.settings import MqttSettings


def persistent_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A v5 client that acknowledges by hand (``client.ack(mid, qos)``), not yet connected."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    return client


def connect_persistent(client: mqtt.Client, settings: MqttSettings, session_expiry_s: int,
                       receive_maximum: int) -> None:
    """Connect in the background (paho reconnects by itself) and start the network thread."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = session_expiry_s
    props.ReceiveMaximum = receive_maximum
    client.connect_async(settings.host, settings.port, settings.keepalive_s,
                         clean_start=False, properties=props)
    client.loop_start()
