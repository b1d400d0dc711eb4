// The live dashboard: every figure comes from the read-only API under /api/, drawn with plotly.js.
// Nothing here reaches outside the server it came from: no tiles, no CDN, no web fonts.
"use strict";

const PARIS = "Europe/Paris";
const MAX_RANGE_DAYS = 31; // the API refuses longer ranges
const DEFAULT_RANGE_DAYS = 7;
const RESULTS_SHOWN = 100;
const RANKING_TOP = 20;
const STALE_AFTER_SECONDS = 600; // until /api/health says what the collection is configured with
const STATE_COLOURS = {
  closed: "#4d4d4d",
  out_of_service: "#9467bd",
  empty: "#d62728",
  full: "#1f4e9e",
  nearly_empty: "#ff9f40",
  nearly_full: "#6baed6",
  ok: "#2ca02c",
};
const STATES = Object.keys(STATE_COLOURS);
// No "share chart" button: it would upload the data to Plotly's cloud.
const PLOT_CONFIG = { responsive: true, displaylogo: false, showSendToCloud: false };

const app = { stations: [], byCode: new Map(), outlines: null, days: [], station: null, districtRows: null };

const byId = (id) => document.getElementById(id);

class ApiError extends Error {}

async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch (err) {
    throw new ApiError(`cannot reach the server for ${path} (${err.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? describeDetail(body.detail) : response.statusText;
    throw new ApiError(`${path} answered ${response.status}: ${detail}`);
  }
  if (body === null) throw new ApiError(`${path} did not answer JSON`);
  return body;
}

function describeDetail(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return JSON.stringify(detail);
}

/** Every item of a paginated list: the first page says how many, the rest are fetched together. */
async function getAll(path) {
  const sep = path.includes("?") ? "&" : "?";
  const limit = 1000;
  const first = await getJSON(`${path}${sep}limit=${limit}&offset=0`);
  const items = [...first.items];
  const offsets = [];
  for (let offset = first.items.length; offset < first.total && first.items.length; offset += limit) {
    offsets.push(offset);
  }
  const pages = await Promise.all(offsets.map((o) => getJSON(`${path}${sep}limit=${limit}&offset=${o}`)));
  for (const page of pages) items.push(...page.items);
  return { items, note: first.note };
}

function show(id, text, isError = false) {
  const node = byId(id);
  node.textContent = text || "";
  node.hidden = !text;
  node.classList.toggle("error", Boolean(text) && isError);
}

function failed(id, err) {
  show(id, err instanceof ApiError ? err.message : `unexpected error: ${err.message}`, true);
  console.error(err);
}

// ---- time: the API speaks UTC; people here read Paris time ----

const PARTS = new Intl.DateTimeFormat("en-GB", {
  timeZone: PARIS, year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", weekday: "short", hourCycle: "h23", timeZoneName: "short",
});

function parisParts(iso) {
  const parts = {};
  for (const p of PARTS.formatToParts(new Date(iso))) parts[p.type] = p.value;
  return parts;
}

function wallClock(ms) {
  const p = parisParts(ms);
  return `${p.weekday} ${p.day}/${p.month} ${p.hour}:${p.minute}`;
}

/** A Paris-time label for a chart's time axis, one per instant: plotly axes have no time zones, so
 * the charts put time on a category axis of these labels. The hour the clocks go back happens twice
 * (02:00 CEST, then 02:00 CET): those labels carry their zone, so that day keeps its 25 hours. */
function plotTime(iso) {
  const ms = Date.parse(iso);
  const label = wallClock(ms);
  const twice = wallClock(ms - 3600000) === label || wallClock(ms + 3600000) === label;
  return twice ? `${label} ${parisParts(ms).timeZoneName}` : label;
}

/** A time axis of `plotTime` labels, in the order of the data. */
const TIME_AXIS = { type: "category", tickangle: 0, nticks: 8, automargin: true };

function showTime(iso) {
  if (!iso) return "—";
  const p = parisParts(iso);
  return `${p.weekday} ${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}`;
}

function showAge(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${String(minutes % 60).padStart(2, "0")} min`;
  return `${Math.floor(hours / 24)} days ${hours % 24} h`;
}

const number = (v, digits = 0) =>
  v === null || v === undefined ? "—" : Number(v).toLocaleString("en-GB", { maximumFractionDigits: digits });
const percent = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(0)} %`);
const stateLabel = (s) => (s === null || s === undefined ? "state unknown" : String(s).replace(/_/g, " "));

function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

function dayCount(start, end) {
  return Math.round((Date.parse(`${end}T00:00:00Z`) - Date.parse(`${start}T00:00:00Z`)) / 86400000) + 1;
}

/** A range the API accepts, or a sentence saying why not (the API would refuse it too). */
function rangeProblem(start, end) {
  if (!start || !end) return "choose both dates";
  if (end < start) return `the range ends (${end}) before it starts (${start})`;
  if (dayCount(start, end) > MAX_RANGE_DAYS) return `the range is longer than ${MAX_RANGE_DAYS} days`;
  return null;
}

// Searches ignore case and accents: "gare de l'est" finds "Gare de l'Est", "republique" "République".
const fold = (text) => String(text || "").normalize("NFD").replace(/\p{Diacritic}/gu, "").toLowerCase();

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

// ---- health ----

async function loadHealth() {
  const strip = byId("health-strip");
  try {
    const health = await getJSON("/api/health");
    const age = health.latest_capture_age_seconds;
    const staleAfter = health.feed_down_after_seconds ?? STALE_AFTER_SECONDS;
    const stale = age === null || age === undefined || age > staleAfter;
    strip.replaceChildren(
      "Latest capture ",
      el("b", {}, showTime(health.latest_capture_at)),
      " — ",
      el("span", { class: stale ? "bad" : "", id: "capture-age", title: `feed down after ${showAge(staleAfter)}` },
        `${showAge(age)} ago`),
      ` · ${number(health.stations)} stations`,
    );
    renderHealth(health);
  } catch (err) {
    strip.textContent = "Health unknown";
    byId("health-chart").hidden = true;
    failed("health-message", err);
  }
}

function renderHealth(health) {
  const figures = byId("health-figures");
  const rows = [
    ["Latest capture", showTime(health.latest_capture_at)],
    ["Its age", showAge(health.latest_capture_age_seconds)],
    ["Stations", number(health.stations)],
  ];
  const collection = health.collection || {};
  let hours = null;
  for (const [key, value] of Object.entries(collection)) {
    if (Array.isArray(value) && value.length && value[0] && value[0].hour_start !== undefined) {
      hours = value;
    } else if (Array.isArray(value)) {
      rows.push([key.replace(/_/g, " "), value.length ? `${value.length}` : "none"]);
    } else if (value !== null && typeof value === "object") {
      const inner = Object.entries(value).map(([k, v]) => `${k}: ${v}`).join(", ");
      rows.push([key.replace(/_/g, " "), inner || "none"]);
    } else {
      rows.push([key.replace(/_/g, " "), typeof value === "number" ? number(value, 2) : value ?? "—"]);
    }
  }
  figures.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  if (health.note) show("health-message", health.note, true); // e.g. no serving file yet
  else if (!Object.keys(collection).length) show("health-message", "No collection figures for today yet.");
  if (hours && hours.some((h) => h.captures !== undefined)) {
    Plotly.react("health-chart", [{
      type: "bar", x: hours.map((h) => plotTime(h.hour_start)), y: hours.map((h) => h.captures),
      marker: { color: "#4e79a7" }, name: "captures", hovertemplate: "%{x}: %{y} captures<extra></extra>",
    }], {
      margin: { t: 30, r: 10, b: 40, l: 50 },
      title: { text: `Captures per hour, ${collection.day || "latest day"}`, font: { size: 13 } },
      xaxis: TIME_AXIS, yaxis: { title: { text: "captures" }, rangemode: "tozero" },
    }, PLOT_CONFIG);
  } else {
    byId("health-chart").hidden = true;
  }
}

// ---- the network now: map, search ----

async function loadNetwork() {
  try {
    const [stations] = await Promise.all([getAll("/api/stations"), loadOutlines()]);
    app.stations = stations.items;
    app.byCode = new Map(app.stations.map((s) => [s.station_code, s]));
    byId("network-count").textContent = `${number(app.stations.length)} stations`;
    if (!app.stations.length) {
      show("map-message", "No station yet: the network's state is built from the first captures.");
    } else if (stations.note) {
      show("map-message", `Note: ${stations.note}.`); // e.g. states not published yet
    }
    renderMap();
    renderResults();
  } catch (err) {
    byId("map").hidden = true; // no blank map-sized hole under the message
    failed("map-message", err);
  }
}

async function loadOutlines() {
  try {
    const response = await fetch("districts.geojson");
    if (!response.ok) throw new Error(`${response.status}`);
    app.outlines = await response.json();
    byId("attribution").textContent = `${app.outlines.attribution}.`;
  } catch (err) {
    show("global-message", `The district outlines did not load (${err.message}): the map shows stations only.`);
  }
}

function rings(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

/** Area-weighted centre of a polygon's largest ring: where an arrondissement's number goes. */
function centroid(geometry) {
  const ring = rings(geometry).reduce((a, b) => (b.length > a.length ? b : a), []);
  let area = 0, cx = 0, cy = 0;
  for (let i = 0; i < ring.length - 1; i++) {
    const [x0, y0] = ring[i], [x1, y1] = ring[i + 1];
    const cross = x0 * y1 - x1 * y0;
    area += cross; cx += (x0 + x1) * cross; cy += (y0 + y1) * cross;
  }
  return area ? [cx / (3 * area), cy / (3 * area)] : ring[0];
}

function outlineTraces() {
  if (!app.outlines) return [];
  const traces = [];
  for (const served of [false, true]) {
    const x = [], y = [];
    for (const feature of app.outlines.features.filter((f) => Boolean(f.properties.served) === served)) {
      for (const ring of rings(feature.geometry)) {
        for (const [lon, lat] of ring) { x.push(lon); y.push(lat); }
        x.push(null); y.push(null);
      }
    }
    traces.push({
      type: "scatter", mode: "lines", x, y, hoverinfo: "skip", showlegend: false,
      name: served ? "districts served" : "other communes",
      line: { color: served ? "#9a9a9a" : "#d9d9d9", width: served ? 1 : 0.8 },
    });
  }
  const paris = app.outlines.features.filter((f) => f.properties.arrondissement);
  const centres = paris.map((f) => centroid(f.geometry));
  traces.push({
    type: "scatter", mode: "text", hoverinfo: "skip", showlegend: false, name: "arrondissements",
    x: centres.map((c) => c[0]), y: centres.map((c) => c[1]),
    text: paris.map((f) => `${f.properties.arrondissement}${f.properties.arrondissement === 1 ? "er" : "e"}`),
    textfont: { color: "#a0a0a0", size: 12 },
  });
  return traces;
}

function stationHover(s) {
  const since = s.since
    ? `${s.since_at_least ? "at least " : ""}${showTime(s.since)} (${showAge((s.minutes_in_state || 0) * 60)})`
    : "—";
  return `<b>${escapeHtml(s.name || "(no name)")}</b> (${escapeHtml(s.station_code)})<br>` +
    `${number(s.bikes)} bikes (${number(s.mechanical)} mechanical, ${number(s.ebike)} e-bikes), ` +
    `${number(s.docks)} docks<br>${stateLabel(s.state)} since ${since}<br>${escapeHtml(s.district || "")}`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function matching() {
  const query = fold(byId("search").value.trim());
  const wanted = byId("state-filter").value;
  const filtered = Boolean(query || wanted);
  const found = app.stations.filter((s) =>
    (!wanted || s.state === wanted) &&
    (!query || fold(s.station_code).includes(query) || fold(s.name).includes(query)));
  return { filtered, found };
}

function renderMap() {
  const located = (s) => Number.isFinite(s.lat) && Number.isFinite(s.lon);
  const stations = app.stations.filter(located);
  const div = byId("map");
  div.hidden = !stations.length;
  if (!stations.length) {
    Plotly.purge(div);
    if (app.stations.length) show("map-message", "No station has a position to draw.");
    return;
  }
  const { filtered, found } = matching();
  const shown = new Set(found.map((s) => s.station_code));
  const traces = outlineTraces();
  if (filtered) {
    const others = stations.filter((s) => !shown.has(s.station_code));
    traces.push({
      type: "scatter", mode: "markers", name: "not matching", hoverinfo: "skip", showlegend: false,
      x: others.map((s) => s.lon), y: others.map((s) => s.lat),
      marker: { color: "#c8c8c8", size: 4 },
    });
  }
  for (const state of STATES) {
    const rows = stations.filter((s) => s.state === state && (!filtered || shown.has(s.station_code)));
    traces.push({
      type: "scatter", mode: "markers", name: `${stateLabel(state)} (${rows.length})`,
      x: rows.map((s) => s.lon), y: rows.map((s) => s.lat),
      customdata: rows.map((s) => s.station_code), text: rows.map(stationHover),
      hovertemplate: "%{text}<extra></extra>",
      marker: { color: STATE_COLOURS[state], size: filtered ? 9 : 7, line: { color: "#ffffff", width: 0.6 } },
    });
  }
  const unknown = stations.filter((s) => !STATES.includes(s.state) && (!filtered || shown.has(s.station_code)));
  if (unknown.length) {
    traces.push({
      type: "scatter", mode: "markers", name: `state unknown (${unknown.length})`,
      x: unknown.map((s) => s.lon), y: unknown.map((s) => s.lat),
      customdata: unknown.map((s) => s.station_code), text: unknown.map(stationHover),
      hovertemplate: "%{text}<extra></extra>", marker: { color: "#bdbdbd", size: 6 },
    });
  }
  const chosen = app.station && app.byCode.get(app.station);
  if (chosen && located(chosen)) {
    traces.push({
      type: "scatter", mode: "markers", name: "chosen station", showlegend: false, hoverinfo: "skip",
      x: [chosen.lon], y: [chosen.lat], marker: { size: 20, color: "rgba(0,0,0,0)", line: { color: "#000", width: 2.5 } },
    });
  }
  const lats = stations.map((s) => s.lat), lons = stations.map((s) => s.lon);
  const [latMin, latMax] = [Math.min(...lats), Math.max(...lats)];
  const [lonMin, lonMax] = [Math.min(...lons), Math.max(...lons)];
  const padLat = (latMax - latMin) * 0.03 || 0.01, padLon = (lonMax - lonMin) * 0.03 || 0.01;
  const layout = {
    margin: { t: 4, r: 4, b: 4, l: 4 }, hovermode: "closest", dragmode: "pan", plot_bgcolor: "#fbfbf8",
    // Degrees of longitude are shorter than degrees of latitude by cos(latitude): scale y to match.
    xaxis: { range: [lonMin - padLon, lonMax + padLon], visible: false },
    yaxis: {
      range: [latMin - padLat, latMax + padLat], visible: false, scaleanchor: "x",
      scaleratio: 1 / Math.cos(((latMin + latMax) / 2) * Math.PI / 180),
    },
    legend: { x: 0.01, y: 0.99, bgcolor: "rgba(255,255,255,0.85)", bordercolor: "#ddd", borderwidth: 1 },
    uirevision: "map",
  };
  Plotly.react(div, traces, layout, { ...PLOT_CONFIG, scrollZoom: true });
  div.dataset.stations = String(stations.length);
  div.dataset.shown = String(filtered ? found.filter(located).length : stations.length);
  if (!div.dataset.wired) {
    div.on("plotly_click", (event) => {
      const code = event.points.map((p) => p.customdata).find((c) => c !== undefined);
      if (code !== undefined) goToStation(code);
    });
    div.dataset.wired = "true";
  }
}

function renderResults() {
  const { filtered, found } = matching();
  const list = byId("search-results");
  if (!filtered) {
    byId("search-count").textContent = "Type a code or part of a name, or pick a state.";
    list.replaceChildren();
    return;
  }
  const sorted = [...found].sort((a, b) => String(a.name).localeCompare(String(b.name), "fr"));
  const more = sorted.length > RESULTS_SHOWN ? ` (first ${RESULTS_SHOWN} listed)` : "";
  byId("search-count").textContent = found.length
    ? `${number(found.length)} stations match${more}.`
    : "No station matches.";
  list.replaceChildren(...sorted.slice(0, RESULTS_SHOWN).map((s) => {
    const item = el("li", { tabIndex: 0, "data-code": s.station_code, title: stateLabel(s.state) },
      el("span", { class: "dot", style: `background:${STATE_COLOURS[s.state] || "#999"}` }),
      el("span", { class: "code" }, s.station_code), s.name || "(no name)",
      el("span", { class: "muted" }, ` — ${number(s.bikes)} bikes, ${number(s.docks)} docks`));
    const open = () => goToStation(s.station_code);
    item.addEventListener("click", open);
    item.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return item;
  }));
}

// ---- one station ----

// The address keeps what is on screen (`#station=16107&q=bastille&state=empty`): links can be shared.
const hashParams = () => new URLSearchParams(location.hash.slice(1));

