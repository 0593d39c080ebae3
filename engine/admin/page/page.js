/* The status page: fetches GET /status every REFRESH_MS and draws it.
 *
 * Every string from /status goes into the DOM as text (textContent, attributes set one by
 * one), never as markup: pool names come from files, but error texts quote what pools
 * answered and player data is player-controlled. The Content-Security-Policy the engine sends
 * allows no inline script either. */
"use strict";

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
let last = null; // the last /status answer, for redraws on resize and pool choice

// ------------------------------------------------------------------ formatting

function num(x) { return typeof x === "number" && isFinite(x); }

function count(x) { return num(x) ? String(Math.round(x)) : "n/a"; }

// Amounts as the engine sent them (up to 8 decimals, trailing zeros dropped).
function amount(x) { return num(x) ? String(Number(x.toFixed(8))) : "n/a"; }

function percent(rate) { return num(rate) ? (rate * 100).toFixed(1) + " %" : "n/a"; }

function ms(x) { return num(x) ? (x < 10 ? x.toFixed(1) : x.toFixed(0)) + " ms" : "n/a"; }

function duration(s) {
  if (!num(s)) return "n/a";
  if (s < 120) return (s < 10 ? s.toFixed(1) : s.toFixed(0)) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function pad(n) { return n < 10 ? "0" + n : String(n); }

// Local clock time; the full date and time in the tooltip.
function clock(t) {
  if (!num(t)) return { text: "n/a" };
  const d = new Date(t * 1000);
  return { text: pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()),
           title: d.toISOString() };
}

// ------------------------------------------------------------------ DOM helpers

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}

// A cell: a string, or {text, cls, title}.
function cell(spec) {
  const td = document.createElement("td");
  const s = typeof spec === "object" && spec !== null ? spec : { text: spec };
  td.textContent = s.text === undefined || s.text === null ? "" : String(s.text);
  if (s.cls) td.className = s.cls;
  if (s.title) td.title = s.title;
  return td;
}

