// How a value looks on the board: congestion of a road, depth of a flood site, air in a home.

// The river's alarm levels at Phú An, in cm above the national datum (Hòn Dấu), as the
// southern hydro-meteorological station issues them (the city file's levels use the same).
export const TIDE_ALARMS_CM = [150, 160, 170];

// Under these speeds a segment is jammed, as the traffic-jam warning has it.
const JAM_KMH = 15;

export function congestion(metrics, freeFlowKmh) {
  const speed = metrics.speed_kmh;
  const occupancy = metrics.occupancy_pct;
  if (speed === undefined && occupancy === undefined) return "none";
  const ratio = speed !== undefined && freeFlowKmh ? speed / freeFlowKmh : 1;
  const occ = occupancy ?? 0;
  if ((speed !== undefined && speed < JAM_KMH) || occ >= 60) return "jam";
  if (ratio < 0.5 || occ >= 40) return "heavy";
  if (ratio < 0.75 || occ >= 25) return "slow";
  return "free";
}

// By the flood rule's levels at the site (/api/v1/city/map gives them), so a site turns the
// colour of the alert the rules service raises there; without them, relative to the site's
// warning depth.
export function depth(levelCm, warningCm, levels) {
  if (levelCm === undefined) return "none";
  const w = warningCm || 20;
  const at = { watch: w / 2, warning: w, danger: 2 * w, ...(levels || {}) };
  if (levelCm >= at.danger) return "danger";
  if (levelCm >= at.warning) return "warning";
  if (levelCm >= at.watch) return "watch";
  return "low";
}

// Indoor PM2.5 in µg/m³, by the US EPA's breakpoints the home-air warning also uses.
export function air(pm25) {
  if (pm25 === undefined) return "none";
  if (pm25 >= 150.5) return "danger";
  if (pm25 >= 55.5) return "warning";
  if (pm25 >= 35.5) return "watch";
  return "good";
}

export function rain(mmH) {
  if (mmH === undefined) return "none";
  if (mmH >= 100) return "danger";
  if (mmH >= 50) return "warning";
  if (mmH >= 10) return "watch";
  return "low";
}

export const LEVEL_RANK = { advisory: 0, watch: 1, warning: 2, danger: 3 };