function setHash(params) {
  const text = params.toString();
  history.replaceState(null, "", text ? `#${text}` : location.pathname + location.search);
}

function goToStation(code) {
  const params = hashParams();
  params.set("station", code);
  location.hash = params.toString(); // a hashchange: the back button returns to the previous station
}

async function openStation(code) {
  const section = byId("station");
  app.station = code;
  section.hidden = false;
  section.dataset.stationCode = code;
  byId("station-title").textContent = `Station ${code}`;
  byId("station-facts").textContent = "";
  clearHistory();
  Plotly.purge("station-forecast");
  show("forecast-message", "");
  section.scrollTop = 0;
  if (app.stations.length) renderMap();
  try {
    const station = await getJSON(`/api/stations/${encodeURIComponent(code)}`);
    if (app.station !== code) return; // another station was chosen meanwhile
    renderStationFacts(station);
  } catch (err) {
    if (app.station === code) failed("station-message", err);
    return;
  }
  await Promise.all([loadStationHistory(code), loadForecast(code)]);
}

function renderStationFacts(s) {
  byId("station-title").textContent = `${s.name || "(no name)"} (${s.station_code})`;
  const facts = byId("station-facts");
  facts.replaceChildren(
    el("span", { class: "dot", style: `background:${STATE_COLOURS[s.state] || "#999"}` }),
    el("b", { class: "state" }, stateLabel(s.state)),
    s.since ? ` since ${showTime(s.since)}` : "",
    " · ", el("b", { class: "bikes" }, number(s.bikes)), " bikes (",
    number(s.mechanical), " mechanical, ", number(s.ebike), " e-bikes) · ",
    el("b", { class: "docks" }, number(s.docks)), " docks · capacity ", number(s.capacity),
    ` · ${s.district || "district unknown"}`,
    s.captured_at ? ` · as captured ${showTime(s.captured_at)}` : "",
  );
}

