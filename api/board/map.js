// The schematic map: wards as regions around their centres, roads coloured by congestion,
// flood sites by depth, homes, gauges and exhibitors' devices, each with a label.

import { metricLabel, nameOf, num, t, unit } from "./i18n.js";
import { air, congestion, depth, rain } from "./levels.js";

const SVG = "http://www.w3.org/2000/svg";
const GOLDEN_ANGLE = 2.399963;
const COPY_SPREAD_PX = 16;
const LABEL_GAP_PX = 26;
const LABEL_LINE_PX = [22, 30];  // name, value

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

// Keep the part of a convex polygon where a*x + b*y <= c.
function clip(polygon, a, b, c) {
  const out = [];
  for (let i = 0; i < polygon.length; i += 1) {
    const p = polygon[i];
    const q = polygon[(i + 1) % polygon.length];
    const fp = a * p[0] + b * p[1] - c;
    const fq = a * q[0] + b * q[1] - c;
    if (fp <= 0) out.push(p);
    if ((fp <= 0) !== (fq <= 0)) {
      const s = fp / (fp - fq);
      out.push([p[0] + s * (q[0] - p[0]), p[1] + s * (q[1] - p[1])]);
    }
  }
  return out;
}

// Voronoi-like cells: every point of the view belongs to the nearest ward centre.
function cells(centres, width, height) {
  const rect = [[0, 0], [width, 0], [width, height], [0, height]];
  return centres.map(([x, y], i) => {
    let poly = rect;
    centres.forEach(([ox, oy], j) => {
      if (j === i || (ox === x && oy === y)) return;
      poly = clip(poly, ox - x, oy - y, (ox * ox + oy * oy - x * x - y * y) / 2);
    });
    return poly;
  });
}

function copyOffset(k) {
  if (!k) return [0, 0];
  const r = COPY_SPREAD_PX * Math.sqrt(k);
  return [r * Math.cos(k * GOLDEN_ANGLE), r * Math.sin(k * GOLDEN_ANGLE)];
}

export class MapView {
  constructor(svg, store) {
    this.svg = svg;
    this.store = store;
    this.map = null;
    this.nodes = new Map();  // device_id -> {kind, place, marker, label, name, value, x, y}
  }

