"""Pieces of Grafana dashboard JSON (schema 39, Grafana 11): InfluxQL targets, panels,
thresholds and a grid that lays panels out left to right. Pure; ``build_dashboards`` uses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from smartcity.alerts import AlertLevel
from smartcity.metrics import CATALOGUE
from smartcity.rulefile import Rule

Json = dict[str, Any]

DATASOURCE: Json = {"type": "influxdb", "uid": "smartcity-influx"}
SCHEMA_VERSION = 39

LEVEL_COLORS = {AlertLevel.ADVISORY: "blue", AlertLevel.WATCH: "yellow",
                AlertLevel.WARNING: "orange", AlertLevel.DANGER: "red"}
CALM = "green"

# Grafana's ids for the catalogue's units (relative humidity by its SenML unit: Grafana shows
# it apart from other percentages); a unit Grafana has none of is shown as a suffix, in
# Vietnamese like the rest of the boards.
_GRAFANA_UNIT_IDS = {
    "%RH": "humidity",
    "W": "watt",
    "°C": "celsius",
    "µg/m³": "conμgm3",  # sic: Grafana's id has a Greek mu (U+03BC), not the micro sign
    "ppm": "ppm",
    "%": "percent",
    "km/h": "velocitykmh",
}
UNITS = {name: _GRAFANA_UNIT_IDS.get(m.senml.unit or "")
         or _GRAFANA_UNIT_IDS.get(m.unit, f"suffix:{m.unit_in('vi')}")
         for name, m in CATALOGUE.items()}

LEVEL_TEXT = {
    "advisory": ("Lưu ý · Advisory", "blue"),
    "watch": ("Theo dõi · Watch", "yellow"),
    "warning": ("Cảnh báo · Warning", "orange"),
    "danger": ("Nguy hiểm · Danger", "red"),
}
STATE_TEXT = {
    "raised": ("Mới · Raised", "red"),
    "updated": ("Cập nhật · Updated", "orange"),
    "cleared": ("Đã hết · Cleared", "green"),
}


def target(query: str, ref: str = "A", fmt: str = "time_series",
           alias: str | None = None) -> Json:
    """A raw InfluxQL query, as Grafana's query editor stores it in raw mode."""
    out: Json = {"refId": ref, "datasource": DATASOURCE, "rawQuery": True, "query": query,
                 "resultFormat": fmt}
    if alias:
        out["alias"] = alias
    return out


def steps(base: str, *levels: tuple[float, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": base, "value": None}] +
            [{"color": color, "value": value} for value, color in levels]}


def rule_steps(rule: Rule, site: str | None = None) -> Json:
    """The rule's levels as Grafana thresholds: each level's colour from where it is entered.
    A ``below`` rule (traffic speed) is most severe at the bottom of the scale."""
    levels = rule.thresholds(site)
    colors = [LEVEL_COLORS[t.level] for t in levels]
    if rule.direction == "above":
        return steps(CALM, *[(t.enter, c) for t, c in zip(levels, colors, strict=True)])
    # Mildest first, so for a below rule the enters fall; walk them up from the worst.
    enters = [t.enter for t in reversed(levels)]
    above = [*list(reversed(colors))[1:], CALM]
    return steps(colors[-1], *zip(enters, above, strict=True))


def value_mappings(texts: dict[str, tuple[str, str]]) -> list[Json]:
    return [{"type": "value", "options": {
        key: {"text": text, "color": color, "index": i}
        for i, (key, (text, color)) in enumerate(texts.items())}}]


def rename(name: str, display: str, *extra: Json) -> Json:
    """An override for the series or column ``name``: shown as ``display``."""
    return {"matcher": {"id": "byName", "options": name},
            "properties": [{"id": "displayName", "value": display}, *extra]}


def prop(key: str, value: Any) -> Json:
    return {"id": key, "value": value}


def _reduce(calc: str = "lastNotNull") -> Json:
    return {"calcs": [calc], "fields": "", "values": False}


def panel(kind: str, title: str, description: str, targets: Sequence[Json], *,
          unit: str | None = None, thresholds: Json | None = None,
          decimals: int | None = None, minimum: float | None = None,
          maximum: float | None = None, custom: Json | None = None,
          options: Json | None = None, overrides: Iterable[Json] = (),
          color_mode: str | None = None, no_value: str | None = None,
          mappings: list[Json] | None = None, interval: str | None = None) -> Json:
    defaults: Json = {"color": {"mode": color_mode or "thresholds"},
                      "thresholds": thresholds or steps(CALM), "mappings": mappings or []}
    for key, value in (("unit", unit), ("decimals", decimals), ("min", minimum),
                       ("max", maximum), ("noValue", no_value)):
        if value is not None:
            defaults[key] = value
    if custom is not None:
        defaults["custom"] = custom
    out: Json = {"type": kind, "title": title, "description": description,
                 "datasource": DATASOURCE,
                 "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
                 "options": options or {}, "targets": list(targets)}
    if interval:
        out["interval"] = interval
    return out


def timeseries(title: str, description: str, targets: Sequence[Json], *, bars: bool = False,
               threshold_lines: bool = False, **kw: Any) -> Json:
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 2, "lineInterpolation":
              "smooth", "fillOpacity": 60 if bars else 12, "gradientMode": "opacity",
              "showPoints": "never", "spanNulls": True, "axisPlacement": "auto",
              "axisSoftMin": 0, "stacking": {"mode": "none", "group": "A"},
              "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"}}
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    kw.setdefault("color_mode", "palette-classic")
    return panel("timeseries", title, description, targets, custom=custom, options=options,
                 **kw)


