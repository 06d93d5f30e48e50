// The map of the city: the Saigon River, canals, ward outlines and road courses from the
// city's GeoJSON; roads coloured by speed, flood sites as water that spreads with its depth,
// homes, gauges and exhibitors' devices; every label placed where it covers nothing else.

import { byKind, linePath, projection, ringPath, wardBounds } from "./geo.js";
import { metricLabel, nameOf, num, t, unit } from "./i18n.js";
import { place as placeLabels } from "./labels.js";
import { air, congestion, depth, rain, TIDE_ALARMS_CM } from "./levels.js";

const SVG = "http://www.w3.org/2000/svg";
const GOLDEN_ANGLE = 2.399963;
const COPY_SPREAD_PX = 16;
const MARKER_R = 18;
const LINE_PX = [24, 34, 26];  // name, value, detail: baselines apart
const ALERT_EXTRA_PX = 12;
const ALERT_RANK = { danger: 0, warning: 1, watch: 2, advisory: 3 };
// what a visitor must find first; the river and the wards' names make the city recognisable
const KIND_RANK = { flood: 4, tide: 5, road: 7, device: 8, home: 10, rain: 11 };
const AREA_RANK = { river: 6, ward: 9, place: 12, canal: 13, area: 14 };
// How far a name may move off its spot: a district's name moved across the river would
// mislead, so it stays close or is left out; a ward is large.
const AREA_TRIES = { river: 40, ward: 40, place: 13, canal: 25, area: 25 };

// A reading as the map writes it; a dash while the device has not sent it.
function figureOf(value, digits) {
  return value === undefined ? "–" : num(value, digits);
}

function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function copyOffset(k) {
  if (!k) return [0, 0];
  const r = COPY_SPREAD_PX * Math.sqrt(k);
  return [r * Math.cos(k * GOLDEN_ANGLE), r * Math.sin(k * GOLDEN_ANGLE)];
}

// Water spreads on the street: the area's radius in pixels for a depth in cm.
export function floodRadius(cm) {
  if (!(cm > 0)) return 0;
  return Math.min(90, 14 + 1.4 * cm);
}

export class MapView {
  constructor(svg, store, overlays = []) {
    this.svg = svg;
    this.store = store;
    this.overlays = overlays;  // elements over the map that labels keep clear of
    this.map = null;
    this.nodes = new Map();  // device_id -> {kind, place, marker, label, ...}
    this.areas = [];  // names of the river, canals, wards, districts
    this.alerting = new Map();
  }

  build(map, geo) {
    this.map = map;
    this.geo = geo;
    this.nodes.clear();
    this.areas = [];
    const width = this.svg.clientWidth || 1380;
    const height = this.svg.clientHeight || 850;
    this.width = width;
    this.height = height;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.replaceChildren();
    // The places fill the view; the wards' outlines run on past its edges, as on any map.
    const b = geo ? wardBounds(geo, map.bounds) : map.bounds;
    const bounds = { south: Math.max(b.south, map.bounds.south),
                     north: Math.min(b.north, map.bounds.north),
                     west: Math.max(b.west, map.bounds.west), east: Math.min(b.east, map.bounds.east) };
    const project = this.project = projection(bounds, width, height);

    el("rect", { class: "land", x: 0, y: 0, width, height }, this.svg);
    const ground = el("g", { class: "ground" }, this.svg);
    const water = el("g", { class: "water" }, this.svg);
    const roads = el("g", { class: "roads" }, this.svg);
    this.spread = el("g", { class: "flood-areas" }, this.svg);
    this.markers = el("g", { class: "markers" }, this.svg);
    this.leaders = el("g", { class: "leaders" }, this.svg);
    this.labels = el("g", { class: "labels" }, this.svg);

    for (const f of byKind(geo, "area")) {
      el("path", { class: "area", d: ringPath(project, f.geometry.coordinates[0]) }, ground);
      this.addArea(f, "area");
    }
    const wards = geo ? byKind(geo, "ward") : [];
    wards.forEach((f, i) => {
      const g = el("g", { class: `ward ward-${i % 4}`, "data-ward": f.properties.id }, ground);
      el("path", { d: ringPath(project, f.geometry.coordinates[0]) }, g);
    });
    const named = new Map(map.wards.map((w) => [w.id, w]));
    for (const f of wards) this.addArea(f, "ward", named.get(f.properties.id));
    if (!geo) {
      for (const w of map.wards.filter((x) => x.centre)) {
        this.addArea({ properties: { id: w.id, label: [w.centre.lon, w.centre.lat] } }, "ward", w);
      }
    }
    for (const kind of ["canal", "river"]) {
      for (const f of byKind(geo, kind)) {
        const px = Math.max(kind === "river" ? 16 : 5, f.properties.width_m * project.pxPerMetre);
        el("path", { class: `${kind} bank`, d: linePath(project, f.geometry.coordinates),
                     "stroke-width": px + 4 }, water);
        el("path", { class: kind, d: linePath(project, f.geometry.coordinates),
                     "stroke-width": px, "data-water": f.properties.id }, water);
        this.addArea(f, kind);
      }
    }
    for (const f of byKind(geo, "place")) this.addArea(f, "place");

    const courses = new Map(byKind(geo, "road").map((f) => [f.properties.id, f]));
    for (const road of map.roads) {
      const [dx, dy] = copyOffset(road.copy_index);
      const g = el("g", { class: "dev road", "data-device": road.device_id,
                          transform: `translate(${dx},${dy})` }, roads);
      const course = courses.get(road.copy_of || road.id);
      const width = 4 + road.lanes * 1.6;
      if (course) {
        el("path", { class: "course", d: linePath(project, course.geometry.coordinates),
                     "stroke-width": width }, g);
      } else {
        for (const line of road.lines) {
          el("path", { class: "course", "stroke-width": width,
                       d: linePath(project, line.map((p) => [p.lon, p.lat])) }, g);
        }
      }
      const [cx, cy] = project(road.location.lat, road.location.lon);
      el("circle", { cx, cy, r: 24, class: "halo" }, g);
      el("circle", { cx, cy, r: 6 + road.lanes, class: "detector" }, g);
      this.add(road.device_id, "road", road, g, cx + dx, cy + dy);
    }
    const kinds = [["flood", map.flood_sites], ["home", map.homes], ["rain", map.rain_gauges],
                   ["tide", map.tide_gauges]];
    for (const [kind, places] of kinds) {
      for (const place of places) {
        const [x, y] = project(place.location.lat, place.location.lon);
        const [dx, dy] = copyOffset(place.copy_index);
        const node = this.add(place.device_id, kind, place,
                              this.marker(kind, x + dx, y + dy, place), x + dx, y + dy);
        if (kind === "flood") {
          node.spread = el("circle", { cx: x + dx, cy: y + dy, r: 0, class: "flood-area",
                                       "data-flood-area": place.device_id }, this.spread);
        }
      }
    }
    this.laidOut = false;
    this.syncDevices();
  }

