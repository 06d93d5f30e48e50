"""The kiosk board: a static page (HTML, CSS, JavaScript modules) under ``/board``.

It needs no build step and nothing from the internet: the screens of the exhibit may have
no way out. The page reads ``/api/v1/city/map`` once and then lives on ``/api/v1/live``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from api.static import serve_file

router = APIRouter(include_in_schema=False)

BOARD_DIR = Path(str(resources.files("api") / "board"))


def _file(name: str) -> FileResponse:
    # Kiosks stay up for days: served for revalidation, so a reload picks up a new board.
    return serve_file(BOARD_DIR, name, "the board")


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/board", status_code=307)


@router.get("/board")
def board() -> FileResponse:
    return _file("index.html")


@router.get("/board/{name:path}")
def board_file(name: str) -> FileResponse:
    return _file(name or "index.html")
