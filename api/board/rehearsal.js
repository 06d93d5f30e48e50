// Two alert timelines of one built-in recording side by side: the rules in force and an
// edited rule file, rehearsed by the api (POST /api/v1/recordings/{name}/rehearsal).

const $ = (id) => document.getElementById(id);

function render(list, events, marks) {
  list.replaceChildren(...events.map((e) => {
    const li = document.createElement("li");
    const diff = marks.get(`${e.rule} ${e.device_id} ${e.change} ${e.level} ${e.time}`);
    if (diff) li.dataset.diff = diff;
    const change = document.createElement("span");
    change.className = `change-${e.change}`;
    change.textContent = e.change.padEnd(9);
    li.append(`${e.time.slice(0, 19).replace("T", " ")}  `, change,
              ` ${e.level.padEnd(8)} ${e.rule} ${e.device_id}  ${e.value} ${e.unit}`);
    return li;
  }));
}

function marksOf(differences, side) {
  const marks = new Map();
  for (const d of differences) {
    const time = side === "base" ? d.time : d.other_time;
    if (time) marks.set(`${d.rule} ${d.device_id} ${d.change} ${d.level} ${time}`, d.difference);
  }
  return marks;
}

async function show(response) {
  const body = await response.json();
  if (!response.ok) {
    $("status").textContent = body.detail ?? response.statusText;
    return;
  }
  const diffs = body.differences ?? [];
  render($("base"), body.in_force.events, marksOf(diffs, "base"));
  $("count-base").textContent = `(${body.in_force.events.length} events)`;
  const given = body.given?.events ?? [];
  render($("given"), given, marksOf(diffs, "given"));
  $("count-given").textContent = body.given ? `(${given.length} events)` : "";
  $("status").textContent = body.given
    ? `${diffs.length} difference${diffs.length === 1 ? "" : "s"}` : "";
  document.body.dataset.ready = "1";
}

async function rehearse(edited) {
  const name = $("recording").value;
  const url = `/api/v1/recordings/${encodeURIComponent(name)}/rehearsal`;
  $("status").textContent = "…";
  await show(edited
    ? await fetch(url, { method: "POST", body: $("rules").value,
                         headers: { "Content-Type": "application/toml" } })
    : await fetch(url));
}

async function start() {
  const [replays, rules] = await Promise.all([
    fetch("/api/v1/replays").then((r) => r.json()),
    fetch("/api/v1/rules/file").then((r) => r.text()),
  ]);
  for (const rec of replays.recordings) $("recording").append(new Option(rec.name, rec.name));
  const wanted = new URLSearchParams(location.search).get("recording");
  if (wanted) $("recording").value = wanted;
  $("rules").value = rules;
  $("recording").addEventListener("change", () => rehearse(false));
  $("run").addEventListener("click", () => rehearse(true));
  await rehearse(false);
}

start();