  addArea(feature, kind, ward = null) {
    const p = feature.properties;
    let at = p.label;
    if (!at && feature.geometry?.type === "Point") at = feature.geometry.coordinates;
    if (!at && feature.geometry?.type === "LineString") {
      const c = feature.geometry.coordinates;
      at = c[Math.floor(c.length / 2)];
    }
    if (!at) return;
    const [x, y] = this.project(at[1], at[0]);
    const g = el("g", { class: `area-label ${kind}-label`,
                        ...(kind === "ward" ? { "data-ward": p.id } : {}) }, this.labels);
    const text = el("text", { x: 0, y: 0 }, g);
    this.areas.push({ kind, g, text, names: ward || p, x, y });
  }

  marker(kind, x, y, place) {
    const small = place.copy_index > 0;
    const g = el("g", { class: `dev ${kind}`, "data-device": place.device_id,
                        transform: `translate(${x},${y})${small ? " scale(0.6)" : ""}` },
                 this.markers);
    el("circle", { r: 26, class: "halo" }, g);
    if (kind === "flood") {
      el("circle", { r: 17, class: "ring" }, g);
      el("circle", { r: 12, class: "fill" }, g);
    } else if (kind === "home") {
      el("path", { d: "M-15,2 L0,-14 L15,2 L11,2 L11,14 L-11,14 L-11,2 Z", class: "fill" }, g);
    } else if (kind === "rain") {
      el("path", { d: "M0,-17 C8,-5 13,1 13,6 A13,13 0 0 1 -13,6 C-13,1 -8,-5 0,-17 Z",
                   class: "fill" }, g);
    } else if (kind === "tide") {
      el("rect", { x: -15, y: -15, width: 30, height: 30, rx: 4, class: "fill" }, g);
      el("path", { d: "M-10,3 q5,-6 10,0 t10,0", class: "wave" }, g);
    } else {
      el("path", { d: "M0,-17 L17,0 L0,17 L-17,0 Z", class: "fill" }, g);
    }
    return g;
  }

  add(id, kind, place, marker, x, y) {
    const node = { kind, place, marker, x, y, label: null, name: null, title: null, value: null,
                   detail: null, state: null, extra: place.copy_index > 0, at: null };
    if (!node.extra) {
      node.label = el("g", { class: `label ${kind}`, "data-label-for": id }, this.labels);
      node.name = el("text", { class: "name", x: 0, y: LINE_PX[0] }, node.label);
      node.value = el("text", { class: "value", x: 0, y: LINE_PX[0] + LINE_PX[1] }, node.label);
      node.title = el("tspan", { class: "title" }, node.name);
      node.note = el("tspan", { class: "note" }, node.name);
      if (kind === "tide") {
        node.detail = el("text", { class: "detail", x: 0,
                                   y: LINE_PX[0] + LINE_PX[1] + LINE_PX[2] }, node.label);
      }
      node.leader = el("line", { class: "leader", "data-leader-for": id }, this.leaders);
    }
    this.nodes.set(id, node);
    return node;
  }

