"""The visitor's phone: a page of the same live city at ``/phone`` (no app, nothing from
the internet), and the QR code on the wall that opens it.

The QR code encodes ``SMARTCITY_PUBLIC_URL`` (the address phones on the exhibit's network
reach the api at) or, without it, the address the wall itself loaded the board from.
"""

from __future__ import annotations

import io
from functools import lru_cache

import segno
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from api.deps import ServicesDep
from api.routes.board import _file
from api.static import HEADERS

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=8)
def qr_svg(url: str) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=8, border=2, dark="#0a1020",
                                    light="#ffffff", xmldecl=False, svgclass="qr")
    return out.getvalue()


def phone_url(request: Request, public_url: str | None) -> str:
    base = (public_url or str(request.base_url)).rstrip("/")
    return f"{base}/phone"


@router.get("/phone")
def phone() -> FileResponse:
    return _file("phone.html")


@router.get("/phone/qr.svg")
def phone_qr(request: Request, services: ServicesDep) -> Response:
    url = phone_url(request, services.settings.public_url)
    return Response(qr_svg(url), media_type="image/svg+xml",
                    headers={**HEADERS, "X-Phone-Url": url})
