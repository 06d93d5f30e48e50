"""The OpenAPI pages, ``/docs`` (Swagger UI) and ``/redoc``, with every asset served here.

The exhibit's machines may have no way out to the internet, and FastAPI's own pages load
Swagger UI and ReDoc from a CDN (a blank page offline). The assets come from the
``fastapi-offline`` package, which ships both bundles; nothing of the page is fetched from
elsewhere (no web fonts, no favicon from a website).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(resources.files("fastapi_offline") / "static"))
ASSETS = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
          "swagger-ui.css": "text/css; charset=utf-8",
          "redoc.standalone.js": "text/javascript; charset=utf-8",
          "favicon.png": "image/png"}
# The bundles change only with the package: a day in a kiosk's cache is fine.
HEADERS = {"Cache-Control": "public, max-age=86400"}

router = APIRouter(include_in_schema=False)


def add_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` for an app created with ``docs_url=None, redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title} · docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{title} · ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)

    app.include_router(router)


# ReDoc's bundle shows its maker's logo from the maker's CDN; ours instead.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _redoc_bundle() -> bytes:
    return (ASSETS_DIR / "redoc.standalone.js").read_bytes().replace(
        REDOC_LOGO, f"{ASSETS_URL}/favicon.png".encode())


@router.get(ASSETS_URL + "/{name}", response_model=None)
def asset(name: str) -> FileResponse | Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(404, f"no documentation asset {name!r}")
    if name == "redoc.standalone.js":
        return Response(_redoc_bundle(), media_type=media_type, headers=HEADERS)
    return FileResponse(ASSETS_DIR / name, media_type=media_type, headers=HEADERS)
