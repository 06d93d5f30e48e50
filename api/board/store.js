// What the board knows: devices, their latest values and status, active alerts and the
// simulation, fed by the messages of /api/v1/live. No DOM here.

import { LEVEL_RANK } from "./levels.js";

export class Store {
  constructor() {
    this.reset();
  }

  reset() {
    this.devices = new Map();   // device_id -> DeviceInfo
    this.latest = new Map();    // device_id -> {metrics, ts, source, arrived}
    this.statuses = new Map();  // device_id -> DeviceStatus
    this.alerts = new Map();    // alert_id -> AlertEvent
    this.simulation = null;
  }

  // A snapshot replaces everything. `now` is the browser's clock; a reading's age is what
  // the api saw (snapshot time minus its arrival there), so an old one is stale at once.
  // A value the new snapshot lacks (an api that restarted has seen few readings yet) is
  // kept with its old arrival time, so it greys out when it is old rather than vanishing.
  snapshot(msg, now) {
    const before = this.latest;
    this.reset();
    for (const d of msg.devices || []) this.devices.set(d.device_id, d);
    for (const r of msg.readings || []) {
      const age = Math.max(0, (msg.time ?? r.received ?? 0) - (r.received ?? msg.time ?? 0));
      this.reading(r, now - age);
    }
    for (const [id, entry] of before) {
      if (this.devices.has(id) && !this.latest.has(id)) this.latest.set(id, entry);
    }
    for (const s of msg.statuses || []) this.statuses.set(s.device_id, s);
    for (const a of msg.alerts || []) this.alert(a);
    this.simulation = msg.simulation || null;
  }

  reading(r, arrived) {
    const entry = this.latest.get(r.device_id);
    if (entry) {
      // Devices may send different metrics in different messages: keep each one's last.
      Object.assign(entry.metrics, r.metrics);
      Object.assign(entry, { ts: r.ts, source: r.source, arrived });
    } else {
      this.latest.set(r.device_id, { metrics: { ...r.metrics }, ts: r.ts, source: r.source,
                                     arrived });
    }
  }

  alert(a) {
    if (a.state === "cleared") this.alerts.delete(a.alert_id);
    else this.alerts.set(a.alert_id, a);
  }

  // Apply one live message; says what changed: {device: id} | {alerts} | {simulation} |
  // {registry: id} | {all} | null.
  apply(msg, now) {
    switch (msg.type) {
      case "snapshot":
        this.snapshot(msg, now);
        return { all: true };
      case "reading":
        this.reading(msg, now);
        return { device: msg.device_id };
      case "status": {
        const { type, ...status } = msg;
        this.statuses.set(msg.device_id, status);
        return { device: msg.device_id };
      }
      case "alert": {
        const { type, ...alert } = msg;
        this.alert(alert);
        return { alerts: true, device: alert.device_id };
      }
      case "simulation": {
        const { type, ...state } = msg;
        this.simulation = state;
        return { simulation: true };
      }
      case "device": {
        const d = msg.device;
        if (!d) return null;
        if (msg.action === "removed") {
          this.devices.delete(d.device_id);
          this.latest.delete(d.device_id);
          this.statuses.delete(d.device_id);
        } else {
          this.devices.set(d.device_id, d);
        }
        return { registry: d.device_id };
      }
      default:
        return null;  // ping, and whatever a newer api may add
    }
  }

  // ok, stale (no reading for staleMs), offline (its status says so) or nodata.
  state(deviceId, now, staleMs) {
    if (this.statuses.get(deviceId)?.state === "offline") return "offline";
    const entry = this.latest.get(deviceId);
    if (!entry) return "nodata";
    return now - entry.arrived > staleMs ? "stale" : "ok";
  }

  metrics(deviceId) {
    return this.latest.get(deviceId)?.metrics || {};
  }

  // Active alerts, the most severe first, then the most recent.
  activeAlerts() {
    return [...this.alerts.values()].sort((a, b) =>
      (LEVEL_RANK[b.level] ?? 0) - (LEVEL_RANK[a.level] ?? 0) ||
      String(b.updated_at).localeCompare(String(a.updated_at)));
  }

  // device_id -> the level of its most severe active alert
  alertLevels() {
    const out = new Map();
    for (const a of this.alerts.values()) {
      const had = out.get(a.device_id);
      if (had === undefined || (LEVEL_RANK[a.level] ?? 0) > (LEVEL_RANK[had] ?? 0)) {
        out.set(a.device_id, a.level);
      }
    }
    return out;
  }

  // The simulated time now, from the simulator's last state (its clock runs at `speed`
  // between two states).
  simTime(now) {
    const s = this.simulation;
    // Before its first readings a simulator states only where its clock starts.
    const base = s && (s.sim_time ?? s.start);
    if (!base) return null;
    const simMs = toMs(base);
    if (!s.running || s.paused || !s.speed || !s.updated) return simMs;
    return simMs + Math.max(0, now - toMs(s.updated)) * s.speed;
  }
}

// RFC 3339 or epoch milliseconds, as the contract allows both.
export function toMs(value) {
  return typeof value === "number" ? value : Date.parse(value);
}