/** Nothing of the previous station or range stays on screen, whatever comes next. */
function clearHistory() {
  show("station-message", "");
  byId("station-summary").textContent = "";
  for (const id of ["station-fill", "station-critical"]) Plotly.purge(id);
}

async function loadStationHistory(code) {
  const start = byId("station-start").value, end = byId("station-end").value;
  const problem = rangeProblem(start, end);
  clearHistory();
  if (problem) {
    show("station-message", `Cannot show the history: ${problem}.`, true);
    return;
  }
  try {
    const { items } = await getAll(
      `/api/stations/${encodeURIComponent(code)}/occupancy?start=${start}&end=${end}`);
    if (app.station !== code) return;
    if (!items.length) {
      show("station-message", `No occupancy for this station from ${start} to ${end}.`);
      return;
    }
    const rows = hourly(items);
    const x = rows.map((r) => plotTime(r.hour_start));
    const margin = { t: 34, r: 16, b: 40, l: 56 };
    const xaxis = TIME_AXIS; // the same hours on both charts
    byId("station-fill").dataset.columns = String(new Set(x).size);
    Plotly.react("station-fill", [{
      // Markers too: an hour alone between hours without data would otherwise not show.
      type: "scatter", mode: "lines+markers", x, y: rows.map((r) => r.mean_fill_rate), name: "mean fill rate",
      line: { color: "#4e79a7", width: 1.8 }, marker: { size: 4 }, connectgaps: false,
      hovertemplate: "%{x}: %{y:.0%} full<extra></extra>",
    }], {
      margin, title: { text: "Hourly mean fill rate (bikes / (bikes + docks))", font: { size: 13 } },
      xaxis, yaxis: { range: [-0.03, 1.03], tickformat: ".0%" }, height: 260,
    }, PLOT_CONFIG);
    Plotly.react("station-critical", [
      { type: "bar", x, y: rows.map((r) => r.empty_minutes), name: "empty", marker: { color: STATE_COLOURS.empty },
        hovertemplate: "%{x}: %{y:.0f} min empty<extra></extra>" },
      { type: "bar", x, y: rows.map((r) => r.full_minutes), name: "full", marker: { color: STATE_COLOURS.full },
        hovertemplate: "%{x}: %{y:.0f} min full<extra></extra>" },
    ], {
      margin, xaxis, barmode: "stack", height: 240,
      title: { text: "Minutes empty and full in each hour (in service)", font: { size: 13 } },
      yaxis: { range: [0, 60], title: { text: "minutes" } },
      legend: { orientation: "h", y: 1.12, x: 1, xanchor: "right", traceorder: "normal" },
    }, PLOT_CONFIG);
    const empty = rows.reduce((t, r) => t + (r.empty_minutes || 0), 0);
    const full = rows.reduce((t, r) => t + (r.full_minutes || 0), 0);
    byId("station-summary").textContent = `${number(items.length)} hours with data from ${start} to ${end}: ` +
      `${number(empty)} minutes empty, ${number(full)} minutes full.`;
  } catch (err) {
    failed("station-message", err);
  }
}

