"""The api served by uvicorn on a free loopback port in a thread, for browser tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.live import shutdown_streams
from launcher.servers import free_port
from tests.mqtt import wait_for


class _Server(uvicorn.Server):
    async def shutdown(self, sockets: Any = None) -> None:
        shutdown_streams(self.config.app)
        await super().shutdown(sockets)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The base URL of ``app`` while it is served."""
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                    lifespan="on"))
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=60, what="the api to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
