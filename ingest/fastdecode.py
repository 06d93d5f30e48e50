"""The common case of :func:`smartcity.codec.decode_message` in a few µs: our JSON object with
epoch-ms ``ts``, ``seq``, optional ``source`` and in-range metrics, on a plain telemetry topic.

It only ever accepts: anything it is not sure of (another format, an RFC 3339 ``ts``, a
value out of range, a key it does not know, invalid JSON) returns None, and the caller asks the
codec, whose pydantic models then accept it the same way or refuse it with their reasons and
codes. So every refusal reads as before, and only well-formed readings skip the models
(measured in CPU time on the development VM: 3 µs a reading against 6 µs through
``model_validate_json``; a whole judgement with its line 5-6.5 µs against 8-9.5 µs).
"""

from __future__ import annotations

import orjson

from smartcity.codec import Reading
from smartcity.errors import ContractError
from smartcity.models import METRIC_BOUNDS, TS_MAX_MS, TS_MIN_MS, Source
from smartcity.topics import Domain, Kind, parse_device_topic

_SOURCES = {s.value: s for s in Source}
_FIXED = ("ts", "seq", "source")
_Plan = tuple[Domain, str, tuple[tuple[str, float, float], ...], frozenset[str]]


class FastDecoder:
    def __init__(self, root: str) -> None:
        self.root = root
        self._plans: dict[str, _Plan | None] = {}  # per topic; None: not a plain telemetry topic
        self._allowed = {d: frozenset((*_FIXED, *b)) for d, b in METRIC_BOUNDS.items()}

    def __call__(self, topic: str, payload: bytes) -> list[Reading] | None:
        try:
            plan = self._plans[topic]
        except KeyError:
            plan = self._plan(topic)
        if plan is None or payload[:1] != b"{":
            return None
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        domain, device_id, bounds, allowed = plan
        if type(obj) is not dict or not obj.keys() <= allowed:
            return None
        ts, seq = obj.get("ts"), obj.get("seq")
        # A bool is not an int here (type() is, isinstance would let True through).
        if (type(ts) is not int or type(seq) is not int or not TS_MIN_MS <= ts < TS_MAX_MS
                or not 0 <= seq < 2**63):
            return None
        src = obj.get("source", "live")
        source = _SOURCES.get(src) if type(src) is str else None
        if source is None:
            return None
        metrics: dict[str, float] = {}
        for name, lo, hi in bounds:  # the model's field order, as the models give it
            v = obj.get(name)
            if v is None:
                continue
            kind = type(v)
            if (kind is not float and kind is not int) or not lo <= v <= hi:
                return None
            metrics[name] = float(v)
        if not metrics:
            return None
        return [Reading(domain, device_id, ts, seq, source, metrics)]

    def _plan(self, topic: str) -> _Plan | None:
        if len(self._plans) > 100_000:
            self._plans.clear()
        plan: _Plan | None = None
        try:
            parsed = parse_device_topic(topic, self.root)
        except ContractError:
            pass
        else:
            if parsed.kind is Kind.TELEMETRY and parsed.metric is None:
                bounds = tuple((n, lo, hi) for n, (lo, hi) in METRIC_BOUNDS[parsed.domain].items())
                plan = (parsed.domain, parsed.device_id, bounds, self._allowed[parsed.domain])
        self._plans[topic] = plan
        return plan