async function loadForecast(code) {
  try {
    const answer = await getJSON(`/api/forecasts?station=${encodeURIComponent(code)}&limit=1000`);
    if (app.station !== code) return;
    if (!answer.items.length) {
      show("forecast-message", answer.note ? `No forecast: ${answer.note}.` : "No forecast for this station.");
      return;
    }
    const latest = answer.items.reduce((a, b) => (a.issued_at > b.issued_at ? a : b)).issued_at;
    const rows = answer.items.filter((r) => r.issued_at === latest)
      .sort((a, b) => Date.parse(a.target_at) - Date.parse(b.target_at));
    const x = rows.map((r) => plotTime(r.target_at));
    Plotly.react("station-forecast", [
      { type: "scatter", mode: "lines+markers", x, y: rows.map((r) => r.bikes), name: "bikes",
        line: { color: "#4e79a7" } },
      { type: "scatter", mode: "lines+markers", x, y: rows.map((r) => r.p_empty), name: "P(empty)",
        yaxis: "y2", line: { color: STATE_COLOURS.empty, dash: "dot" } },
      { type: "scatter", mode: "lines+markers", x, y: rows.map((r) => r.p_full), name: "P(full)",
        yaxis: "y2", line: { color: STATE_COLOURS.full, dash: "dot" } },
    ], {
      margin: { t: 34, r: 56, b: 40, l: 56 }, height: 260, xaxis: TIME_AXIS,
      title: { text: `Forecast issued ${showTime(latest)}`, font: { size: 13 } },
      yaxis: { title: { text: "bikes" }, rangemode: "tozero" },
      yaxis2: { overlaying: "y", side: "right", range: [0, 1], tickformat: ".0%", title: { text: "probability" } },
      legend: { orientation: "h", y: 1.12, x: 1, xanchor: "right" },
    }, PLOT_CONFIG);
  } catch (err) {
    failed("forecast-message", err);
  }
}

