// crackscan web page: send each picked/dropped image to /v1/inspect (and /v1/classify when a
// classifier is loaded) and show the overlay, the verdict and the measurements.
// Plain JS, no dependencies; server text is always inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "crackscan-api-key";

function headers() {
  const key = $("key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function fmt(value, unit, digits = 1) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)} ${unit}`;
}

async function api(path, body) {
  const response = await fetch(path, { method: "POST", body, headers: headers() });
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON: reported below */ }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
    if (response.status === 401) $("key").focus();
    throw new Error(message);
  }
  return data;
}

let models = [];

async function loadModels() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    if (!response.ok) return;
    models = (await response.json()).models;
    const select = $("model");
    select.replaceChildren(new Option("default", ""));
    for (const m of models) {
      if (m.task === "segment" || m.task === "classify") select.add(new Option(`${m.name} (${m.task})`, m.name));
    }
  } catch (_) { /* the page still works with the defaults */ }
}

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  tbody.append(tr);
}

function show(card, result, classification) {
  const mm = result.mm_per_px !== null;
  const verdict = card.querySelector(".verdict");
  let crack = result.crack;
  let text = crack ? `Crack — severity ${result.severity}` : "No crack found";
  if (classification) {
    text += ` · classifier: ${classification.label} (${(classification.probability * 100).toFixed(1)} %)`;
    crack = crack || classification.crack;
  }
  verdict.textContent = text;
  verdict.className = `verdict ${crack ? "crack" : "clear"}`;
  card.dataset.crack = String(crack);

  const img = card.querySelector(".overlay");
  img.src = `data:image/png;base64,${result.overlay_png_base64}`;
  img.width = result.overlay_width_px;

  const totals = card.querySelector(".totals tbody");
  totals.replaceChildren();
  row(totals, ["image", `${result.width_px} × ${result.height_px} px`]);
  row(totals, ["model", `${result.model} (${result.task})`]);
  row(totals, ["max crack probability", result.crack_probability.toFixed(3)]);
  if (result.totals) {
    const t = result.totals;
    row(totals, ["cracks", String(t.cracks)]);
    row(totals, ["total length", mm ? fmt(t.length_mm, "mm") : fmt(t.total_length_px, "px")]);
    row(totals, ["max width", mm ? fmt(t.max_width_mm, "mm", 2) : fmt(t.max_width_px, "px")]);
  } else {
    row(totals, ["crack patches", String(result.patches.length)]);
  }
  const cracks = card.querySelector(".cracks tbody");
  cracks.replaceChildren();
  for (const c of result.cracks) {
    row(cracks, [
      String(c.id),
      mm ? fmt(c.length_mm, "mm") : fmt(c.length_px, "px"),
      mm ? fmt(c.max_width_mm, "mm", 2) : fmt(c.max_width_px, "px"),
      mm ? fmt(c.mean_width_mm, "mm", 2) : fmt(c.mean_width_px, "px"),
      `${c.orientation_deg.toFixed(0)}°`,
      c.severity,
    ]);
  }
  card.querySelector(".cracks").hidden = result.cracks.length === 0;
}

async function inspectFile(file) {
  const card = $("card").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  card.querySelector(".verdict").textContent = "Inspecting…";
  card.querySelector(".cracks").hidden = true;
  $("results").prepend(card);

  const form = new FormData();
  form.append("file", file, file.name);
  const mm = $("mm").value.trim();
  if (mm) form.append("mm_per_px", mm);
  const model = $("model").value;
  if (model) form.append("model", model);
  if ($("tta").checked) form.append("tta", "true");

  try {
    const classifier = models.find((m) => m.task === "classify");
    let classification = null;
    if (classifier && !model) {
      const cf = new FormData();
      cf.append("file", file, file.name);
      classification = api("/v1/classify", cf).then((d) => d.results[0]).catch(() => null);
    }
    const result = await api("/v1/inspect", form);
    show(card, result, classification ? await classification : null);
    card.dataset.state = "done";
  } catch (err) {
    const error = card.querySelector(".error");
    error.textContent = err.message;
    error.hidden = false;
    card.querySelector(".verdict").textContent = "";
    card.dataset.state = "error";
  }
}

async function handle(files) {
  const list = Array.from(files);
  if (!list.length) return;
  $("status").textContent = `Inspecting ${list.length} image(s)…`;
  for (const file of list) await inspectFile(file); // one at a time: the server queue is shared
  $("status").textContent = `Done: ${list.length} image(s).`;
}

function init() {
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) $("key").value = key;
  $("key").addEventListener("change", () => {
    sessionStorage.setItem(KEY_STORE, $("key").value.trim());
    loadModels();
  });
  $("file").addEventListener("change", (e) => { handle(e.target.files); e.target.value = ""; });
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => { e.preventDefault(); handle(e.dataTransfer.files); });
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
