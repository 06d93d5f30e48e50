// The visitor's phone: the same live stream as the wall, as lists a thumb can scroll.

import { applyStatic, clock, lang, nameOf, num, setLang, setMetrics, t, unit } from "./i18n.js";
import { connectLive, fetchJson } from "./live.js";
import { depth } from "./levels.js";
import { storyCaption } from "./caption.js";
import { Store } from "./store.js";
import { alertNow } from "./ticker.js";

const STALE_MS = 60_000;
const store = new Store();
let map = null;
let frame = 0;

function li(attrs, ...parts) {
  const node = document.createElement("li");
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const p of parts) node.append(p);
  return node;
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function render() {
  frame = 0;
  const now = Date.now();
  document.getElementById("phone-story").textContent = storyCaption(store, now) || "";
  const sim = store.simTime(now);
  document.getElementById("phone-times").textContent =
    `${t("now")} ${clock(now, false)}${sim ? ` · ${t("storyTime")} ${clock(sim)}` : ""}`;
  const alerts = store.activeAlerts().map((a) => {
    const { title, note } = alertNow(store, a, now, STALE_MS, lang);
    return li({ class: "alert", "data-level": a.level }, span("t", title), span("note", note));
  });
  document.getElementById("phone-alerts").replaceChildren(
    ...(alerts.length ? alerts : [li({}, span("t", t("noAlerts")))]));
  if (!map) return;
  const row = (place, value, level) => li({ "data-level": level || "",
                                            "data-state": store.state(place.device_id, now, STALE_MS) },
                                          span("n", nameOf(place)), span("v", value));
  document.getElementById("phone-flood").replaceChildren(...map.flood_sites
    .filter((p) => !p.copy_of).map((p) => {
      const cm = store.metrics(p.device_id).water_level_cm;
      return row(p, cm === undefined ? "–" : `${num(cm, 1)} ${unit("water_level_cm")}`,
                 depth(cm, p.warning_cm, p.levels));
    }));
  document.getElementById("phone-tide").replaceChildren(...map.tide_gauges
    .filter((p) => !p.copy_of).map((p) => {
      const cm = store.metrics(p.device_id).river_level_cm;
      return row(p, cm === undefined ? "–"
        : `${num(cm, 0)} ${unit("river_level_cm")} · ${t("datumShort")}`);
    }));
  document.getElementById("phone-roads").replaceChildren(...map.roads
    .filter((p) => !p.copy_of).map((p) => {
      const kmh = store.metrics(p.device_id).speed_kmh;
      return row(p, kmh === undefined ? "–" : `${num(kmh, 0)} ${unit("speed_kmh")}`);
    }));
  document.body.dataset.ready = "1";
}

function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function switchLang(value) {
  setLang(value);
  applyStatic();
  document.getElementById("lang-toggle").textContent = t("langButton");
  schedule();
}

document.getElementById("lang-toggle").addEventListener("click",
  () => switchLang(lang === "vi" ? "en" : "vi"));
switchLang(lang);
setInterval(schedule, 1000);
const scheme = location.protocol === "https:" ? "wss" : "ws";
connectLive(`${scheme}://${location.host}/api/v1/live`, {
  onMessage: (msg) => { if (store.apply(msg, Date.now())) schedule(); },
  onState: schedule,
});
// units and metric names from the api's catalogue, then the city
fetchJson("/api/v1/metrics").then((list) => {
  setMetrics(list);
  return fetchJson("/api/v1/city/map");
}).then((value) => { map = value; schedule(); });