  // Devices the map does not hold: exhibitors' devices, registered while the board runs.
  syncDevices() {
    if (!this.map) return;
    let changed = false;
    for (const [id, node] of this.nodes) {
      if (node.kind === "device" && !this.store.devices.has(id)) {
        node.marker.remove();
        node.label?.remove();
        node.leader?.remove();
        this.nodes.delete(id);
        changed = true;
      }
    }
    for (const device of this.store.devices.values()) {
      const node = this.nodes.get(device.device_id);
      if (node) {
        if (node.kind === "device") node.place = device;
        continue;
      }
      let [x, y] = this.project(device.lat, device.lon);
      x = Math.min(Math.max(x, 24), this.width - 24);
      y = Math.min(Math.max(y, 24), this.height - 24);
      const place = { ...device, copy_index: 0 };
      const added = this.add(device.device_id, "device", place,
                             this.marker("device", x, y, place), x, y);
      added.marker.classList.toggle("exhibitor", device.source === "live");
      changed = true;
    }
    if (changed || !this.laidOut) this.relabel();
  }

  // Names and values of everything, then where the labels go.
  relabel() {
    for (const area of this.areas) area.text.textContent = nameOf(area.names);
    for (const [id, node] of this.nodes) {
      node.state = null;  // its note is worded again at the next refresh
      this.update(id, true);
    }
    this.layout(true);
  }

  update(id, naming = false) {
    const node = this.nodes.get(id);
    if (!node) return;
    const m = this.store.metrics(id);
    const { kind, place } = node;
    let value = "";
    if (kind === "road") {
      node.marker.dataset.level = congestion(m, place.free_flow_kmh);
      value = m.speed_kmh === undefined ? "–" : `${num(m.speed_kmh, 0)} ${unit("speed_kmh")}`;
      if (m.occupancy_pct !== undefined) {
        value += ` · ${num(m.occupancy_pct, 0)}${unit("occupancy_pct")}`;
      }
    } else if (kind === "flood") {
      node.marker.dataset.level = depth(m.water_level_cm, place.warning_cm, place.levels);
      value = `${figureOf(m.water_level_cm, 1)} ${unit("water_level_cm")}`;
      value += ` / ${num(place.warning_cm, 0)}`;
      if (node.spread) {
        node.spread.setAttribute("r", floodRadius(m.water_level_cm).toFixed(1));
        node.spread.dataset.level = node.marker.dataset.level;
      }
    } else if (kind === "home") {
      node.marker.dataset.level = air(m.pm25_ugm3);
      const parts = [];
      if (m.power_w !== undefined) parts.push(`${num(m.power_w / 1000, 1)} kW`);
      if (m.temperature_c !== undefined) {
        parts.push(`${num(m.temperature_c, 1)}${unit("temperature_c")}`);
      }
      if (m.pm25_ugm3 !== undefined) parts.push(`PM2.5 ${num(m.pm25_ugm3, 0)}`);
      value = parts.join(" · ") || "–";
    } else if (kind === "rain") {
      node.marker.dataset.level = rain(m.rain_mm_h);
      value = `${figureOf(m.rain_mm_h, 1)} ${unit("rain_mm_h")}`;
      if (m.temperature_c !== undefined) {
        value += ` · ${num(m.temperature_c, 1)}${unit("temperature_c")}`;
      }
    } else if (kind === "tide") {
      value = `${figureOf(m.river_level_cm, 0)} ${unit("river_level_cm")}`;
      const above = TIDE_ALARMS_CM.filter((a) => m.river_level_cm >= a).length;
      node.marker.dataset.level = ["low", "watch", "warning", "danger"][above];
      if (node.detail && (naming || !node.detail.textContent)) {
        node.detail.textContent = t("tideDatum").replace("{alarm}", num(TIDE_ALARMS_CM[0], 0));
      }
    } else {
      value = Object.entries(m).slice(0, 2)
        .map(([k, v]) => `${metricLabel(k)} ${num(v, 1)} ${unit(k)}`.trim()).join(" · ") || "–";
    }
    if (node.value && node.value.textContent !== value) {
      // a longer value may no longer fit where its label is: look again soon
      if (node.value.textContent.length < value.length) this.dirty = true;
      node.value.textContent = value;
    }
    if (naming && node.name) {
      node.title.textContent = nameOf(place) + (kind === "device" && place.source === "live"
        ? ` (${t("exhibitor").toLowerCase()})` : "");
    }
  }

