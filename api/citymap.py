"""The city map the kiosk board draws, from the city file (pure).

The city file gives every place a single point and roads only their connections, so the
geometry is derived here: a ward's centre is the mean of its places (the board draws wards
as regions around their centres), a road segment is drawn from its detector halfway
towards each segment it connects to, which joins the segments into one network.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TypedDict

from api.models.city import Bounds, CityMap, MapFloodSite, MapPlace, MapRoad, MapWard
from api.models.sensors import Location
from smartcity.city import DOMAIN_OF, City, Place, Road
from smartcity.rulefile import RuleSet
from smartcity.topics import Domain

MARGIN = 0.08  # of the span, on every side
MIN_SPAN_DEG = 0.01  # about a kilometre: a city of one place still gets a readable box
METRES_PER_DEG_LAT = 111_320.0


def bounds(points: Sequence[Location]) -> Bounds:
    if not points:
        return Bounds(south=-MIN_SPAN_DEG / 2, west=-MIN_SPAN_DEG / 2,
                      north=MIN_SPAN_DEG / 2, east=MIN_SPAN_DEG / 2)
    lats, lons = [p.lat for p in points], [p.lon for p in points]

    def padded(lo: float, hi: float) -> tuple[float, float]:
        span = max(hi - lo, MIN_SPAN_DEG)
        mid = (lo + hi) / 2
        half = span / 2 + span * MARGIN
        return mid - half, mid + half

    south, north = padded(min(lats), max(lats))
    west, east = padded(min(lons), max(lons))
    return Bounds(south=max(south, -90), west=max(west, -180), north=min(north, 90),
                  east=min(east, 180))


def road_lines(road: Road, centres: dict[str, tuple[float, float]]) -> list[list[Location]]:
    lat, lon = road.lat, road.lon
    arms = []
    for other in road.connects:
        o_lat, o_lon = centres.get(other, (lat, lon))
        if (o_lat, o_lon) != (lat, lon):
            arms.append(((o_lat - lat) / 2, (o_lon - lon) / 2))
    if len(arms) == 1:
        d_lat, d_lon = arms[0]
        arms.append((-d_lat, -d_lon))
    if not arms:
        half = road.length_m / 2
        d_lon = half / (METRES_PER_DEG_LAT * max(math.cos(math.radians(lat)), 0.01))
        arms = [(0.0, -d_lon), (0.0, d_lon)]
    here = Location(lat=lat, lon=lon)
    return [[here, Location(lat=_clamp(lat + d_lat, 90), lon=_clamp(lon + d_lon, 180))]
            for d_lat, d_lon in arms]


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


class _PlaceFields(TypedDict):
    id: str
    device_id: str
    domain: Domain
    name: str
    name_en: str | None
    ward: str
    location: Location
    copy_of: str | None
    copy_index: int


def _place(city: City, section: str, p: Place) -> _PlaceFields:
    original = city.original(p.id)
    # scaled() names copy k of a place "{id}-x{k}"
    copy_index = int(p.id.rsplit("-x", 1)[1]) if original != p.id else 0
    return _PlaceFields(id=p.id, device_id=p.device_id, domain=DOMAIN_OF[section], name=p.name,
                        name_en=p.name_en, ward=p.ward, location=Location(lat=p.lat, lon=p.lon),
                        copy_of=original if original != p.id else None, copy_index=copy_index)


def flood_levels(rules: RuleSet, site: str) -> dict[str, float]:
    """The depths at which the flood-depth rule raises each level at ``site``."""
    rule = next((r for r in rules.enabled() if r.domain is Domain.FLOOD
                 and r.metric == "water_level_cm"), None)
    return {t.level.value: t.enter for t in rule.thresholds(site)} if rule else {}


def city_map(city: City, rules: RuleSet | None = None) -> CityMap:
    """The geometry; ``rules`` (already ``with_city``) give each flood site its levels."""
    everything = [p for _, places in city.sections() for p in places]
    in_ward: dict[str, list[Place]] = defaultdict(list)
    for p in everything:
        in_ward[p.ward].append(p)
    wards = []
    for w in city.wards:
        mine = in_ward.get(w.id, [])
        centre = (Location(lat=sum(p.lat for p in mine) / len(mine),
                           lon=sum(p.lon for p in mine) / len(mine)) if mine else None)
        wards.append(MapWard(id=w.id, name=w.name, name_en=w.name_en, centre=centre,
                             places=len(mine)))
    centres = {r.id: (r.lat, r.lon) for r in city.roads}
    roads = [MapRoad(**_place(city, "roads", r), connects=list(r.connects), lanes=r.lanes,
                     free_flow_kmh=r.free_flow_kmh, length_m=r.length_m,
                     lines=road_lines(r, centres))
             for r in city.roads]
    floods = [MapFloodSite(**_place(city, "flood_sites", f), warning_cm=f.warning_cm,
                           levels=flood_levels(rules, f.id) if rules else {},
                           roads=list(f.roads))
              for f in city.flood_sites]
    drawn = [Location(lat=p.lat, lon=p.lon) for p in everything]
    drawn += [end for r in roads for line in r.lines for end in line]
    return CityMap(
        name=city.name, name_en=city.name_en, scale=city.scale, bounds=bounds(drawn),
        wards=wards, roads=roads, flood_sites=floods,
        homes=[MapPlace(**_place(city, "homes", h)) for h in city.homes],
        rain_gauges=[MapPlace(**_place(city, "rain_gauges", g)) for g in city.rain_gauges],
        tide_gauges=[MapPlace(**_place(city, "tide_gauges", g)) for g in city.tide_gauges],
    )
