"""Filling a rule's bilingual templates for a public screen. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from smartcity.city import City
from smartcity.registry import DeviceInfo
from smartcity.rulefile import Texts


@dataclass(frozen=True)
class Names:
    vi: str
    en: str


WardNames = Mapping[str, Names]


def ward_names(city: City) -> dict[str, Names]:
    return {w.id: Names(w.name, w.name_en or w.name) for w in city.wards}


def number(value: float, lang: str) -> str:
    """32.0 -> "32", 32.5 -> "32.5" (Vietnamese: "32,5"); big values lose their decimals."""
    text = f"{value:.0f}" if abs(value) >= 1000 else f"{value:.1f}".rstrip("0").rstrip(".")
    text = "0" if text == "-0" else text
    return text.replace(".", ",") if lang == "vi" else text


def render(texts: Texts, device: DeviceInfo, wards: WardNames, value: float,
           threshold: float, unit: str) -> dict[str, str]:
    """title_vi, title_en, message_vi and message_en for one event."""
    ward = wards.get(device.ward, Names(device.ward, device.ward))
    out: dict[str, str] = {}
    for lang, place, ward_name in (("vi", device.name, ward.vi),
                                   ("en", device.name_en or device.name, ward.en)):
        fill = {"place": place, "ward": ward_name, "value": number(value, lang),
                "threshold": number(threshold, lang), "unit": unit}
        # Templates were checked at load to name only these placeholders and to be one line;
        # a display name with a line break must not reach a screen or a line of InfluxDB.
        for kind in ("title", "message"):
            text = getattr(texts, f"{kind}_{lang}").format_map(fill)
            out[f"{kind}_{lang}"] = " ".join(text.split())
    return out
