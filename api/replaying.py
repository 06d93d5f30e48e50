"""The api's one replay slot, owned by the app's lifespan."""

from __future__ import annotations

import threading

from recorder.replay import Replayer


class ReplaySlot:
    """The one replay this api runs; stopped with the app."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.name: str | None = None
        self.replayer: Replayer | None = None

    def running(self) -> bool:
        return self.replayer is not None and self.replayer.status().state in ("starting",
                                                                              "running")

    def stop(self) -> None:
        with self.lock:
            if self.replayer is not None:
                self.replayer.stop()
