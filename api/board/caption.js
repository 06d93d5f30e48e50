// One line that tells visitors what the city is going through: by the scenario running and
// how far into its story it is (the attract loop plays them one after the other).

import { t } from "./i18n.js";
import { toMs } from "./store.js";

const HOUR = 3_600_000;

// Hours into the story at which each caption begins, per scenario.
const STORY = {
  "normal-day": [[0, "story_day"]],
  "king-tide-storm": [[0, "story_tide"], [5, "story_storm"], [8.5, "story_recovery"]],
};

export function storyCaption(store, now) {
  const sim = store.simulation;
  if (!sim?.running || !sim.scenario || !STORY[sim.scenario]) return "";
  const at = store.simTime(now);
  const hours = at && sim.scenario_started ? (at - toMs(sim.scenario_started)) / HOUR : 0;
  let key = STORY[sim.scenario][0][1];
  for (const [from, k] of STORY[sim.scenario]) if (hours >= from) key = k;
  return t(key);
}

export function renderCaption(store, now) {
  const box = document.getElementById("caption");
  const text = storyCaption(store, now);
  if (box.textContent !== text) box.textContent = text;
  const hidden = !text;
  if (box.hidden !== hidden) {
    box.hidden = hidden;
    return true;  // the map's labels make room for it, or take the room back
  }
  return false;
}
