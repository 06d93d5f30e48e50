"""The broker edge of device registration: issuing, rotating and revoking device accounts.

On the exhibit broker every device has its own account, managed through Mosquitto's dynamic
security plugin with the api's MQTT account (:class:`broker.dynsec.DynSecAdmin`). A
development broker that takes anonymous clients issues nothing. Calls block (a broker round
trip): the routes run them on a worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from smartcity.settings import ApiSettings, MqttSettings
from smartcity.topics import Domain

if TYPE_CHECKING:
    from broker.dynsec import DeviceCredentials, DynSecAdmin


def _admin(settings: MqttSettings, timeout_s: float) -> DynSecAdmin:
    from broker.dynsec import DynSecAdmin

    return DynSecAdmin(settings, timeout_s=timeout_s)


class DeviceAccounts(Protocol):
    def add(self, device_id: str, domain: Domain) -> DeviceCredentials | None: ...

    def rotate(self, device_id: str) -> DeviceCredentials | None: ...

    def remove(self, device_id: str) -> None: ...


class BrokerAccounts:
    """One account and one role per device on the broker's dynamic security plugin; revoking
    or rotating disconnects a connected device."""

    def __init__(self, settings: MqttSettings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    def add(self, device_id: str, domain: Domain) -> DeviceCredentials:
        with _admin(self.settings, self.timeout_s) as admin:
            return admin.add_device(device_id, domain)

    def rotate(self, device_id: str) -> DeviceCredentials:
        with _admin(self.settings, self.timeout_s) as admin:
            return admin.rotate_device(device_id)

    def remove(self, device_id: str) -> None:
        with _admin(self.settings, self.timeout_s) as admin:
            admin.remove_device(device_id)


class AnonymousBroker:
    """A development broker: devices connect without credentials, so there is nothing to
    issue or revoke."""

    def add(self, device_id: str, domain: Domain) -> None:
        return None

    def rotate(self, device_id: str) -> None:
        return None

    def remove(self, device_id: str) -> None:
        return None


def device_accounts(settings: ApiSettings) -> DeviceAccounts:
    if settings.device_accounts == "dynsec":
        return BrokerAccounts(settings.mqtt)
    return AnonymousBroker()
