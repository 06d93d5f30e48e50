"""The kiosk board: a static page (HTML, CSS, JavaScript modules) under ``/board``.

It needs no build step and nothing from the internet: the screens of the exhibit may have
no way out. The page reads ``/api/v1/city/map`` once and then lives on ``/api/v1/live``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

router = APIRouter(include_in_schema=False)

BOARD_DIR = Path(str(resources.files("api") / "board"))
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
# Kiosks stay up for days: revalidate (ETag) so a new version of the board is picked up
# by a reload.
HEADERS = {"Cache-Control": "no-cache"}


def _file(name: str) -> FileResponse:
    path = (BOARD_DIR / name).resolve()
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None or not path.is_relative_to(BOARD_DIR.resolve()) or \
            not path.is_file():
        raise HTTPException(404, f"the board has no file {name!r}")
    return FileResponse(path, media_type=media_type, headers=HEADERS)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/board", status_code=307)


@router.get("/board")
def board() -> FileResponse:
    return _file("index.html")


@router.get("/board/{name:path}")
def board_file(name: str) -> FileResponse:
    return _file(name or "index.html")
