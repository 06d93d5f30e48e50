"""The one MQTT client factory: the URL's account and TLS, persistent sessions, topic objects."""

from __future__ import annotations

import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker.mqtt import Session, Subscription, connect, new_client, start
from launcher.servers import Mosquitto, free_port, start_with_retry
from smartcity.settings import MqttSettings
from smartcity.topics import telemetry_filter, telemetry_topic
from tests.mqtt import wait_for


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A Mosquitto with a second, TLS listener whose certificate a private CA signed."""
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca, key, csr, cert = (d / n for n in ("ca.key", "ca.crt", "server.key",
                                                  "server.csr", "server.crt"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=smartcity test CA", "-keyout", ca_key, "-out", ca)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
             "-out", csr)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "2", "-extfile", d / "san.ext", "-out", cert)
    tls_port = free_port()
    extra = (f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
             "allow_anonymous true")
    server = start_with_retry(Mosquitto, d / "broker", extra_config=extra)
    yield tls_port, ca
    server.stop()


def test_an_mqtts_url_connects_over_tls_and_carries_messages(
        tls_broker: tuple[int, Path]) -> None:
    port, ca = tls_broker
    settings = MqttSettings(url=f"mqtts://127.0.0.1:{port}", root="tls", ca_file=ca)
    assert settings.tls and settings.address == f"mqtts://127.0.0.1:{port}"
    got: list[bytes] = []
    subscribed = threading.Event()
    sub = new_client(settings, role="test-sub")
    sub.on_connect = lambda c, *a: c.subscribe(str(telemetry_filter("tls")), qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, msg: got.append(bytes(msg.payload))
    start(sub, settings)
    pub = new_client(settings, role="test-pub")
    try:
        assert subscribed.wait(10), "no subscription over TLS"
        connect(pub, settings)
        pub.loop_start()
        topic = telemetry_topic("flood", "flood-a", "tls")
        pub.publish(str(topic), b"12.5", qos=1).wait_for_publish(10)
        wait_for(lambda: got == [b"12.5"], what="the message over TLS")
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()


# paho does not close the socket of a failed TLS handshake; the garbage collector does.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_broker_certificate_no_trusted_ca_signed_is_refused(
        tls_broker: tuple[int, Path]) -> None:
    port, _ = tls_broker
    settings = MqttSettings(url=f"mqtts://127.0.0.1:{port}")  # the system's CAs only
    client = new_client(settings, role="test-untrusted")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(client, settings)


def test_a_session_keeps_what_arrives_while_its_client_is_away(mosquitto: Mosquitto,
                                                              root: str) -> None:
    settings = MqttSettings(url=mosquitto.url, root=root)
    client_id = f"test-session-{uuid.uuid4().hex[:8]}"
    readings = telemetry_filter(root)

    def subscriber() -> tuple[mqtt.Client, Subscription, list[bytes]]:
        got: list[bytes] = []
        sub = Subscription(settings, readings)
        client = new_client(settings, client_id, manual_ack=True)
        sub.attach(client)

        def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
            got.append(bytes(msg.payload))
            sub.ack(c, msg.mid, msg.qos, sub.generation)

        client.on_message = on_message
        start(client, settings, Session(expiry_s=60, receive_maximum=100))
        assert sub.subscribed.wait(10)
        return client, sub, got

    first, _, _ = subscriber()
    first.disconnect()
    first.loop_stop()
    pub = new_client(settings, role="test-pub")
    connect(pub, settings)
    pub.loop_start()
    pub.publish(str(telemetry_topic("flood", "flood-a", root)), b"7", qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    second, _, got = subscriber()
    try:
        wait_for(lambda: got == [b"7"], what="the message kept by the session")
    finally:
        second.disconnect()
        second.loop_stop()
