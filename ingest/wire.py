"""MQTT v5 packets, encoded and split by hand for ingest's MQTT edge. Pure: bytes in, values out.

Only what a subscriber that acknowledges by hand needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK,
PUBLISH both ways (reports go out at QoS 1), PUBACK both ways, PINGREQ/PINGRESP and
DISCONNECT. An incoming PUBLISH becomes a plain tuple, its properties skipped unparsed: paho
builds a ``Properties`` object and an ``MQTTMessage`` for every message (the ``Properties``
alone about a tenth of ingest's busy time at saturation, profiled with py-spy).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP, DISCONNECT = 2, 3, 4, 9, 13, 14

PINGREQ = b"\xc0\x00"
DISCONNECT_NORMAL = b"\xe0\x00"

# Property identifiers (MQTT 5.0, 2.2.2.2) and how each is encoded.
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _U32,
    0x12: _STR, 0x13: _U16, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _U32, 0x19: _BYTE,
    0x1A: _STR, 0x1C: _STR, 0x1F: _STR, 0x21: _U16, 0x22: _U16, 0x23: _U16, 0x24: _BYTE,
    0x25: _BYTE, 0x26: _PAIR, 0x27: _U32, 0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
SESSION_EXPIRY, SERVER_KEEP_ALIVE, REASON_STRING, RECEIVE_MAXIMUM = 0x11, 0x13, 0x1F, 0x21
USER_PROPERTY, MAXIMUM_PACKET_SIZE = 0x26, 0x27


PropValue = int | str | bytes | tuple[str, str]
Props = tuple[tuple[int, PropValue], ...]


class ProtocolError(ValueError):
    """The broker sent something this client cannot read: the connection is dropped."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """The variable byte integer at ``i`` and the index after it; (-1, i) if incomplete."""
    value = shift = 0
    for j in range(i, min(i + 4, len(data))):
        b = data[j]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, j + 1
        shift += 7
    if len(data) - i >= 4:
        raise ProtocolError("malformed variable byte integer")
    return -1, i


def utf8(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return len(b).to_bytes(2, "big") + b


def binary(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def _properties(props: Iterable[tuple[int, PropValue]]) -> bytes:
    out = bytearray()
    for pid, value in props:
        kind = PROPERTY_TYPES[pid]
        out += varint(pid)
        if kind in (_BYTE, _U16, _U32) and isinstance(value, int):
            out += value.to_bytes({_BYTE: 1, _U16: 2, _U32: 4}[kind], "big")
        elif kind == _STR and isinstance(value, str):
            out += utf8(value)
        elif kind == _PAIR and isinstance(value, tuple):
            out += utf8(value[0]) + utf8(value[1])
        else:
            raise ValueError(f"property {pid:#x} cannot be {value!r} here")
    return varint(len(out)) + bytes(out)


def connect(client_id: str, *, keepalive_s: int, clean_start: bool, session_expiry_s: int,
            receive_maximum: int, username: str | None = None,
            password: str | None = None) -> bytes:
    flags = (0x02 if clean_start else 0) | (0x80 if username else 0) | (0x40 if password else 0)
    props = _properties([(SESSION_EXPIRY, session_expiry_s), (RECEIVE_MAXIMUM, receive_maximum)])
    payload = utf8(client_id) + (utf8(username) if username else b"") + (
        binary(password.encode()) if password else b"")
    return _packet(0x10, utf8("MQTT") + bytes([5, flags]) + keepalive_s.to_bytes(2, "big")
                   + props + payload)


def subscribe(packet_id: int, filters: Iterable[tuple[str, int]]) -> bytes:
    """SUBSCRIBE; each filter with its options byte (QoS | retain handling << 4)."""
    body = packet_id.to_bytes(2, "big") + b"\x00"
    for topic, options in filters:
        body += utf8(topic) + bytes([options])
    return _packet(0x82, body)


def sub_options(qos: int, retain_handling: int = 0) -> int:
    return qos | retain_handling << 4


def publish(topic: str, payload: bytes, packet_id: int, *, dup: bool = False,
            props: Props = ()) -> bytes:
    """A QoS 1 PUBLISH."""
    body = utf8(topic) + packet_id.to_bytes(2, "big") + _properties(props) + payload
    return _packet(0x32 | (0x08 if dup else 0), body)


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs (success, no properties: 4 bytes each) for many messages, in one buffer."""
    return struct.pack(f">{len(packet_ids)}I", *[0x40020000 | p for p in packet_ids])


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    reason_code: int
    properties: dict[int, PropValue] = field(default_factory=dict)

    @property
    def receive_maximum(self) -> int:
        value = self.properties.get(RECEIVE_MAXIMUM, 65535)
        return value if isinstance(value, int) else 65535