def stat(title: str, description: str, targets: Sequence[Json], *, graph: bool = False,
         **kw: Any) -> Json:
    options = {"reduceOptions": _reduce(), "colorMode": "background",
               "graphMode": "area" if graph else "none", "justifyMode": "center",
               "textMode": "value", "orientation": "auto", "wideLayout": True,
               "showPercentChange": False}
    return panel("stat", title, description, targets, options=options, **kw)


def gauge(title: str, description: str, targets: Sequence[Json], **kw: Any) -> Json:
    options = {"reduceOptions": _reduce(), "orientation": "auto", "showThresholdMarkers": True,
               "showThresholdLabels": False, "sizing": "auto"}
    return panel("gauge", title, description, targets, options=options, **kw)


def bargauge(title: str, description: str, targets: Sequence[Json], **kw: Any) -> Json:
    options = {"reduceOptions": _reduce(), "orientation": "horizontal",
               "displayMode": "gradient", "valueMode": "color", "showUnfilled": True,
               "namePlacement": "left", "sizing": "auto", "minVizHeight": 16,
               "maxVizHeight": 40}
    return panel("bargauge", title, description, targets, options=options, **kw)


def state_timeline(title: str, description: str, targets: Sequence[Json], **kw: Any) -> Json:
    custom = {"lineWidth": 0, "fillOpacity": 85}
    options = {"mergeValues": True, "showValue": "never", "alignValue": "left",
               "rowHeight": 0.85, "legend": {"displayMode": "list", "placement": "bottom",
                                            "showLegend": True},
               "tooltip": {"mode": "single", "sort": "none"}}
    return panel("state-timeline", title, description, targets, custom=custom,
                 options=options, **kw)


def table(title: str, description: str, targets: Sequence[Json], **kw: Any) -> Json:
    custom = {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False,
              "filterable": False}
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False,
                                                                  "reducer": ["sum"]}}
    return panel("table", title, description, targets, custom=custom, options=options, **kw)


class Grid:
    """Places panels left to right on Grafana's 24-column grid, starting a new row when a
    panel does not fit."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0

    def place(self, w: int, h: int) -> Json:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos


class Board:
    def __init__(self, uid: str, title: str, description: str, time_from: str = "now-3h",
                 tags: Sequence[str] = ()) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.time_from = time_from
        self.tags = ["smartcity", *tags]
        self.panels: list[Json] = []
        self.variables: list[Json] = []
        self._grid = Grid()

    def add(self, w: int, h: int, body: Json) -> None:
        self.panels.append({"id": len(self.panels) + 1, "gridPos": self._grid.place(w, h),
                            **body})

    def variable(self, name: str, label: str, query: str, *, multi: bool = True) -> None:
        self.variables.append({
            "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
            "query": {"query": query, "refId": "InfluxVariableQueryEditor-VariableQuery"},
            "definition": query, "multi": multi, "includeAll": multi,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi
            else {}, "refresh": 2, "sort": 1, "regex": "", "hide": 0, "options": [],
            "skipUrlSync": False})

    def json(self) -> Json:
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": self.tags, "editable": False, "graphTooltip": 1, "liveNow": False,
            "refresh": "5s", "schemaVersion": SCHEMA_VERSION, "version": 1,
            "timezone": "", "weekStart": "", "fiscalYearStartMonth": 0,
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            # Links to the other boards, by tag: nothing here needs the internet.
            "links": [{"type": "dashboards", "tags": ["smartcity"], "asDropdown": False,
                       "includeVars": False, "keepTime": True, "targetBlank": False,
                       "title": "smartcity", "icon": "external link", "tooltip": "",
                       "url": ""}],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }
