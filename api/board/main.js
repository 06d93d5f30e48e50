// The kiosk board: wires the live connection, the store and the views together.
// Query options: ?lang=en|vi, ?stale=SECONDS (default 60).

import { renderCaption } from "./caption.js";
import { applyStatic, lang, nameOf, setLang, setMetrics, t } from "./i18n.js";
import { connectLive, fetchJson } from "./live.js";
import { MapView } from "./map.js";
import { renderHeader, renderSide } from "./panels.js";
import { Store } from "./store.js";
import { renderTicker } from "./ticker.js";

const params = new URLSearchParams(location.search);
const staleS = Number(params.get("stale"));
const STALE_MS = (Number.isFinite(staleS) && staleS > 0 ? staleS : 60) * 1000;
const SIDE_EVERY_MS = 250;

// The board is laid out for 1920×1080; other screens get it zoomed to fit.
function fitScreen() {
  const zoom = Math.max(0.5, Math.min(innerWidth / 1920, innerHeight / 1080));
  document.documentElement.style.zoom = String(zoom);
  document.documentElement.style.setProperty("--zoom", String(zoom));
}
fitScreen();

const store = new Store();
const view = new MapView(document.getElementById("map"), store,
                         [document.getElementById("legend"),
                          document.getElementById("conn-banner"),
                          document.getElementById("caption"),
                          document.getElementById("phone")]);
let map = null;
let metrics = false;
let connection = "connecting";
let pending = { all: true, devices: new Set(), alerts: true, registry: true };
let frame = 0;
let sideAt = 0;
let sideTimer = 0;

function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  const now = Date.now();
  const work = pending;
  pending = { all: false, devices: new Set(), alerts: false, registry: false };
  // the caption over the map: the labels make room for it
  if (renderCaption(store, now) && map) view.dirty = true;
  if (map) {
    if (work.all || work.registry) view.syncDevices();
    if (work.all) view.relabel();
    else for (const id of work.devices) view.update(id);
    view.refreshStates(now, STALE_MS);
  }
  // every pass: the alerts' live values and times move with the readings and the clock
  renderTicker(store, now, STALE_MS);
  if (work.all || work.registry || now - sideAt >= SIDE_EVERY_MS) {
    sideAt = now;
    renderSide(store, map, now, STALE_MS);
  } else if (work.devices.size && !sideTimer) {
    // the figures catch up shortly
    sideTimer = setTimeout(() => { sideTimer = 0; schedule(); }, SIDE_EVERY_MS);
  }
  renderHeader(store, now, connection);
  const city = document.getElementById("city-name");
  if (map && city.textContent !== nameOf(map)) city.textContent = nameOf(map);
  document.body.dataset.ready = map && metrics && connection === "live" ? "1" : "0";
}

function onMessage(msg) {
  const change = store.apply(msg, Date.now());
  if (!change) return;
  if (change.all) pending.all = true;
  if (change.device) pending.devices.add(change.device);
  if (change.alerts) pending.alerts = true;
  if (change.registry) pending.registry = true;
  schedule();
}

function onState(state) {
  connection = state;
  schedule();
}

function switchLang(value) {
  setLang(value);
  applyStatic();
  document.getElementById("lang-toggle").textContent = t("langButton");
  document.getElementById("map").setAttribute("aria-label", t("map"));
  pending.all = true;
  schedule();
}

document.getElementById("lang-toggle").addEventListener("click", () => {
  switchLang(lang === "vi" ? "en" : "vi");
});
switchLang(lang);

// The clock, the simulated time and staleness move on without any message.
setInterval(() => {
  sideAt = 0;
  schedule();
}, 1000);

const scheme = location.protocol === "https:" ? "wss" : "ws";
connectLive(`${scheme}://${location.host}/api/v1/live`, { onMessage, onState });
fetchJson("/api/v1/metrics").then((list) => {
  setMetrics(list);
  metrics = true;
  pending.all = true;
  schedule();
});
// The geography is optional: a city file without one gets its wards' names only.
const geometry = fetch("/api/v1/city/geometry")
  .then((r) => (r.ok ? r.json() : null)).catch(() => null);
let geo = null;
Promise.all([fetchJson("/api/v1/city/map"), geometry]).then(([value, shapes]) => {
  map = value;
  geo = shapes;
  view.build(map, geo);
  pending.all = true;
  schedule();
});
addEventListener("resize", () => {
  fitScreen();
  if (!map) return;
  view.build(map, geo);
  pending.all = true;
  schedule();
});
