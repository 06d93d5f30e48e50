// The exhibitor desk. Plain modules, no build step, no request leaves the exhibit: every call
// goes to this api with the staff's admin token, kept for this browser tab only.

const TOKEN_KEY = "smartcity-admin-token";
const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
};

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let catalogue = null;  // GET /api/v1/formats
let watching = null;   // { id, after, timer }

async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = response.status === 204 ? null : await response.json();
  if (response.status === 401 || (response.status === 503 && path.endsWith("/session"))) {
    lock(response.status === 401 ? "The admin token was refused." : explain(data));
    throw new Error("unauthorised");
  }
  if (!response.ok) throw new Error(explain(data));
  return data;
}

function explain(data) {
  if (!data) return "failed";
  if (Array.isArray(data.detail)) {
    return data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return String(data.detail ?? "failed");
}

function lock(message = "") {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stopWatching();
  document.body.dataset.state = "locked";
  $("#login-error").textContent = message;
}

async function unlock() {
  try {
    const session = await call("GET", "/api/v1/exhibitors/session");
    $("#who").textContent = `devices connect to ${session.broker}`;
  } catch (e) {
    if (e.message !== "unauthorised") lock(e.message);
    return;
  }
  document.body.dataset.state = "open";
  catalogue = await call("GET", "/api/v1/formats");
  fillForm();
  await listDevices();
}

// --- the devices ---------------------------------------------------------------------------

async function listDevices() {
  const devices = await call("GET", "/api/v1/devices");
  const body = $("#devices tbody");
  body.replaceChildren();
  $("#devices-empty").hidden = devices.length > 0;
  for (const d of devices) {
    const watch = el("button", { type: "button", className: "quiet", textContent: "Watch" });
    watch.addEventListener("click", () => startWatching(d));
    const rotate = el("button", { type: "button", className: "quiet", textContent: "Rotate" });
    rotate.addEventListener("click", () => rotateDevice(d));
    const remove = el("button", { type: "button", className: "danger", textContent: "Remove" });
    remove.addEventListener("click", () => removeDevice(d));
    const row = el("tr", { id: `device-${d.device_id}` },
      el("td", { textContent: d.name }), el("td", { textContent: d.device_id }),
      el("td", { textContent: d.domain }), el("td", { textContent: d.format }),
      el("td", {}, watch, " ", rotate, " ", remove));
    body.append(row);
  }
}

async function rotateDevice(d) {
  const answer = await call("POST", `/api/v1/devices/${encodeURIComponent(d.device_id)}/rotate`);
  showIssued(d.device_id, answer.credentials, answer.settings, answer.note);
}

async function removeDevice(d) {
  if (!confirm(`Remove ${d.name} (${d.device_id}) and revoke its account?`)) return;
  await call("DELETE", `/api/v1/devices/${encodeURIComponent(d.device_id)}`);
  if (watching && watching.id === d.device_id) stopWatching();
  await listDevices();
}

// --- the form ------------------------------------------------------------------------------

function fillForm() {
  const domain = $("#domain");
  domain.replaceChildren(...Object.keys(catalogue.metrics).map(
    (name) => el("option", { value: name, textContent: name })));
  const format = $("#format");
  format.replaceChildren(...catalogue.formats.map(
    (f) => el("option", { value: f.name, textContent: f.title })));
  domain.addEventListener("change", fillMetrics);
  format.addEventListener("change", fillFormat);
  fillMetrics();
  fillFormat();
}

function fillMetrics() {
  const metrics = catalogue.metrics[$("#domain").value] || [];
  $("#metrics").replaceChildren(...metrics.map((m) => el("label", {},
    el("input", { type: "checkbox", name: "metric", value: m }), m)));
  for (const box of document.querySelectorAll("#metrics input")) {
    box.addEventListener("change", fillMapping);
  }
  fillMapping();
}

function fillFormat() {
  const f = catalogue.formats.find((x) => x.name === $("#format").value);
  $("#format-summary").textContent = f ? f.summary : "";
  $("#mapping").hidden = $("#format").value !== "custom";
  $("#sample-topic").placeholder = f && f.publishes.length ? f.publishes[0] : "";
  fillMapping();
}

function chosenMetrics() {
  return [...document.querySelectorAll("#metrics input:checked")].map((b) => b.value);
}

function fillMapping() {
  const body = $("#map-rows tbody");
  const kept = new Map([...body.querySelectorAll("tr")].map((r) => [r.dataset.metric, r]));
  body.replaceChildren(...chosenMetrics().map((m) => kept.get(m) || el("tr", { dataset: {} },
    el("td", { textContent: m }),
    el("td", {}, el("input", { className: "pointer", placeholder: `/${m}` })),
    el("td", {}, el("select", { className: "unit" },
      ...(catalogue.units[m] || []).map((u) => el("option", { value: u, textContent: u })))),
    el("td", {}, el("input", { className: "scale", type: "number", step: "any", value: "1" })),
    el("td", {}, el("input", { className: "offset", type: "number", step: "any", value: "0" })))));
  for (const [i, row] of [...body.querySelectorAll("tr")].entries()) {
    row.dataset.metric = chosenMetrics()[i];
  }
}

function request() {
  const form = $("#register-form");
  const data = new FormData(form);
  const body = {
    name: data.get("name"), domain: data.get("domain"), format: data.get("format"),
    location: { lat: Number(data.get("lat")), lon: Number(data.get("lon")) },
    metrics: chosenMetrics(),
  };
  if (data.get("name_en")) body.name_en = data.get("name_en");
  if (body.format === "custom") {
    body.mapping = {
      topic: $("#map-topic").value || "#",
      metrics: [...document.querySelectorAll("#map-rows tbody tr")].map((row) => ({
        metric: row.dataset.metric,
        pointer: row.querySelector(".pointer").value || `/${row.dataset.metric}`,
        unit: row.querySelector(".unit").value,
        scale: Number(row.querySelector(".scale").value || 1),
        offset: Number(row.querySelector(".offset").value || 0),
      })),
    };
    if ($("#map-time").value) {
      body.mapping.time = { pointer: $("#map-time").value, format: $("#map-time-format").value };
    }
  }
  return body;
}

function outcome(target, result) {
  target.replaceChildren();
  if (result.refused) {
    target.append(el("div", { className: "refused",
      textContent: `Refused: ${result.refused.reason} (0x${result.refused.reason_code.toString(16)})` }));
    for (const p of result.refused.problems) {
      target.append(el("div", { className: "refused", textContent: `${p.field}: ${p.message}` }));
    }
  }
  for (const r of result.readings || []) {
    const metrics = Object.entries(r.metrics).map(([k, v]) => `${k} = ${v}`).join(", ");
    target.append(el("div", { className: "reading", textContent: `Stored: ${metrics} at ${r.time}` }));
  }
  for (const n of result.notes || []) {
    target.append(el("div", { className: "note", textContent: `Note: ${n}` }));
  }
  if (!result.refused && !(result.readings || []).length) {
    target.append(el("div", { className: "note", textContent: "Nothing to store in this message." }));
  }
}

async function preview() {
  const target = $("#preview");
  try {
    const result = await call("POST", "/api/v1/formats/preview", {
      device: request(), topic: $("#sample-topic").value, payload: $("#sample-payload").value });
    target.dataset.topic = result.topic;
    outcome(target, result);
  } catch (e) {
    target.replaceChildren(el("div", { className: "refused", textContent: e.message }));
  }
}

async function register(event) {
  event.preventDefault();
  $("#register-error").textContent = "";
  try {
    const answer = await call("POST", "/api/v1/devices", request());
    showIssued(answer.device.device_id, answer.credentials, answer.settings, answer.note);
    await listDevices();
    startWatching(answer.device);
  } catch (e) {
    $("#register-error").textContent = e.message;
  }
}

function showIssued(deviceId, credentials, settings, note) {
  const facts = $("#issued-facts");
  facts.replaceChildren();
  const fact = (k, v) => facts.append(el("dt", { textContent: k }), el("dd", { textContent: v }));
  fact("device", deviceId);
  if (credentials) {
    fact("broker", credentials.broker);
    fact("username", credentials.username);
    fact("password", credentials.password);
  }
  $("#issued-where").textContent = settings ? `${settings.title}: ${settings.where}. ${note}` : note;
  $("#issued-text").textContent = settings ? settings.text : "";
  $("#issued-topics").replaceChildren(...(settings ? settings.publishes_on : []).map(
    (t) => el("li", { textContent: t })));
  // The SVG is drawn by this api from the settings text (segno); nothing else goes in as HTML.
  $("#issued-qr").innerHTML = settings ? settings.qr_svg : "";
  $("#issued").hidden = false;
}

// --- watching one device ---------------------------------------------------------------------

function stopWatching() {
  if (watching) clearTimeout(watching.timer);
  watching = null;
  $("#watch-card").hidden = true;
}

function startWatching(d) {
  stopWatching();
  watching = { id: d.device_id, after: 0, timer: null, polls: 0 };
  $("#watch-name").textContent = `${d.name} (${d.device_id})`;
  $("#watch").replaceChildren();
  $("#watch-card").hidden = false;
  poll();
}

async function report(current) {
  // The device page's own facts, as GET /api/v1/devices/{id} gives them to anyone.
  const r = await call("GET", `/api/v1/devices/${encodeURIComponent(current.id)}`);
  if (watching !== current) return;
  $("#report-facts").textContent = `${r.status}; last seen ${r.last_seen || "never"}; `
    + `${r.messages.stored} stored, ${r.messages.rejected} refused`;
  $("#report-hints").replaceChildren(...r.hints.map((h) => el("li", { textContent: h })));
}

async function poll() {
  const current = watching;
  if (!current) return;
  if (current.polls++ % 5 === 0) report(current).catch(() => {});
  try {
    const got = await call("GET",
      `/api/v1/devices/${encodeURIComponent(current.id)}/watch?after=${current.after}`);
    if (watching !== current) return;
    for (const entry of got.entries) {
      current.after = Math.max(current.after, entry.n);
      const item = el("li", { className: `watch-${entry.kind}` },
        el("strong", { textContent: `${entry.time} ` }),
        el("code", { className: "topic", textContent: entry.topic }),
        el("span", { className: "payload", textContent: entry.payload }));
      const result = el("div", { className: "result" });
      outcome(result, entry);
      if (entry.kind === "refused") result.prepend(el("div", { className: "refused",
        textContent: "Reported to the device:" }));
      item.append(result);
      $("#watch").prepend(item);
    }
  } catch (e) {
    if (e.message === "unauthorised") return;
  }
  if (watching === current) current.timer = setTimeout(poll, 1000);
}

// --- start -----------------------------------------------------------------------------------

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("#token").value;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token").value = "";
  unlock();
});
$("#logout").addEventListener("click", () => lock());
$("#preview-button").addEventListener("click", preview);
$("#register-form").addEventListener("submit", register);
$("#copy-settings").addEventListener("click",
  () => navigator.clipboard?.writeText($("#issued-text").textContent));
if (token) unlock();
