"""The device registry: which devices exist, where they are, and what they measure.

Ingest tags every point with the device's ward and site from here and refuses devices it
does not know; the api lists them. Today the registry is built from the city file; exhibitor
registration adds entries at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from smartcity.formats.profile import CustomMapping
from smartcity.ids import Id
from smartcity.models import Source
from smartcity.topics import Domain


class DeviceInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: Id
    domain: Domain
    name: str
    name_en: str | None = None
    ward: Id
    site: Id
    lat: float
    lon: float
    source: Source = Source.SIMULATED
    metrics: tuple[str, ...] = Field(
        default=(), description="the metrics the device declared at registration; empty for "
                                "the city's own devices, which may send any of their domain's")
    format: str = Field(default="json", description="how the device speaks: json, senml, "
                                                    "value, a built-in profile (tasmota, "
                                                    "shelly, zigbee2mqtt, esphome) or custom")
    mapping: CustomMapping | None = Field(default=None, description="the custom format's "
                                                                    "field mapping")


class Registry:
    def __init__(self, devices: Iterable[DeviceInfo] = ()) -> None:
        self._by_id: dict[str, DeviceInfo] = {}
        for d in devices:
            self.add(d)

    def add(self, device: DeviceInfo) -> None:
        if device.device_id in self._by_id:
            raise ValueError(f"device id {device.device_id!r} is used twice")
        self._by_id[device.device_id] = device

    def put(self, device: DeviceInfo) -> None:
        """Add or replace a device: an exhibitor device registered or changed at run time.
        A single dict assignment, so readers on other threads see the old or the new entry."""
        self._by_id[device.device_id] = device

    def remove(self, device_id: str) -> DeviceInfo | None:
        return self._by_id.pop(device_id, None)

    def get(self, device_id: str) -> DeviceInfo | None:
        return self._by_id.get(device_id)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._by_id

    def __iter__(self) -> Iterator[DeviceInfo]:
        # A copy: exhibitor devices come and go on other threads while callers iterate.
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def by_domain(self, domain: Domain) -> list[DeviceInfo]:
        return [d for d in list(self._by_id.values()) if d.domain is domain]
