// rudder's dashboard: the shared helpers, the router and the run list. Every string
// from a run folder is set as text (textContent), never parsed as markup.
"use strict";

const TOKEN = document.querySelector('meta[name="rudder-token"]').content;
const main = document.getElementById("main");
const live = { sources: [] };
window.rudderDrawn = [];

// An element: el("td", {class: "text"}, "a", child, ...); strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    if (k === "on") for (const ev in attrs.on) e.addEventListener(ev, attrs.on[ev]);
    else if (k === "dataset") Object.assign(e.dataset, attrs.dataset);
    else e.setAttribute(k, attrs[k]);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function num(v, digits) {
  if (v === null || v === undefined || v === "") return "";
  if (typeof v !== "number") return String(v);
  return fmt(digits ? +v.toPrecision(digits) : v);
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { "X-Rudder-Token": TOKEN } });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// A change: the token in a header (the cookie alone is not taken for a change).
async function postJSON(url, data) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "X-Rudder-Token": TOKEN, "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  return { ok: r.ok, status: r.status, body };
}

function stream(url, handlers) {
  const es = new EventSource(url);
  const conn = document.getElementById("conn");
  es.onopen = () => conn.classList.add("on");
  es.onerror = () => conn.classList.remove("on");
  for (const name in handlers) {
    es.addEventListener(name, (ev) => handlers[name](JSON.parse(ev.data)));
  }
  live.sources.push(es);
  return es;
}

function closeStreams() {
  for (const s of live.sources) s.close();
  live.sources = [];
}

function statusBadge(s) {
  return el("span", { class: `status ${s || ""}`, "data-status": s || "" }, s || "?");
}

const runLink = (id, text) => el("a", { href: `#/run/${encodeURIComponent(id)}` }, text || id);
const sweepLink = (id, text) => el("a", { href: `#/sweep/${encodeURIComponent(id)}` }, text || id);

function route() {
  closeStreams();
  const h = location.hash.replace(/^#\/?/, "");
  const [page, ...rest] = h.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  document.getElementById("where").textContent = arg ? ` / ${arg}` : "";
  main.replaceChildren(el("p", {}, "Loading..."));
  const show = { run: runPage, sweep: sweepPage, compare: comparePage }[page] || listPage;
  show(arg).catch((e) => main.replaceChildren(el("p", { class: "answer bad" }, String(e.message || e))));
}

// The run list, live: a line per run and sweep.
async function listPage() {
  const table = el("table", { id: "runs" });
  const picked = new Set();
  const compare = el("button", { id: "compare", on: { click: () => {
    location.hash = `#/compare/${[...picked].map(encodeURIComponent).join(",")}`;
  } } }, "Compare selected");
  const roots = el("p", { class: "muted" });
  main.replaceChildren(el("h1", {}, "Runs"), roots, table, el("p", {}, compare));
  const head = ["", "run", "status", "epoch", "best", "lr", "samples/s", "started", "host"];
  const draw = (list) => {
    roots.textContent = `serving ${list.roots.join(", ")}`;
    const rows = list.runs.map((r) => {
      const box = el("input", { type: "checkbox", on: { change: (e) => {
        if (e.target.checked) picked.add(r.id); else picked.delete(r.id);
      } } });
      if (picked.has(r.id)) box.checked = true;
      const name = r.kind === "sweep" ? sweepLink(r.id, `${r.id} (sweep)`) : runLink(r.id);
      if (r.kind === "sweep") {
        const by = Object.entries(r.by_status || {}).map(([k, v]) => `${v} ${k}`).join(", ");
        return el("tr", { dataset: { id: r.id } }, el("td", {}), el("td", { class: "text" }, name),
          el("td", {}, statusBadge(r.status)), el("td", { colspan: 6, class: "text" },
            `${r.trials} trials: ${by}; metric ${r.metric || ""}`));
      }
      const best = r.best ? `${r.best.metric} ${num(r.best.value, 4)} (epoch ${r.best.epoch + 1})` : "";
      return el("tr", { dataset: { id: r.id } },
        el("td", {}, box), el("td", { class: "text" }, name, r.sweep ? el("span", { class: "muted" }, " trial") : null),
        el("td", { class: "text" }, statusBadge(r.status), r.reason ? ` ${r.reason}` : ""),
        el("td", {}, `${r.epoch}/${r.epochs ?? ""}`), el("td", { class: "text" }, best),
        el("td", {}, num(r.lr, 4)), el("td", {}, num(r.samples_per_s ? Math.round(r.samples_per_s) : "")),
        el("td", { class: "text" }, r.started || ""), el("td", { class: "text" }, r.host || ""));
    });
    table.replaceChildren(el("tr", {}, head.map((h) => el("th", { class: "text" }, h))), ...rows);
  };
  draw(await getJSON("/api/list"));
  stream("/api/live/list", { list: draw });
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