function closeStation() {
  const params = hashParams();
  params.delete("station");
  setHash(params);
  app.station = null;
  byId("station").hidden = true;
  if (app.stations.length) renderMap();
}

/** Rows of every hour from the first to the last: an hour without data is a gap in the lines. */
function hourly(items) {
  const byHour = new Map(items.map((r) => [Date.parse(r.hour_start), r]));
  const times = [...byHour.keys()];
  const first = times.reduce((a, b) => Math.min(a, b)), last = times.reduce((a, b) => Math.max(a, b));
  const rows = [];
  for (let t = first; t <= last; t += 3600000) {
    rows.push(byHour.get(t) || { hour_start: new Date(t).toISOString() });
  }
  return rows;
}

// ---- districts by hour ----

const DISTRICT_METRICS = {
  mean_fill_rate: {
    value: (r) => r.mean_fill_rate, zmin: 0, zmax: 1, format: ".0%", title: "mean fill rate",
    colorscale: "RdBu", reversescale: true, // red: no bikes left; blue: no docks left
  },
  empty_minutes: {
    value: (r) => (r.in_service_minutes ? r.empty_minutes / r.in_service_minutes : null),
    zmin: 0, zmax: 1, format: ".0%", title: "share of time empty", colorscale: "YlOrRd", reversescale: true,
  },
  full_minutes: {
    value: (r) => (r.in_service_minutes ? r.full_minutes / r.in_service_minutes : null),
    zmin: 0, zmax: 1, format: ".0%", title: "share of time full", colorscale: "Blues", reversescale: true,
  },
};

