// Everything around the map: the header (scenario, simulated time, connection), the side
// panels (weather, river, whole-city figures, exhibitors' devices) (the alert ticker is ticker.js).

import { clock, metricLabel, nameOf, num, scenarioName, t, unit } from "./i18n.js";
import { congestion, depth } from "./levels.js";

const MAX_EXHIBITORS = 5;

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function figure(label, value, valueUnit, attrs = {}) {
  return h("div", { class: "figure", ...attrs },
    h("span", { class: "figure-label" }, label),
    h("span", { class: "figure-value" }, value, valueUnit ? h("small", {}, ` ${valueUnit}`) : ""));
}

export function renderHeader(store, now, connection) {
  const sim = store.simulation;
  const scenario = document.getElementById("scenario");
  let text;
  if (!sim) text = t("noSimulation");
  else if (!sim.running) text = t("simStopped");
  else if (sim.scenario) text = `${t("scenario")}: ${scenarioName(sim.scenario)}`;
  else text = t("noScenario");
  if (sim && sim.running && sim.paused) text += ` (${t("paused")})`;
  if (sim && sim.running && sim.speed && sim.speed !== 1) text += ` · ×${num(sim.speed, 1)}`;
  setText(scenario, text);
  scenario.dataset.scenario = sim?.scenario || "";

  const simMs = store.simTime(now);
  const simtime = document.getElementById("simtime");
  // On the exhibit clock the readings carry the wall clock's time and the story's time is
  // shown beside it; on the engineers' clock it is the readings' own time.
  setText(simtime.querySelector(".chip-label"),
          t(sim?.clock === "exhibit" ? "storyTime" : "simTime"));
  setText(simtime.querySelector(".chip-value"), simMs === null ? "–" : clock(simMs));
  simtime.dataset.ms = simMs === null ? "" : String(Math.floor(simMs / 1000) * 1000);

  setText(document.getElementById("clock"), clock(now, false));
  const conn = document.getElementById("conn");
  conn.dataset.state = connection;
  setText(conn.querySelector(".conn-text"), t(connection));
  const banner = document.getElementById("conn-banner");
  banner.hidden = connection !== "lost";
  setText(banner, t("lost"));
}

function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

function originals(places) {
  return (places || []).filter((p) => !p.copy_index);
}

export function renderSide(store, map, now, staleMs) {
  const fresh = (id) => store.state(id, now, staleMs) === "ok";

  const weather = document.getElementById("weather-body");
  const gauges = originals(map?.rain_gauges).slice(0, 2);
  weather.replaceChildren(...gauges.map((g) => {
    const m = fresh(g.device_id) ? store.metrics(g.device_id) : {};
    return h("div", { class: "gauge", "data-device": g.device_id,
                      "data-state": store.state(g.device_id, now, staleMs) },
      h("div", { class: "gauge-name" }, nameOf(g)),
      h("div", { class: "figures" },
        figure(t("rain"), num(m.rain_mm_h, 1), unit("rain_mm_h")),
        figure(t("temperature"), num(m.temperature_c, 1), unit("temperature_c")),
        figure(t("humidity"), num(m.humidity_pct, 0), unit("humidity_pct")),
        figure(t("wind"), num(m.wind_kmh, 0), unit("wind_kmh"))));
  }));

  const tide = document.getElementById("tide-body");
  tide.replaceChildren(...originals(map?.tide_gauges).slice(0, 1).map((g) => {
    const m = fresh(g.device_id) ? store.metrics(g.device_id) : {};
    return h("div", { class: "gauge", "data-device": g.device_id,
                      "data-state": store.state(g.device_id, now, staleMs) },
      h("div", { class: "gauge-name" }, nameOf(g)),
      h("div", { class: "figures" }, figure(t("tide"), num(m.river_level_cm, 0),
                                              unit("river_level_cm"))));
  }));

  // Whole city, from the devices that are reporting now.
  let power = 0;
  let homes = 0;
  const speeds = [];
  let congested = 0;
  let flooded = 0;
  for (const r of map?.roads || []) {
    if (!fresh(r.device_id)) continue;
    const m = store.metrics(r.device_id);
    if (m.speed_kmh !== undefined) speeds.push(m.speed_kmh);
    if (["heavy", "jam"].includes(congestion(m, r.free_flow_kmh))) congested += 1;
  }
  for (const home of map?.homes || []) {
    const m = store.metrics(home.device_id);
    if (fresh(home.device_id) && m.power_w !== undefined) {
      power += m.power_w;
      homes += 1;
    }
  }
  for (const f of map?.flood_sites || []) {
    const level = depth(store.metrics(f.device_id).water_level_cm, f.warning_cm, f.levels);
    if (fresh(f.device_id) && (level === "warning" || level === "danger")) flooded += 1;
  }
  let reporting = 0;
  for (const id of store.devices.keys()) if (fresh(id)) reporting += 1;
  const mean = speeds.length ? speeds.reduce((a, b) => a + b, 0) / speeds.length : undefined;
  document.getElementById("city-body").replaceChildren(h("div", { class: "figures" },
    figure(t("homesPower"), homes ? num(power / 1000, 1) : "–", "kW", { "data-figure": "power" }),
    figure(t("meanSpeed"), num(mean, 0), unit("speed_kmh"), { "data-figure": "speed" }),
    figure(t("congested"), String(congested), "", { "data-figure": "congested" }),
    figure(t("flooded"), String(flooded), "", { "data-figure": "flooded" }),
    figure(t("devicesOnline"), `${reporting}/${store.devices.size}`, "",
           { "data-figure": "reporting" })));

  const live = [...store.devices.values()].filter((d) => d.source === "live")
    .sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
  const rows = live.slice(0, MAX_EXHIBITORS).map((d) => {
    const state = store.state(d.device_id, now, staleMs);
    const metrics = Object.entries(store.metrics(d.device_id)).slice(0, 3)
      .map(([k, v]) => `${metricLabel(k)} ${num(v, 1)} ${unit(k)}`.trim()).join(" · ");
    return h("li", { class: "exhibitor", "data-device": d.device_id, "data-state": state },
      h("span", { class: "exhibitor-name" }, nameOf(d)),
      h("span", { class: "exhibitor-values" },
        state === "ok" ? metrics || "–" : t(`state_${state}`)));
  });
  if (live.length > MAX_EXHIBITORS) {
    rows.push(h("li", { class: "more" }, `+${live.length - MAX_EXHIBITORS} ${t("more")}`));
  }
  document.getElementById("exhibitors-body").replaceChildren(
    rows.length ? h("ul", {}, ...rows) : h("p", { class: "empty" }, t("noExhibitors")));
}
