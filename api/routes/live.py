"""``/api/v1/live``: the live stream, as a WebSocket and as Server-Sent Events on the same
path, and the hub's counters.

The protocol (JSON objects with a ``type``) is in :mod:`api.live.wire` and docs/live-stream.md.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

import anyio
from anyio import CancelScope
from fastapi import APIRouter, HTTPException, Query, WebSocket
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from api.deps import Services, ServicesDep, invalid
from api.live import POLICY_VIOLATION, LiveClient, LiveHub
from api.live.filter import LiveFilter, parse_filter
from api.models.live import LiveStatsOut
from smartcity.errors import ContractError

router = APIRouter(prefix="/api/v1/live", tags=["live"])

SSE_RETRY_MS = 3000
SEND_SLICE = 64
"""Messages a client is sent in a row before the others get a turn."""
CHUNK_EVENTS = 256
"""Events joined into one write of an SSE stream."""
MAX_REASON_BYTES = 123  # what a WebSocket close frame can carry

DomainParam = Annotated[list[str] | None, Query(
    description="only this domain (repeatable): home, traffic, flood, weather")]
DeviceParam = Annotated[list[str] | None, Query(description="only this device id (repeatable)")]
TopicParam = Annotated[list[str] | None, Query(
    description="only events whose MQTT topic matches this filter, + and # allowed "
                "(repeatable)", examples=["city/flood/#"])]

STREAM_DOC = """\
On connect a `snapshot` (devices, the last reading of each device seen since the api
started, statuses, active alerts, the simulation state), then every `reading`, `status`,
`alert`, `simulation` and `device` event as it arrives on the broker, as `event: <type>` /
`data: <json>`; a comment line every 15 s keeps proxies from closing the stream. The same
protocol is served as JSON text frames by the WebSocket on this path.

A screen that falls behind gets coalesced updates (the newest value of each device) and is
disconnected if it stays behind; it reconnects and gets a fresh snapshot."""


def _hub(services: Services) -> LiveHub:
    if services.live is None:  # only before the lifespan has started it
        raise HTTPException(503, "the live stream is not running yet", headers={"Retry-After": "1"})
    return services.live


def _close_reason(error: ContractError) -> str:
    first = error.problems[0] if error.problems else None
    text = f"invalid {first.field}: {first.message}" if first else str(error)
    return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


async def _cancel_after(client: LiveClient, scope: CancelScope, grace_s: float) -> None:
    """A screen told to go that does not take its close in time (it stopped reading, and
    the send is stuck behind a full socket) is cut off."""
    await client.closing.wait()
    await anyio.sleep(grace_s)
    scope.cancel()


# --- WebSocket ---------------------------------------------------------------------------

@router.websocket("")
async def live_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    params = websocket.query_params
    try:
        flt = parse_filter(params.getlist("domain"), params.getlist("device"),
                           params.getlist("topic"))
    except ContractError as e:
        await websocket.close(POLICY_VIOLATION, _close_reason(e))
        return
    services: Services = websocket.state.services
    hub = _hub(services)
    client = hub.join(flt)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_disconnect, websocket, tg.cancel_scope)
            tg.start_soon(_cancel_after, client, tg.cancel_scope, 2 * hub.settings.close_grace_s)
            tg.start_soon(_serve_socket, websocket, client, hub.settings.close_grace_s,
                          tg.cancel_scope)
    finally:
        hub.leave(client)


async def _until_disconnect(websocket: WebSocket, scope: CancelScope) -> None:
    # Screens send nothing; reading is how a disconnect is noticed.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    scope.cancel()


async def _serve_socket(websocket: WebSocket, client: LiveClient, grace_s: float,
                        scope: CancelScope) -> None:
    try:
        await websocket.send_text(client.first.text)
        box = client.outbox
        sent = 0
        while not client.closed:
            event = box.pop()
            if event is None:
                client.wake.clear()
                await client.wake.wait()
                continue
            await websocket.send_text(event.text)
            sent += 1
            if sent % SEND_SLICE == 0:
                await anyio.sleep(0)  # a send to a fast socket does not yield: share the loop
        with anyio.move_on_after(grace_s):
            await websocket.close(client.close_code, client.close_reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the screen went away, or was closed meanwhile
    scope.cancel()


# --- Server-Sent Events ------------------------------------------------------------------

class EventStream(Response):
    """``text/event-stream`` of one screen's events, until it disconnects or is closed."""

    media_type = "text/event-stream"

    def __init__(self, hub: LiveHub, flt: LiveFilter) -> None:
        self.hub = hub
        self.filter = flt
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        client = hub.join(self.filter)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_until_http_disconnect, receive, tg.cancel_scope)
                tg.start_soon(_cancel_after, client, tg.cancel_scope,
                              2 * hub.settings.close_grace_s)
                tg.start_soon(self._serve, send, client, hub.settings.close_grace_s,
                              tg.cancel_scope)
        finally:
            hub.leave(client)

    async def _serve(self, send: Send, client: LiveClient, grace_s: float,
                     scope: CancelScope) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            first = f"retry: {SSE_RETRY_MS}\n\n".encode() + client.first.sse
            await send({"type": "http.response.body", "body": first, "more_body": True})
            box = client.outbox
            while not client.closed:
                events = box.pop_many(CHUNK_EVENTS)
                if not events:
                    client.wake.clear()
                    await client.wake.wait()
                    continue
                await send({"type": "http.response.body", "more_body": True,
                            "body": b"".join(e.sse for e in events)})
                await anyio.sleep(0)
            with anyio.move_on_after(grace_s):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the screen went away
        scope.cancel()


async def _until_http_disconnect(receive: Receive, scope: CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


@router.get("", summary="The live stream as Server-Sent Events (WebSocket on the same path)",
            description=STREAM_DOC, response_class=Response,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "an endless stream of events"}})
async def live_events(services: ServicesDep, domain: DomainParam = None,
                      device: DeviceParam = None, topic: TopicParam = None) -> Response:
    inputs = {"domain": domain, "device": device, "topic": topic}
    try:
        flt = parse_filter(domain or [], device or [], topic or [])
    except ContractError as e:
        invalid(e, "query", inputs)
    return EventStream(_hub(services), flt)


@router.get("/stats", summary="The live hub's counters: screens, events, coalescing, drops")
async def live_stats(services: ServicesDep) -> LiveStatsOut:
    s = _hub(services).stats()
    return LiveStatsOut(**s.__dict__)

