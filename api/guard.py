"""The api refuses before it works: an ASGI layer in front of every route.

- An admin endpoint (an operation the OpenAPI document marks with the admin token, that is a
  route depending on :func:`api.deps.require_admin`) answers 401
  (or 503 when no token is configured) before its body is read or parsed and before any id
  is looked up, so a caller without the token learns nothing: not whether a device exists,
  not whether a body would have been valid.
- A request body over ``max_body_bytes`` is refused with 413 before the app sees a byte of
  it: by its Content-Length when it declares one, else as soon as the bytes pass the limit
  (bodies are read here, up to the limit, and handed to the app whole).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import admin_refusal
from smartcity.settings import ApiSettings

DEFAULT_MAX_BODY_BYTES = 64 * 1024


ADMIN_SCHEME = "admin token"


def admin_operations(openapi: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every operation the OpenAPI document says needs the admin
    token: the routes that depend on :func:`api.deps.require_admin`."""
    found = []
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            if any(ADMIN_SCHEME in requirement for requirement in operation.get("security", [])):
                pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
                found.append((method.upper(), re.compile(pattern + "/?")))
    return found


async def _answer(send: Send, status: int, detail: str,
                  headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class TooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, settings: ApiSettings, max_body_bytes: int) -> None:
        self.app = app
        self.settings = settings
        self.max_body_bytes = max_body_bytes
        self._admin: list[tuple[str, re.Pattern[str]]] | None = None
        self._bearer = HTTPBearer(auto_error=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._admin is None:
            self._admin = admin_operations(scope["app"].openapi())
        method, path = scope["method"], scope["path"]
        if any(m == method and p.fullmatch(path) for m, p in self._admin):
            credentials = await self._bearer(Request(scope))
            refusal = admin_refusal(self.settings, credentials)
            if refusal is not None:
                await _answer(send, refusal.status_code, str(refusal.detail),
                              dict(refusal.headers or {}))
                return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        limit = self.max_body_bytes
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, 413, f"request body too large: at most {limit} bytes")
            return
        try:
            body = await self._read(receive, limit)
        except TooLarge:
            await _answer(send, 413, f"request body too large: at most {limit} bytes")
            return
        await self.app(scope, self._replay(body, receive), send)

    @staticmethod
    async def _read(receive: Receive, limit: int) -> list[Message]:
        """The request's body messages, refusing past ``limit`` bytes."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > limit:
                raise TooLarge
            if not message.get("more_body", False):
                return messages

    @staticmethod
    def _replay(messages: list[Message], receive: Receive) -> Receive:
        pending = list(messages)

        async def replay() -> Message:
            if pending:
                return pending.pop(0)
            return await receive()  # http.disconnect, for streaming responses
        return replay


EXCERPT_CHARS = 120


def _excerpt(value: Any) -> Any:
    """What an error may echo of the client's input: small values as they are, anything
    longer than an excerpt cut to one (a 10 MB name is not sent back)."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


async def short_validation_errors(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, with every echoed input cut to an excerpt."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if "input" in error:
            error["input"] = _excerpt(error["input"])
        if len(str(error.get("ctx", ""))) > EXCERPT_CHARS:
            error.pop("ctx")
        errors.append(error)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def document_refusals(app: FastAPI) -> None:
    """State in the OpenAPI document what the guard answers for every operation it guards:
    401 and 503 on admin operations (whichever route declared them or not), 413 everywhere."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault("413", {"description": "request body over "
                                                            "SMARTCITY_API_MAX_BODY_BYTES",
                                             "content": problem})
                if any(ADMIN_SCHEME in r for r in operation.get("security", [])):
                    responses.setdefault("401", {"description": "missing or wrong admin "
                                                                "token", "content": problem})
                    responses.setdefault("503", {"description": "admin endpoints are off (no "
                                                                "SMARTCITY_ADMIN_TOKEN)",
                                                 "content": problem})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