// Replaces the body of table `id` with `rows` (arrays of cells); `attrs(i)` gives data-*
// attributes of row i (for tests and styling).
function fillTable(id, rows, empty, attrs) {
  const body = $(id).tBodies[0];
  const columns = $(id).tHead.rows[0].cells.length;
  const fresh = document.createElement("tbody");
  rows.forEach((cells, i) => {
    const tr = document.createElement("tr");
    const a = attrs ? attrs(i) : {};
    Object.keys(a).forEach((k) => tr.setAttribute("data-" + k, String(a[k])));
    cells.forEach((c) => tr.appendChild(cell(c)));
    fresh.appendChild(tr);
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell({ text: empty, cls: "empty" });
    td.colSpan = columns;
    tr.appendChild(td);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

function entries(obj) {
  return obj && typeof obj === "object" && !Array.isArray(obj) ? Object.keys(obj).map((k) => [k, obj[k]]) : [];
}

// ------------------------------------------------------------------ sections

function showSummary(st) {
  const ready = st.ready === true;
  setText("state", ready ? "ready" : "not ready: " + (st.reason || "unknown"),
          ready ? "badge ok" : "badge bad");
  setText("s-version", st.version || "n/a");
  setText("s-uptime", duration(st.uptime_seconds));
  setText("s-database", st.database || "n/a",
          "value " + (st.database === "degraded" ? "bad-text" : st.database === "ok" ? "ok-text" : ""));
  setText("s-accounts", count(st.accounts));
  setText("s-polls", count(st.polls));
  setText("s-awards", count(st.awards));
  const gen = typeof st.script_generation === "string" ? st.script_generation : "";
  setText("s-scripts", (gen ? gen.slice(0, 10) : "not loaded") +
          (num(st.script_reload_failures) && st.script_reload_failures > 0
           ? " (" + st.script_reload_failures + " failed reloads)" : ""));
  $("s-scripts").title = gen ? "script generation " + gen : "";
}

function showPools(st) {
  const pools = entries(st.pools);
  fillTable("pools", pools.map(([name, p]) => [
    { text: name, cls: "pool" },
    { text: count(p.accounts), cls: "num accounts" },
    { text: count(p.polls), cls: "num polls" },
    { text: percent(p.success_rate), cls: "num success" + (p.failures > 0 ? " bad-text" : "") },
    { text: count(p.failures), cls: "num failures" },
    { text: ms(p.mean_latency_ms), cls: "num latency" },
    { text: duration(p.effective_interval_seconds), cls: "num interval" + (p.interval_exceeds_max ? " bad-text" : ""),
      title: num(p.max_interval_seconds) ? "max_interval " + duration(p.max_interval_seconds) : "" },
    { text: count(p.awards), cls: "num awards" },
    { text: count(p.awards_held), cls: "num held" },
  ]), "no pool yet", (i) => ({ pool: pools[i][0] }));
}

function showAwards(st) {
  const list = Array.isArray(st.recent_awards) ? st.recent_awards : [];
  fillTable("awards", list.map((a) => {
    const t = clock(a.time);
    return [
      { text: t.text, title: t.title, cls: "time" },
      { text: count(a.player_id), cls: "num player" },
      { text: a.pool, cls: "pool" },
      { text: amount(a.advc), cls: "num advc" },
      { text: amount(a.ap), cls: "num ap" },
      a.held ? { text: "held", cls: "state held-text" } : { text: "paid", cls: "state" },
    ];
  }), "no award since the engine started");
}

function showErrors(st) {
  const list = Array.isArray(st.recent_errors) ? st.recent_errors : [];
  fillTable("errors", list.map((e) => {
    const t = clock(e.time);
    return [
      { text: t.text, title: t.title, cls: "time" },
      { text: count(e.player_id), cls: "num player" },
      { text: e.pool, cls: "pool" },
      { text: e.error, cls: "why" },
    ];
  }), "no failed poll since the engine started");
}

// database_stats comes from the database every few seconds: absent (no database, or no
// answer yet) reads "n/a".
function showHeldAndSinks(st) {
  const dbs = st.database_stats && typeof st.database_stats === "object" ? st.database_stats : null;
  setText("held-pending", dbs && num(dbs.held_awaiting_release) ? count(dbs.held_awaiting_release) : "n/a");
  const held = entries(st.pools).reduce((n, [, p]) => n + (num(p.awards_held) ? p.awards_held : 0), 0);
  setText("held-engine", String(held));
  const dbSinks = dbs && dbs.sinks && typeof dbs.sinks === "object" ? dbs.sinks : {};
  const sinks = entries(st.notifications);
  fillTable("sinks", sinks.map(([name, s]) => {
    const d = Object.prototype.hasOwnProperty.call(dbSinks, name) ? dbSinks[name] : null;
    const state = s.gone ? "gone" : s.ready ? "ready" : "not ready";
    return [
      { text: name, cls: "sink" },
      { text: state, cls: "state " + (s.ready && !s.gone ? "ok-text" : "bad-text") },
      { text: count(s.in_flight), cls: "num" },
      { text: count(s.delivered), cls: "num" },
      { text: count(s.failed_attempts), cls: "num" },
      { text: count(s.expired), cls: "num" },
      { text: d && num(d.depth) ? count(d.depth) : "n/a", cls: "num depth" },
      { text: d && num(d.oldest_age_seconds) ? duration(d.oldest_age_seconds) : "n/a", cls: "num oldest" },
    ];
  }), "no notification sink configured", (i) => ({ sink: sinks[i][0] }));
}

// ------------------------------------------------------------------ charts

function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

function sum(a) { return (Array.isArray(a) ? a : []).reduce((n, x) => n + (num(x) ? x : 0), 0); }

// Stacked bars of `lower` (colour a) under `upper` (colour b), one per minute, oldest left.
function drawBars(canvas, lower, upper, colours) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, canvas.clientWidth), h = Math.max(1, canvas.clientHeight);
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const n = Math.max(lower.length, upper.length, 1);
  let max = 1;
  for (let i = 0; i < n; i++) max = Math.max(max, (lower[i] || 0) + (upper[i] || 0));
  const left = 34, bottom = 18, top = 6, plotW = w - left - 4, plotH = h - bottom - top;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = cssVar("--muted");
  g.strokeStyle = cssVar("--grid");
  g.textAlign = "right";
  g.textBaseline = "middle";
  // Grid lines at whole counts: 0, the top, and the middle when it is a distinct count.
  const marks = max >= 4 ? [0, Math.round(max / 2), max] : [0, max];
  for (const v of marks) {
    const y = top + plotH * (1 - v / max);
    g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(w - 4, y + 0.5); g.stroke();
    g.fillText(String(v), left - 4, y);
  }
  g.textBaseline = "alphabetic";
  g.textAlign = "left"; g.fillText("-60 min", left, h - 4);
  g.textAlign = "center"; g.fillText("-30", left + plotW / 2, h - 4);
  g.textAlign = "right"; g.fillText("now", w - 4, h - 4);
  const bw = plotW / n;
  let drawn = 0;
  for (let i = 0; i < n; i++) {
    const a = lower[i] || 0, b = upper[i] || 0;
    if (!a && !b) continue;
    drawn++;
    const x = left + i * bw + bw * 0.1, bwi = Math.max(1, bw * 0.8);
    const ha = plotH * a / max, hb = plotH * b / max;
    g.fillStyle = colours[0]; g.fillRect(x, top + plotH - ha, bwi, ha);
    g.fillStyle = colours[1]; g.fillRect(x, top + plotH - ha - hb, bwi, hb);
  }
  canvas.setAttribute("data-bars", String(drawn));
}

function showCharts(st) {
  const series = st.series && typeof st.series === "object" ? st.series : null;
  const select = $("chart-pool");
  const pools = series ? entries(series.pools).map(([name]) => name) : [];
  const have = Array.from(select.options).map((o) => o.value);
  pools.forEach((name) => {
    if (have.indexOf(name) < 0) {
      const o = document.createElement("option");
      o.value = name;
      o.textContent = name;
      select.appendChild(o);
    }
  });
  const own = (o, k) => o && typeof o === "object" && Object.prototype.hasOwnProperty.call(o, k);
  const chosen = select.value && series && own(series.pools, select.value) && series.pools[select.value];
  const s = chosen || series || {};
  const arr = (k) => (Array.isArray(s[k]) ? s[k] : []);
  const polls = arr("polls"), failures = arr("failures");
  const ok = polls.map((p, i) => Math.max(0, p - (failures[i] || 0)));
  drawBars($("chart-polls"), ok, failures, [cssVar("--ok"), cssVar("--bad")]);
  drawBars($("chart-awards"), arr("awards"), arr("held"), [cssVar("--award"), cssVar("--held")]);
  const what = select.value ? " on " + select.value : "";
  setText("chart-polls-total", series ? sum(polls) + " polls, " + sum(failures) + " failed" + what + " in the last hour"
                                      : "n/a");
  setText("chart-awards-total", series ? sum(arr("awards")) + " paid, " + sum(arr("held")) + " held" + what + " in the last hour"
                                       : "n/a");
}

// ------------------------------------------------------------------ refresh

function show(st) {
  last = st;
  showSummary(st);
  showPools(st);
  showAwards(st);
  showErrors(st);
  showHeldAndSinks(st);
  showCharts(st);
  const t = clock(st.time);
  setText("updated", "updated " + t.text);
  $("problem").hidden = true;
  document.body.setAttribute("data-loaded", "1");
}

// A malformed /status says why on the page instead of leaving it half drawn and silent.
function showSafely(st) {
  try {
    show(st);
  } catch (e) {
    $("problem").hidden = false;
    setText("problem", "could not show /status: " + e.message);
  }
}

async function refresh() {
  try {
    const r = await fetch("/status", { cache: "no-store" });
    if (!r.ok) throw new Error("/status answered HTTP " + r.status);
    showSafely(await r.json());
  } catch (e) {
    $("problem").hidden = false;
    setText("problem", "cannot reach the engine (" + e.message + "); showing the last answer");
    setText("state", "unreachable", "badge bad");
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("chart-pool").addEventListener("change", () => { if (last) showCharts(last); });
  window.addEventListener("resize", () => { if (last) showCharts(last); });
  refresh();
});
