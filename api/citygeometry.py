"""The city's drawn geography: river, canals, ward outlines and road courses, from a GeoJSON
file beside the city file (``hcmc.toml`` -> ``hcmc.geojson``), for the kiosk board's map.

The file names its source (``source``). Every feature says what it is in ``kind``: ``river``
and ``canal`` (centrelines, ``width_m``), ``ward`` (the city file's wards, by ``id``),
``area`` (land around them that the city file does not cover), ``place`` (a district's name)
and ``road`` (the course of the city file's road segment ``id``). Pure, but for reading the
file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from smartcity.city import default_city_path
from smartcity.errors import ContractError, FieldProblem

KINDS = {"river", "canal", "ward", "area", "place", "road"}
METRES_PER_DEG_LAT = 111_320.0

Point = tuple[float, float]  # lon, lat, as GeoJSON writes them


def geometry_path(city_file: Path | None) -> Path:
    return (city_file or default_city_path()).with_suffix(".geojson")


def load_geometry(path: Path) -> dict[str, Any]:
    """The FeatureCollection at ``path``; :class:`ContractError` naming what is wrong."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as e:
        raise ContractError(f"cannot read the city's geometry {path}", [FieldProblem(
            "file", str(e))]) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or \
            not isinstance(doc.get("features"), list):
        raise ContractError(f"{path} is not a GeoJSON FeatureCollection",
                            [FieldProblem("type", "must be FeatureCollection with features")])
    if not str(doc.get("source") or "").strip():
        raise ContractError(f"{path} does not name its source", [FieldProblem(
            "source", "say where the coordinates come from")])
    for i, feature in enumerate(doc["features"]):
        kind = (feature.get("properties") or {}).get("kind")
        if kind not in KINDS:
            raise ContractError(f"{path}: feature {i} has no known kind", [FieldProblem(
                f"features[{i}].properties.kind", f"one of {sorted(KINDS)}, not {kind!r}")])
    return doc


def features(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """``id`` -> feature, of one kind."""
    return {f["properties"]["id"]: f for f in doc["features"] if f["properties"]["kind"] == kind}


def inside(point: Point, ring: Sequence[Sequence[float]]) -> bool:
    """Whether ``point`` lies in the polygon ``ring`` (even-odd rule)."""
    x, y = point
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, [*ring[1:], ring[0]], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def distance_m(point: Point, line: Sequence[Sequence[float]]) -> float:
    """From ``point`` to the nearest point of the polyline ``line``, in metres."""
    kx = METRES_PER_DEG_LAT * math.cos(math.radians(point[1]))
    px, py = point[0] * kx, point[1] * METRES_PER_DEG_LAT
    best = math.inf
    for (x1, y1), (x2, y2) in itertools.pairwise(line):
        ax, ay, bx, by = x1 * kx, y1 * METRES_PER_DEG_LAT, x2 * kx, y2 * METRES_PER_DEG_LAT
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        s = 0.0 if not length2 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy)
                                                  / length2))
        best = min(best, math.hypot(px - (ax + s * dx), py - (ay + s * dy)))
    return best