/** Paris arrondissements in their order, then the other communes alphabetically. */
function districtOrder(a, b) {
  const n = (d) => { const m = /^Paris (\d+)/.exec(d); return m ? Number(m[1]) : null; };
  const [na, nb] = [n(a), n(b)];
  if (na !== null && nb !== null) return na - nb;
  if (na !== null) return -1;
  if (nb !== null) return 1;
  return a.localeCompare(b, "fr");
}

async function loadDistricts() {
  const start = byId("district-start").value, end = byId("district-end").value;
  const problem = rangeProblem(start, end);
  const div = byId("district-heatmap");
  if (problem) {
    Plotly.purge(div); // never a heat map of other dates under the message
    show("district-message", `Cannot draw the heat map: ${problem}.`, true);
    return;
  }
  show("district-message", "Loading…");
  try {
    const { items } = await getAll(`/api/districts/occupancy?start=${start}&end=${end}`);
    if (!items.length) {
      Plotly.purge(div);
      div.dataset.districts = "0";
      show("district-message", `No district occupancy from ${start} to ${end}.`);
      return;
    }
    app.districtRows = items;
    renderDistricts();
    show("district-message", "");
  } catch (err) {
    Plotly.purge(div);
    failed("district-message", err);
  }
}

function renderDistricts() {
  const rows = app.districtRows;
  if (!rows) return;
  const metric = DISTRICT_METRICS[byId("district-metric").value];
  const districts = [...new Set(rows.map((r) => r.district))].sort(districtOrder);
  // Every hour from the first to the last, so an hour without data is a blank column, not a wide cell.
  const times = rows.map((r) => Date.parse(r.hour_start));
  const first = times.reduce((a, b) => Math.min(a, b)), last = times.reduce((a, b) => Math.max(a, b));
  const hours = [];
  for (let t = first; t <= last; t += 3600000) hours.push(new Date(t).toISOString());
  const row = new Map(districts.map((d, i) => [d, i]));
  const col = new Map(hours.map((h, i) => [Date.parse(h), i]));
  const z = districts.map(() => hours.map(() => null));
  const text = districts.map(() => hours.map(() => ""));
  for (const r of rows) {
    const i = row.get(r.district), j = col.get(Date.parse(r.hour_start));
    z[i][j] = metric.value(r);
    text[i][j] = `fill ${percent(r.mean_fill_rate)} · ${number(r.empty_minutes)} min empty · ` +
      `${number(r.full_minutes)} min full · ${number(r.in_service_minutes)} min in service`;
  }
  const div = byId("district-heatmap");
  const x = hours.map(plotTime);
  Plotly.react(div, [{
    type: "heatmap", x, y: districts, z, text, zmin: metric.zmin, zmax: metric.zmax,
    colorscale: metric.colorscale, reversescale: metric.reversescale, xgap: 0, ygap: 1, hoverongaps: false,
    colorbar: { title: { text: metric.title }, tickformat: metric.format, thickness: 14 },
    hovertemplate: `<b>%{y}</b> %{x}<br>${metric.title} %{z:${metric.format}}<br>%{text}<extra></extra>`,
  }], {
    height: Math.max(360, districts.length * 14 + 110),
    margin: { t: 10, r: 10, b: 50, l: 170 },
    yaxis: { autorange: "reversed", tickfont: { size: 10 }, dtick: 1, type: "category" },
    xaxis: { ...TIME_AXIS, title: { text: "hour (Europe/Paris)" } },
    plot_bgcolor: "#f0f0f0",
  }, PLOT_CONFIG);
  div.dataset.districts = String(districts.length);
  div.dataset.hours = String(hours.length);
  div.dataset.columns = String(new Set(x).size); // a column per hour, none drawn over another
}