  build(map) {
    this.map = map;
    this.nodes.clear();
    const width = this.svg.clientWidth || 1360;
    const height = this.svg.clientHeight || 850;
    this.width = width;
    this.height = height;
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.replaceChildren();
    this.project = projection(map.bounds, width, height);

    const wards = el("g", { class: "wards" }, this.svg);
    const roads = el("g", { class: "roads" }, this.svg);
    this.markers = el("g", { class: "markers" }, this.svg);
    this.leaders = el("g", { class: "leaders" }, this.svg);
    this.labels = el("g", { class: "labels" }, this.svg);

    const withCentre = map.wards.filter((w) => w.centre);
    const centres = withCentre.map((w) => this.project(w.centre.lat, w.centre.lon));
    this.wardNames = [];
    cells(centres, width, height).forEach((poly, i) => {
      const ward = withCentre[i];
      const g = el("g", { class: `ward ward-${i % 6}`, "data-ward": ward.id }, wards);
      el("polygon", { points: poly.map((p) => p.join(",")).join(" ") }, g);
      const [cx, cy] = centroid(poly);
      const name = el("text", { x: cx, y: cy, class: "ward-name" }, g);
      this.wardNames.push([name, ward]);
    });

    for (const road of map.roads) {
      const [dx, dy] = copyOffset(road.copy_index);
      const g = el("g", { class: "dev road", "data-device": road.device_id,
                          transform: `translate(${dx},${dy})` }, roads);
      const [cx, cy] = this.project(road.location.lat, road.location.lon);
      el("circle", { cx, cy, r: 24, class: "halo" }, g);
      for (const line of road.lines) {
        const [x1, y1] = this.project(line[0].lat, line[0].lon);
        const [x2, y2] = this.project(line[1].lat, line[1].lon);
        el("line", { x1, y1, x2, y2, "stroke-width": 3 + road.lanes * 1.5 }, g);
      }
      el("circle", { cx, cy, r: 5 + road.lanes, class: "detector" }, g);
      this.add(road.device_id, "road", road, g, cx, cy);
    }
    const kinds = [["flood", map.flood_sites], ["home", map.homes], ["rain", map.rain_gauges],
                   ["tide", map.tide_gauges]];
    for (const [kind, places] of kinds) {
      for (const place of places) {
        const [x, y] = this.project(place.location.lat, place.location.lon);
        const [dx, dy] = copyOffset(place.copy_index);
        this.add(place.device_id, kind, place, this.marker(kind, x + dx, y + dy, place), x, y);
      }
    }
    this.syncDevices();
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
      el("rect", { x: -14, y: -14, width: 28, height: 28, rx: 4, class: "fill" }, g);
      el("path", { d: "M-10,3 q5,-6 10,0 t10,0", class: "wave" }, g);
    } else {
      el("path", { d: "M0,-17 L17,0 L0,17 L-17,0 Z", class: "fill" }, g);
    }
    return g;
  }

  add(id, kind, place, marker, x, y) {
    const node = { kind, place, marker, x, y, label: null, name: null, title: null, value: null,
                   state: null, extra: place.copy_index > 0 };
    if (!node.extra) {
      node.label = el("g", { class: `label ${kind}`, "data-label-for": id }, this.labels);
      node.name = el("text", { class: "name", y: LABEL_LINE_PX[0] - 4 }, node.label);
      node.value = el("text", { class: "value", y: LABEL_LINE_PX[0] + LABEL_LINE_PX[1] - 4 },
                      node.label);
      node.title = el("tspan", { class: "title" }, node.name);
      node.note = el("tspan", { class: "note" }, node.name);
      node.leader = el("line", { class: "leader", "data-leader-for": id }, this.leaders);
    }
    this.nodes.set(id, node);
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
      x = Math.min(Math.max(x, 20), this.width - 20);
      y = Math.min(Math.max(y, 20), this.height - 20);
      const place = { ...device, copy_index: 0 };
      this.add(device.device_id, "device", place, this.marker("device", x, y, place), x, y);
      const m = this.nodes.get(device.device_id).marker;
      m.classList.toggle("exhibitor", device.source === "live");
      changed = true;
    }
    if (changed || !this.laidOut) this.relabel();
  }

  // Names and values of every device, then where the labels go.
  relabel() {
    for (const [name, ward] of this.wardNames || []) name.textContent = nameOf(ward);
    for (const [id, node] of this.nodes) {
      node.state = null;  // its note is worded again at the next refresh
      this.update(id, true);
    }
    this.layout();
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
    } else {
      value = Object.entries(m).slice(0, 2)
        .map(([k, v]) => `${metricLabel(k)} ${num(v, 1)} ${unit(k)}`.trim()).join(" · ") || "–";
    }
    if (node.value && node.value.textContent !== value) node.value.textContent = value;
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
        }
      }
      const alert = levels.get(id) || "";
      if ((node.marker.dataset.alert || "") !== alert) {
        if (alert) node.marker.dataset.alert = alert;
        else delete node.marker.dataset.alert;
      }
    }
  }

  // Labels go outwards (left of the middle to the left) unless they would not fit there,
  // stacked without overlapping, each with a line to its marker.
  layout() {
    const sides = { left: [], right: [] };
    for (const node of this.nodes.values()) {
      if (!node.label) continue;
      const box = node.label.getBBox();
      const room = { left: node.x - LABEL_GAP_PX - 6,
                     right: this.width - node.x - LABEL_GAP_PX - 6 };
      let side = node.x < this.width / 2 ? "left" : "right";
      if (box.width > room[side] && box.width <= room[side === "left" ? "right" : "left"]) {
        side = side === "left" ? "right" : "left";  // it would be cut off at the edge
      }
      sides[side].push({ node, h: Math.max(box.height, LABEL_LINE_PX[0] + LABEL_LINE_PX[1]),
                         y: node.y - (LABEL_LINE_PX[0] + LABEL_LINE_PX[1]) / 2 });
    }
    for (const [side, items] of Object.entries(sides)) {
      items.sort((a, b) => a.y - b.y);
      for (let i = 1; i < items.length; i += 1) {
        items[i].y = Math.max(items[i].y, items[i - 1].y + items[i - 1].h + 4);
      }
      let limit = this.height - 4;
      for (let i = items.length - 1; i >= 0; i -= 1) {
        items[i].y = Math.max(4, Math.min(items[i].y, limit - items[i].h));
        limit = items[i].y - 4;
      }
      for (const { node, y } of items) {
        const x = side === "left" ? node.x - LABEL_GAP_PX : node.x + LABEL_GAP_PX;
        node.label.setAttribute("transform", `translate(${x},${y})`);
        node.label.dataset.side = side;
        const mid = y + (LABEL_LINE_PX[0] + LABEL_LINE_PX[1]) / 2;
        Object.entries({ x1: node.x, y1: node.y, x2: x, y2: mid })
          .forEach(([k, v]) => node.leader.setAttribute(k, v));
      }
    }
    this.laidOut = true;
  }
}

function centroid(poly) {
  const n = poly.length || 1;
  return [poly.reduce((s, p) => s + p[0], 0) / n, poly.reduce((s, p) => s + p[1], 0) / n];
}

// Equirectangular, widened to the view's shape so the wards fill it.
function projection(bounds, width, height) {
  const midLat = (bounds.north + bounds.south) / 2;
  const kx = Math.cos((midLat * Math.PI) / 180);
  let spanX = (bounds.east - bounds.west) * kx;
  let spanY = bounds.north - bounds.south;
  const aspect = width / height;
  if (spanX / spanY < aspect) spanX = spanY * aspect;
  else spanY = spanX / aspect;
  const west = (bounds.east + bounds.west) / 2 - spanX / kx / 2;
  const north = midLat + spanY / 2;
  const scale = width / spanX;
  return (lat, lon) => [(lon - west) * kx * scale, (north - lat) * scale];
}
