"""InfluxDB through its v1-compatible HTTP API: ``/write`` (line protocol) and ``/query``.

1.x serves it natively, 2.x through its v1 compatibility endpoints (password = API token,
database = bucket via DBRP mapping) and 3.x as well, so this is the one dialect the stack
speaks. Errors are split the way a writer must treat them: :class:`InfluxRejected` (4xx, the
request itself is wrong and retrying cannot help) and :class:`InfluxUnavailable` (5xx, 429,
network: retry later).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from smartcity.settings import InfluxSettings


class InfluxError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class InfluxRejected(InfluxError):
    """4xx: the database refused the request (bad line, type conflict, bad query)."""


class InfluxUnavailable(InfluxError):
    """5xx, 429 or a network failure: the request may succeed later."""


# A 404 "database not found" or a 401/403 is an operator's mistake that will be fixed; holding
# the data until then loses nothing, dead-lettering it would.
_RETRY_4XX = {401, 403, 404, 408, 429}


@dataclass
class Series:
    name: str
    columns: list[str]
    values: list[list[Any]]
    tags: dict[str, str] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, v, strict=True)) for v in self.values]


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Requests:
    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self.auth: tuple[str, str] | None = None
        if settings.password is not None:
            self.auth = (settings.username or "smartcity", settings.password.get_secret_value())

    def write_request(self, lines: bytes, db: str | None) -> dict[str, Any]:
        return {
            "method": "POST",
            "url": "/write",
            "params": {"db": db or self.settings.db, "precision": "ms"},
            "content": gzip.compress(lines, compresslevel=1),
            "headers": {"Content-Encoding": "gzip",
                        "Content-Type": "text/plain; charset=utf-8"},
        }

    def query_request(self, q: str, db: str | None, post: bool) -> dict[str, Any]:
        params = {"q": q, "db": db or self.settings.db, "epoch": "ms"}
        if post:
            return {"method": "POST", "url": "/query", "data": params}
        return {"method": "GET", "url": "/query", "params": params}

    @staticmethod
    def check(response: httpx.Response) -> None:
        if response.status_code < 300:
            return
        try:
            detail = str(orjson.loads(response.content).get("error", response.text))
        except (orjson.JSONDecodeError, AttributeError):
            detail = response.text
        message = f"InfluxDB answered {response.status_code}: {detail[:500]}"
        if response.status_code >= 500 or response.status_code in _RETRY_4XX:
            raise InfluxUnavailable(message, response.status_code)
        raise InfluxRejected(message, response.status_code)

    @staticmethod
    def parse_query(response: httpx.Response) -> list[Series]:
        body = orjson.loads(response.content)
        out: list[Series] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxRejected(f"query failed: {result['error']}", 400)
            for s in result.get("series", []):
                out.append(Series(s.get("name", ""), s["columns"], s["values"], s.get("tags", {})))
        return out


class InfluxClient:
    """Blocking client, for ingest's writer thread and command-line tools."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._r = _Requests(settings)
        self.settings = settings
        self._http = httpx.Client(base_url=settings.url, timeout=settings.timeout_s,
                                  auth=self._r.auth)

    def close(self) -> None:
        self._http.close()

    def _send(self, req: dict[str, Any]) -> httpx.Response:
        try:
            response = self._http.request(**req)
        except httpx.HTTPError as e:
            raise InfluxUnavailable(f"InfluxDB at {self.settings.url} unreachable: {e}") from e
        self._r.check(response)
        return response

    def write(self, lines: bytes, db: str | None = None) -> None:
        self._send(self._r.write_request(lines, db))

    def query(self, q: str, db: str | None = None, *, post: bool = False) -> list[Series]:
        return self._r.parse_query(self._send(self._r.query_request(q, db, post)))

    def ping(self) -> bool:
        try:
            return self._http.get("/ping", timeout=2.0).status_code == 204
        except httpx.HTTPError:
            return False

    def create_database(self, db: str | None = None) -> None:
        from smartcity.ids import check_id

        name = check_id(db or self.settings.db, "database")
        self.query(f"CREATE DATABASE {quote_ident(name)}", post=True)


class AsyncInfluxClient:
    """Non-blocking client, for the api."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._r = _Requests(settings)
        self.settings = settings
        self._http = httpx.AsyncClient(base_url=settings.url, timeout=settings.timeout_s,
                                       auth=self._r.auth)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, req: dict[str, Any]) -> httpx.Response:
        try:
            response = await self._http.request(**req)
        except httpx.HTTPError as e:
            raise InfluxUnavailable(f"InfluxDB at {self.settings.url} unreachable: {e}") from e
        self._r.check(response)
        return response

    async def write(self, lines: bytes, db: str | None = None) -> None:
        await self._send(self._r.write_request(lines, db))

    async def query(self, q: str, db: str | None = None) -> list[Series]:
        return self._r.parse_query(await self._send(self._r.query_request(q, db, post=False)))