def parse_properties(data: bytes, i: int) -> tuple[dict[int, PropValue], int]:
    length, i = read_varint(data, i)
    if length < 0:
        raise ProtocolError("truncated properties")
    end = i + length
    if end > len(data):
        raise ProtocolError("properties overrun their packet")
    props: dict[int, PropValue] = {}
    while i < end:
        pid, i = read_varint(data, i)
        kind = PROPERTY_TYPES.get(pid)
        value: PropValue
        if kind == _BYTE:
            value, i = data[i], i + 1
        elif kind == _U16:
            value, i = int.from_bytes(data[i:i + 2], "big"), i + 2
        elif kind == _U32:
            value, i = int.from_bytes(data[i:i + 4], "big"), i + 4
        elif kind == _VARINT:
            value, i = read_varint(data, i)
        elif kind in (_STR, _BIN):
            n = int.from_bytes(data[i:i + 2], "big")
            raw = data[i + 2:i + 2 + n]
            value, i = (raw.decode(errors="replace") if kind == _STR else raw), i + 2 + n
        elif kind == _PAIR:
            n = int.from_bytes(data[i:i + 2], "big")
            k = data[i + 2:i + 2 + n].decode(errors="replace")
            i += 2 + n
            n = int.from_bytes(data[i:i + 2], "big")
            value, i = (k, data[i + 2:i + 2 + n].decode(errors="replace")), i + 2 + n
        else:
            raise ProtocolError(f"unknown property {pid:#x}")
        props[pid] = value
    if i != end:
        raise ProtocolError("properties overrun their length")
    return props, end


def parse_connack(body: bytes) -> Connack:
    if len(body) < 2:
        raise ProtocolError("CONNACK too short")
    props = parse_properties(body, 2)[0] if len(body) > 2 else {}
    return Connack(bool(body[0] & 1), body[1], props)


def parse_suback(body: bytes) -> tuple[int, list[int]]:
    """Packet id and one reason code per filter (>= 0x80: refused)."""
    _, i = parse_properties(body, 2)
    return int.from_bytes(body[:2], "big"), list(body[i:])


def parse_disconnect(body: bytes) -> tuple[int, str | None]:
    if not body:
        return 0, None
    props = parse_properties(body, 1)[0] if len(body) > 1 else {}
    reason = props.get(REASON_STRING)
    return body[0], str(reason) if reason is not None else None


Publish = tuple[bytes, bytes, int, int]  # topic (raw), payload, packet id (0 at QoS 0), QoS


def split(buf: bytes, publishes: list[Publish],
          others: list[tuple[int, bytes]]) -> int:
    """Take the complete packets at the front of ``buf``: PUBLISHes into ``publishes``, any
    other packet as (type, body) into ``others``, in order of arrival relative to each other.
    Returns how many bytes were consumed; the rest is an incomplete packet.

    The hot path of ingest: one call per socket read (many packets), no object per packet
    beyond the tuple and its slices."""
    i, n = 0, len(buf)
    from_bytes = int.from_bytes
    while i + 2 <= n:
        first = buf[i]
        b = buf[i + 1]
        if b < 0x80:
            length, j = b, i + 2
        else:
            length, j = read_varint(buf, i + 1)
            if length < 0:
                break
        end = j + length
        if end > n:
            break
        kind = first >> 4
        if kind == PUBLISH:
            tlen = from_bytes(buf[j:j + 2], "big")
            k = j + 2 + tlen
            topic = buf[j + 2:k]
            qos = (first >> 1) & 3
            if qos:
                pid = from_bytes(buf[k:k + 2], "big")
                k += 2
            else:
                pid = 0
            plen = buf[k]
            if plen < 0x80:
                k += 1 + plen
            else:
                plen, k = read_varint(buf, k)
                k += plen
            if k > end:
                raise ProtocolError("PUBLISH header overruns its packet")
            publishes.append((topic, buf[k:end], pid, qos))
        else:
            others.append((kind, buf[j:end]))
        i = end
    return i
