"""Plain files served from a folder of the package (the board, the exhibitor desk): no build
step, nothing from outside, revalidated on reload (ETag) so a new version is picked up."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException
from fastapi.responses import FileResponse

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
HEADERS = {"Cache-Control": "no-cache"}


def serve_file(folder: Path, name: str, what: str) -> FileResponse:
    """``name`` from ``folder``; 404 for anything else, a path out of it included."""
    path = (folder / name).resolve()
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None or not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise HTTPException(404, f"{what} has no file {name!r}")
    return FileResponse(path, media_type=media_type, headers=HEADERS)