// ---- rankings ----

async function loadDays() {
  try {
    const { items } = await getAll("/api/days");
    app.days = items.map((d) => d.day).sort();
    const select = byId("ranking-day");
    select.replaceChildren(...[...app.days].reverse().map((d) => el("option", { value: d }, d)));
    if (!app.days.length) {
      show("ranking-message", "No ranking yet: rankings are built once a day's first hours are processed.");
    }
  } catch (err) {
    failed("ranking-message", err);
  }
  const last = app.days.length ? app.days[app.days.length - 1] : new Date().toISOString().slice(0, 10);
  const first = addDays(last, -(DEFAULT_RANGE_DAYS - 1));
  for (const prefix of ["district", "station"]) {
    byId(`${prefix}-start`).value = first;
    byId(`${prefix}-end`).value = last;
  }
}

function rankingRow(r, columns) {
  const tr = el("tr", { "data-code": r.station_code },
    ...columns.map(([key, , numeric]) =>
      el("td", { class: numeric ? "num" : "" }, numeric ? number(r[key]) : r[key] ?? "—")));
  tr.addEventListener("click", () => goToStation(r.station_code));
  return tr;
}

function fillTable(id, items, columns) {
  const head = el("tr", {}, ...columns.map(([, label, numeric]) => el("th", { class: numeric ? "num" : "" }, label)));
  byId(id).replaceChildren(el("thead", {}, head), el("tbody", {}, ...items.map((r) => rankingRow(r, columns))));
}

