// The alert ticker: every active alert, the most severe first, with the value its sensor
// reads now (not the one it had when the level last changed) and how long it has been at
// its level; an alert whose sensor went silent says so and since when instead.

import { clock, t } from "./i18n.js";
import { h } from "./panels.js";
import { toMs } from "./store.js";

const TICKER_PX_PER_S = 90;

// As the rules service words values in alert titles: one decimal at most, a decimal comma
// in Vietnamese, none above a thousand.
export function wordNumber(value, lang) {
  const text = Math.abs(value) >= 1000 ? value.toFixed(0)
    : value.toFixed(1).replace(/\.0$/, "");
  return lang === "vi" ? text.replace(".", ",") : text;
}

export function duration(ms, lang) {
  const min = Math.max(0, Math.floor(ms / 60_000));
  const hours = Math.floor(min / 60);
  const [hWord, mWord] = lang === "vi" ? ["giờ", "phút"] : ["h", "min"];
  return hours ? `${hours} ${hWord} ${min % 60} ${mWord}` : `${min} ${mWord}`;
}

// What an alert says now: its title with the live value, and a note.
export function alertNow(store, alert, now, staleMs, lang) {
  const entry = store.latest.get(alert.device_id);
  const live = entry?.metrics?.[alert.metric];
  const state = store.state(alert.device_id, now, staleMs);
  let silentSince = alert.silent_since ? toMs(alert.silent_since) : null;
  if (silentSince === null && entry && (state === "stale" || state === "offline")) {
    silentSince = toMs(entry.ts);
  }
  let title = lang === "en" ? alert.title_en : alert.title_vi;
  let message = lang === "en" ? alert.message_en : alert.message_vi;
  // the texts carry the value of the reading that changed the level: the live one instead
  const said = `${wordNumber(alert.value, lang)} ${alert.unit}`;
  if (silentSince === null && live !== undefined) {
    const now = `${wordNumber(live, lang)} ${alert.unit}`;
    // the value comes first in the texts, before the threshold it crossed
    title = title.replace(said, now);
    message = message.replace(said, now);
  }
  const note = silentSince !== null
    ? t("silentSince").replace("{time}", clock(silentSince, false))
    : t("atLevelFor").replace("{duration}",
                               duration((entry ? toMs(entry.ts) : now) - toMs(alert.updated_at),
                                        lang));
  return { title, message, note, silent: silentSince !== null };
}

let shownKey = "";

export function renderTicker(store, now, staleMs) {
  const alerts = store.activeAlerts();
  const lang = document.documentElement.lang === "en" ? "en" : "vi";
  const track = document.getElementById("ticker-track");
  const count = document.getElementById("alert-count");
  count.textContent = String(alerts.length);
  count.dataset.count = String(alerts.length);
  const key = `${lang}|${alerts.map((a) => `${a.alert_id}:${a.level}`).join(",")}`;
  if (key !== shownKey) {
    shownKey = key;
    build(track, alerts, lang);
  }
  // the figures move on without a new alert event
  for (const node of track.querySelectorAll(".alert[data-alert]")) {
    const alert = store.alerts.get(node.dataset.alert);
    if (!alert) continue;
    const { title, message, note, silent } = alertNow(store, alert, now, staleMs, lang);
    const titleNode = node.querySelector(".alert-title");
    const messageNode = node.querySelector(".alert-message");
    const noteNode = node.querySelector(".alert-now");
    if (titleNode.textContent !== title) titleNode.textContent = title;
    if (messageNode.textContent !== message) messageNode.textContent = message;
    if (noteNode.textContent !== note) noteNode.textContent = note;
    if (silent) node.dataset.silent = "1";
    else delete node.dataset.silent;
  }
}

function build(track, alerts, lang) {
  const items = alerts.map((a) => h("div", { class: "alert", "data-alert": a.alert_id,
                                             "data-level": a.level },
    h("span", { class: "alert-level" }, t(`level_${a.level}`)),
    h("span", { class: "alert-title" }, lang === "en" ? a.title_en : a.title_vi),
    h("span", { class: "alert-now" }, ""),
    h("span", { class: "alert-message" }, lang === "en" ? a.message_en : a.message_vi)));
  track.classList.remove("scrolling");
  track.style.removeProperty("--ticker-duration");
  if (!items.length) {
    track.replaceChildren(h("div", { class: "alert none" }, t("noAlerts")));
    return;
  }
  track.replaceChildren(...items);
  const box = track.parentElement;
  if (track.scrollWidth > box.clientWidth) {
    // Too many to show at once: the strip scrolls, a copy behind it closes the loop.
    for (const item of items) {
      const copy = item.cloneNode(true);
      copy.setAttribute("aria-hidden", "true");
      copy.dataset.copy = "1";
      track.append(copy);
    }
    track.style.setProperty("--ticker-duration", `${track.scrollWidth / 2 / TICKER_PX_PER_S}s`);
    track.classList.add("scrolling");
  }
}