  // Greyed out when stale, offline or never heard from; a ring when it has an alert.
  refreshStates(now, staleMs) {
    const levels = this.store.alertLevels();
    for (const [id, node] of this.nodes) {
      const state = this.store.state(id, now, staleMs);
      if (node.state !== state) {
        node.state = state;
        node.marker.dataset.state = state;
        if (node.label) {
          node.label.dataset.state = state;
          node.note.textContent = state === "ok" ? "" : ` · ${t(`state_${state}`)}`;
          this.dirty = true;
        }
      }
      const alert = levels.get(id) || "";
      if ((node.marker.dataset.alert || "") !== alert) {
        if (alert) node.marker.dataset.alert = alert;
        else delete node.marker.dataset.alert;
        if (node.label) {
          if (alert) node.label.dataset.alert = alert;
          else delete node.label.dataset.alert;
          // an alert's value is set larger: its line moves down to make room
          const valueY = LINE_PX[0] + LINE_PX[1] + (alert ? ALERT_EXTRA_PX : 0);
          node.value.setAttribute("y", valueY);
          node.detail?.setAttribute("y", valueY + LINE_PX[2]);
        }
        this.dirty = true;
      }
    }
    if (this.dirty) this.layout(false);
  }

  // Every label in order of importance (alerts, then water, then the rest; names of places
  // last), each where it covers no other label, marker or overlay; kept where it is while
  // it still fits, so labels do not wander.
  layout(fresh) {
    this.dirty = false;
    const svgBox = this.svg.getBoundingClientRect();
    const k = svgBox.width ? this.width / svgBox.width : 1;
    const obstacles = this.overlays.filter((o) => o && !o.hidden).map((o) => {
      const r = o.getBoundingClientRect();
      return { x: (r.left - svgBox.left) * k, y: (r.top - svgBox.top) * k,
               w: r.width * k, h: r.height * k, owner: -1 };
    });
    const entries = [];
    for (const node of this.nodes.values()) {
      const alert = node.marker.dataset.alert;
      const rank = alert ? ALERT_RANK[alert] ?? 3 : KIND_RANK[node.kind] ?? 9;
      if (node.label) entries.push({ rank, node, g: node.label });
    }
    for (const area of this.areas) entries.push({ rank: AREA_RANK[area.kind], area, g: area.g });
    entries.sort((a, b) => a.rank - b.rank);
    const markerOf = new Map();
    entries.forEach((e, i) => { if (e.node) markerOf.set(e.node, i); });
    for (const node of this.nodes.values()) {
      const r = node.extra ? MARKER_R * 0.6 : MARKER_R;
      obstacles.push({ x: node.x - r, y: node.y - r, w: 2 * r, h: 2 * r,
                       owner: markerOf.has(node) ? markerOf.get(node) : -1 });
    }
    const items = entries.map((e) => {
      e.g.removeAttribute("transform");
      e.g.style.visibility = "";
      const box = e.g.getBBox();
      e.box = box;
      const anchor = e.node ? { x: e.node.x, y: e.node.y, r: MARKER_R + 6 }
        : { x: e.area.x, y: e.area.y, r: 0 };
      const prefer = anchor.x < this.width / 2 ? -1 : 1;  // outwards, where the land is
      // names of places stay near where they belong, or are left out
      const item = { w: box.width, h: box.height, anchor, step: e.node ? 34 : 26, prefer,
                     centred: !e.node, tries: e.node ? undefined : AREA_TRIES[e.area.kind] };
      if (!fresh && e.g.placedAt) item.previous = e.g.placedAt;
      return item;
    });
    const view = { x: 4, y: 4, w: this.width - 8, h: this.height - 8 };
    const spots = placeLabels(items, obstacles, view);
    entries.forEach((e, i) => {
      const spot = spots[i];
      const leader = e.node?.leader;
      if (!spot) {
        e.g.style.visibility = "hidden";
        e.g.dataset.hidden = "1";
        e.g.placedAt = null;
        if (leader) leader.style.visibility = "hidden";
        return;
      }
      delete e.g.dataset.hidden;
      e.g.placedAt = spot;
      const [x, y] = spot;
      e.g.setAttribute("transform", `translate(${(x - e.box.x).toFixed(1)},${(y - e.box.y).toFixed(1)})`);
      if (leader) {
        const { x: ax, y: ay } = e.node;
        const nx = Math.max(x, Math.min(ax, x + e.box.width));
        const ny = Math.max(y, Math.min(ay, y + e.box.height));
        const far = Math.hypot(nx - ax, ny - ay) > MARKER_R + 16;
        leader.style.visibility = far ? "" : "hidden";
        Object.entries({ x1: ax, y1: ay, x2: nx, y2: ny })
          .forEach(([name, v]) => leader.setAttribute(name, v));
      }
    });
    this.laidOut = true;
  }
}