const RANKING_COLUMNS = [
  ["rank", "#", true], ["station_code", "Code", false], ["name", "Name", false], ["district", "District", false],
  ["critical_minutes", "Critical min", true], ["empty_minutes", "Empty", true], ["full_minutes", "Full", true],
  ["longest_empty_streak_minutes", "Longest empty", true], ["longest_full_streak_minutes", "Longest full", true],
];
const ROLLING_COLUMNS = [
  ["rank", "#", true], ["station_code", "Code", false], ["name", "Name", false], ["district", "District", false],
  ["critical_minutes", "Critical min", true], ["empty_minutes", "Empty", true], ["full_minutes", "Full", true],
];

async function loadRanking() {
  const day = byId("ranking-day").value;
  if (!day) return;
  try {
    const { items } = await getJSON(`/api/rankings/${day}?top=${RANKING_TOP}`);
    fillTable("ranking-table", items, RANKING_COLUMNS);
    show("ranking-message", items.length ? "" : `No station ranked on ${day}.`);
    byId("ranking-table").dataset.day = day;
  } catch (err) {
    failed("ranking-message", err);
  }
}

async function loadRolling() {
  try {
    const { items } = await getJSON("/api/rankings/rolling-2h");
    fillTable("rolling-table", items, ROLLING_COLUMNS);
    const first = items[0];
    byId("rolling-window").textContent = first && first.window_start
      ? `${showTime(first.window_start)} – ${showTime(first.window_end).slice(-5)}` : "";
    show("rolling-message", items.length ? "" : "No station was empty or full in the last two hours of data.");
  } catch (err) {
    failed("rolling-message", err);
  }
}

// ---- wiring ----

/** The search box and state filter as the address says (typed or followed link). */
function filtersFromHash() {
  const params = hashParams();
  byId("search").value = params.get("q") || "";
  const state = params.get("state") || "";
  byId("state-filter").value = STATES.includes(state) ? state : "";
}

function filtersToHash() {
  const params = hashParams();
  const query = byId("search").value.trim(), state = byId("state-filter").value;
  if (query) params.set("q", query); else params.delete("q");
  if (state) params.set("state", state); else params.delete("state");
  setHash(params);
}

function onHash() {
  const before = [byId("search").value, byId("state-filter").value].join("\n");
  filtersFromHash();
  if ([byId("search").value, byId("state-filter").value].join("\n") !== before && app.stations.length) {
    renderMap();
    renderResults();
  }
  const code = hashParams().get("station");
  if (code && code !== app.station) openStation(code);
  else if (!code && app.station) closeStation();
}

function wire() {
  const stateFilter = byId("state-filter");
  for (const s of STATES) stateFilter.append(el("option", { value: s }, stateLabel(s)));
  const refilter = () => { filtersToHash(); renderMap(); renderResults(); };
  let typing = null; // redraw once typing pauses, not on every key
  byId("search").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refilter, 150); });
  byId("search").addEventListener("keydown", (e) => {
    const { found } = matching();
    if (e.key === "Enter" && found.length === 1) goToStation(found[0].station_code);
  });
  stateFilter.addEventListener("change", refilter);
  for (const id of ["district-start", "district-end"]) byId(id).addEventListener("change", loadDistricts);
  byId("district-metric").addEventListener("change", renderDistricts);
  for (const id of ["station-start", "station-end"]) {
    byId(id).addEventListener("change", () => app.station && loadStationHistory(app.station));
  }
  byId("station-close").addEventListener("click", closeStation);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && app.station) closeStation(); });
  byId("ranking-day").addEventListener("change", loadRanking);
  window.addEventListener("hashchange", onHash);
}

async function main() {
  if (typeof Plotly === "undefined") {
    show("global-message", "plotly.js did not load: the charts cannot be drawn.", true);
    return;
  }
  wire();
  filtersFromHash();
  const days = loadDays();
  const network = loadNetwork();
  await Promise.allSettled([
    loadHealth(), network, loadRolling(),
    days.then(() => Promise.allSettled([loadRanking(), loadDistricts()])),
    Promise.allSettled([days, network]).then(() => {
      const code = hashParams().get("station");
      return code ? openStation(code) : null;
    }),
  ]);
  document.body.dataset.ready = "true";
}

main().catch((err) => show("global-message", `The dashboard failed to start: ${err.message}`, true));
