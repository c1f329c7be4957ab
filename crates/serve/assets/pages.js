// rudder's dashboard: a run's page (charts, controls, timeline, policies and their
// editor, config, checkpoints), a sweep's page and the comparison of several runs.
"use strict";

function eventText(e) {
  if (e.message !== undefined) return String(e.message);
  if (e.reason !== undefined) return String(e.reason);
  if (e.decision !== undefined) return JSON.stringify(e.decision);
  if (e.path !== undefined) return String(e.path);
  return "";
}

// The charts of one run's epochs (and steps), redrawn as points arrive.
function runCharts(box, run) {
  const m = run.metrics;
  const col = (k) => m.map((r) => [r.epoch + 1, r[k]]).filter((p) => typeof p[1] === "number");
  const marks = run.markers.map((k) => ({ x: k.epoch + 1, label: `${k.name}: ${k.label}`, color: k.color, error: k.error }));
  const regression = m.some((r) => r.val_rmse !== undefined);
  const policyKeys = [...new Set(m.flatMap((r) => Object.keys(r.policy || {})))];
  const specs = [
    { title: "loss", series: [{ name: "train_loss", points: col("train_loss") }, { name: "val_loss", points: col("val_loss") }], markers: marks },
    regression
      ? { title: "error", series: [{ name: "val_rmse", points: col("val_rmse") }, { name: "val_mae", points: col("val_mae") }], markers: marks }
      : { title: "accuracy", series: [{ name: "train_acc", points: col("train_acc") }, { name: "val_acc", points: col("val_acc") }], markers: marks },
    { title: "learning rate", series: [{ name: "lr", points: col("lr") }], log: spansDecades(m.map((r) => r.lr)) },
    { title: "batch size", series: [{ name: "batch_size", points: col("batch_size") }] },
  ];
  if (policyKeys.length) {
    specs.push({ title: "policies' metrics", series: policyKeys.map((k) => ({ name: k,
      points: m.map((r) => [r.epoch + 1, (r.policy || {})[k]]).filter((p) => typeof p[1] === "number") })) });
  }
  if (run.steps.length) {
    specs.push({ title: "loss per step", xlabel: "step", series: [{ name: "loss", points: run.steps.map((s) => [s[0], s[2]]) }] });
    specs.push({ title: "LR per step", xlabel: "step", log: spansDecades(run.steps.map((s) => s[1])),
      series: [{ name: "lr", points: run.steps.map((s) => [s[0], s[1]]) }] });
  }
  if (!box.charts) box.charts = specs.map((s) => Chart(box, s));
  else specs.forEach((s, i) => (box.charts[i] ? box.charts[i].draw(s) : box.charts.push(Chart(box, s))));
}

// A control's answer, once both the run's event and the id it was sent as are known
// (the event may come over the stream before the request's own answer).
function settle(run, answer, id) {
  const what = run.pending[id], event = run.answers[id];
  if (!what || !event) return;
  const at = `at step ${event.step} (epoch ${event.epoch + 1})`;
  answer.className = event.kind === "decision" ? "answer good" : "answer bad";
  answer.textContent = event.kind === "decision" ? `${what}: applied ${at}` : `${what}: rejected ${at}: ${event.message}`;
  delete run.pending[id];
}

function controlsPanel(run, answer) {
  const send = async (decision, what) => {
    answer.className = "answer";
    answer.textContent = `${what}: sent...`;
    const r = await postJSON(`/api/control?id=${encodeURIComponent(run.id)}`, decision);
    if (!r.ok) { answer.className = "answer bad"; answer.textContent = `${what}: ${r.body.error}`; return; }
    run.pending[r.body.id] = what;
    answer.textContent = `${what}: sent as ${r.body.id}, waiting for the run to take it`;
    settle(run, answer, r.body.id);
  };
  const input = (name, attrs) => el("input", Object.assign({ name, id: `ctl-${name}` }, attrs || {}));
  const reason = input("reason", { placeholder: "console" });
  const tag = input("tag", { placeholder: "tag (optional)" });
  const set = ["lr", "batch_size", "epochs", "momentum", "weight_decay"].map((k) => [k, input(k, { type: "number", step: "any" })]);
  return el("div", { class: "controls", id: "controls" },
    el("label", {}, "reason", reason),
    el("button", { id: "stop", on: { click: () => send(Object.assign({ stop: true }, reason.value ? { reason: reason.value } : {}), "stop") } }, "Stop"),
    el("label", {}, tag),
    el("button", { id: "save", on: { click: () => send({ save: tag.value || true }, "save") } }, "Save checkpoint"),
    el("button", { id: "rollback-best", on: { click: () => send({ rollback: "best" }, "rollback to best") } }, "Roll back to best"),
    el("button", { id: "rollback-last", on: { click: () => send({ rollback: "last" }, "rollback to last") } }, "Roll back to last"),
    ...set.map(([k, i]) => el("label", {}, k, i)),
    el("button", { id: "apply", on: { click: () => {
      const d = {};
      for (const [k, i] of set) if (i.value !== "") d[k] = Number(i.value);
      if (Object.keys(d).length) send(d, `set ${Object.keys(d).join(", ")}`);
    } } }, "Set"));
}

function eventsTable(events) {
  const row = (e) => el("tr", { dataset: { kind: e.kind } }, el("td", { class: "text" }, e.time || ""),
    el("td", {}, (e.epoch ?? 0) + 1), el("td", {}, e.step ?? ""), el("td", { class: "text" }, e.kind),
    el("td", { class: "text" }, e.policy || e.hook || ""), el("td", { class: "text" }, eventText(e)));
  const t = el("table", { id: "events" }, el("tr", {}, ["time", "epoch", "step", "kind", "policy", "what"].map((h) => el("th", { class: "text" }, h))));
  for (const e of events) t.appendChild(row(e));
  t.add = (e) => t.appendChild(row(e));
  return t;
}

function editor(run, file, box, readonly) {
  const area = el("textarea", Object.assign({ class: "editor", id: "editor", spellcheck: "false" }, readonly ? { readonly: "" } : {}));
  const problems = el("ul", { class: "problems", id: "problems" });
  const answer = el("p", { class: "answer", id: "edit-answer" });
  let sha = "";
  const body = () => ({ path: file.path, source: area.value, sha256: sha });
  const show = (r, what) => {
    problems.replaceChildren(...(r.body.problems || []).map((p) =>
      el("li", { dataset: { line: p.line, column: p.column } }, `${p.file}:${p.line}:${p.column}: ${p.message}`)));
    if (r.body.ok) { answer.className = "answer good"; answer.textContent = what; }
    else { answer.className = "answer bad"; answer.textContent = r.body.error || "the edit does not pass; the file is unchanged"; }
  };
  const check = el("button", { id: "check", on: { click: async () => show(await postJSON(`/api/policy/check?id=${encodeURIComponent(run.id)}`, body()), "passes the check") } }, "Check");
  const save = el("button", { id: "save-policy", on: { click: async () => {
    const r = await postJSON(`/api/policy/save?id=${encodeURIComponent(run.id)}`, body());
    if (r.body.saved) sha = r.body.sha256;
    show(r, "saved; the run reloads it at its next step");
  } } }, "Save");
  box.replaceChildren(el("h2", {}, `${readonly ? "Viewing" : "Editing"} ${file.path}`), area,
    readonly ? el("p", { class: "muted" }, "built into rudder: a copy under ./scripts/ with the same name shadows it") : el("p", {}, check, " ", save),
    answer, problems);
  getJSON(`/api/file?id=${encodeURIComponent(run.id)}&path=${encodeURIComponent(file.path)}`)
    .then((f) => { area.value = f.source; sha = f.sha256; })
    .catch((e) => { answer.className = "answer bad"; answer.textContent = e.message; });
}

function policiesSection(run, editBox) {
  return el("div", { id: "policies" }, run.policies.map((p) => el("div", { class: "policy" },
    el("h3", {}, `${p.policy} `, el("span", { class: "muted" }, `v${p.generation} ${p.version || ""}${p.plugin ? ` plugin ${p.plugin.name} ${p.plugin.version}` : ""}`)),
    el("p", { class: "muted" }, `params ${JSON.stringify(p.params || {})}`),
    el("ul", {}, p.files.map((f) => el("li", {}, el("code", {}, f.path), " ",
      f.editable ? el("button", { class: "edit", dataset: { path: f.path }, on: { click: () => editor(run, f, editBox) } }, "Edit")
        : f.viewable ? el("button", { class: "view", dataset: { path: f.path }, on: { click: () => editor(run, f, editBox, true) } }, "View")
        : el("span", { class: "muted" }, f.why || "")))),
    p.reloads.length ? eventsTable(p.reloads) : el("p", { class: "muted" }, "no reloads yet"))));
}

async function runPage(id) {
  const run = await getJSON(`/api/run?id=${encodeURIComponent(id)}`);
  run.pending = {};
  run.answers = {};
  const charts = el("div", { class: "charts", id: "charts" });
  const answer = el("p", { class: "answer", id: "answer" });
  const badge = el("span", { id: "status" }, statusBadge(run.status), run.reason ? ` ${run.reason}` : "");
  const events = eventsTable(run.events);
  const editBox = el("div", { id: "edit" });
  main.replaceChildren(...[el("h1", {}, `Run ${id} `, badge),
    run.sweep ? el("p", {}, "trial of ", sweepLink(run.sweep)) : null,
    run.status === "running" ? controlsPanel(run, answer) : null, answer, charts,
    el("h2", {}, "Events"), events, el("h2", {}, "Policies"), policiesSection(run, editBox), editBox,
    el("h2", {}, "Checkpoints"), el("table", { id: "checkpoints" }, el("tr", {}, ["name", "epoch", "step"].map((h) => el("th", { class: "text" }, h))),
      run.checkpoints.map((c) => el("tr", {}, el("td", { class: "text" }, c.name), el("td", {}, c.epoch ?? ""), el("td", {}, c.step ?? "")))),
    el("h2", {}, "Config"), el("pre", { id: "config" }, JSON.stringify(run.config, null, 2))].filter(Boolean));
  runCharts(charts, run);
  let redraw = null;
  const later = () => { if (!redraw) redraw = setTimeout(() => { redraw = null; runCharts(charts, run); }, 50); };
  const q = `id=${encodeURIComponent(id)}&metrics=${run.offsets.metrics}&events=${run.offsets.events}&steps=${run.offsets.steps}`;
  stream(`/api/live/run?${q}`, {
    metric: (r) => { run.metrics.push(r); runCharts(charts, run); window.rudderDrawn.push({ epoch: r.epoch, t: Date.now() }); },
    step: (s) => { run.steps.push(s); later(); },
    event: ({ event, marker }) => {
      events.add(event);
      if (marker) { run.markers.push(marker); later(); }
      if (event.id !== undefined && (event.kind === "decision" || event.kind === "invalid_decision")) {
        run.answers[event.id] = event;
        settle(run, answer, event.id);
      }
    },
    status: (s) => { badge.replaceChildren(statusBadge(s.status), s.reason ? ` ${s.reason}` : "");
      if (s.status !== "running") { const c = document.getElementById("controls"); if (c) c.remove(); } },
    reset: () => route(),
  });
}

async function sweepPage(id) {
  const box = el("div");
  main.replaceChildren(el("h1", {}, `Sweep ${id}`), box);
  const draw = (s) => {
    const rec = s.sweep || {};
    const metric = rec.metric || "val_loss";
    const charts = el("div", { class: "charts" });
    const trials = el("table", { id: "trials" }, el("tr", {}, ["trial", "status", "settings", "lr", "epochs", "score", "stop", "lineage", ""].map((h) => el("th", { class: "text" }, h))));
    (rec.trials || []).forEach((t, i) => {
      const run = s.trials[i] || {};
      const lineage = (t.lineage || []).map((x) => `epoch ${x.epoch}: from trial ${x.from} (epoch ${x.from_epoch}) ${JSON.stringify(x.settings || {})}`).join("\n");
      const act = (verb) => el("button", { class: `${verb}-trial`, dataset: { trial: t.dir }, on: { click: async (ev) => {
        const r = await postJSON(`/api/sweep/control?id=${encodeURIComponent(id)}`, { [verb]: t.dir });
        ev.target.textContent = r.ok ? `${verb} sent` : r.body.error;
      } } }, verb);
      const running = rec.state === "running";
      const controls = !running ? "" : t.status === "paused" ? [act("resume"), act("stop")]
        : ["running", "pending", undefined].includes(t.status) ? [act("pause"), act("stop")] : "";
      trials.appendChild(el("tr", { dataset: { trial: i } }, el("td", { class: "text" }, run.id ? runLink(run.id, t.dir) : t.dir || `#${i}`),
        el("td", {}, statusBadge(t.status || run.run_status)), el("td", { class: "text" }, JSON.stringify(t.settings || {})),
        el("td", {}, num(t.lr, 4)), el("td", {}, t.epochs_run ?? t.epochs_reported ?? ""), el("td", {}, num(t.score, 4)),
        el("td", { class: "text" }, t.stop_reason || ""), el("td", { class: "text" }, lineage), el("td", {}, controls)));
    });
    const curves = (key) => s.trials.map((t) => ({ name: t.dir, points: t.metrics.map((r) => [r.epoch + 1, r[key]]).filter((p) => typeof p[1] === "number") }));
    box.replaceChildren(el("p", {}, statusBadge(rec.state), ` ${s.trials.length} trials, metric ${metric}${rec.winner !== undefined && rec.winner !== null ? `, winner trial ${rec.winner}` : ""}`),
      charts, el("h2", {}, "Trials"), trials, el("h2", {}, "The scheduler's decisions"), eventsTable(s.events));
    const second = metric === "val_loss" ? (s.trials.some((t) => t.metrics.some((r) => r.val_rmse !== undefined)) ? "val_rmse" : "val_acc") : "val_loss";
    Chart(charts, { title: `${metric} per trial`, series: curves(metric) });
    Chart(charts, { title: `${second} per trial`, series: curves(second) });
  };
  draw(await getJSON(`/api/sweep?id=${encodeURIComponent(id)}`));
  stream(`/api/live/sweep?id=${encodeURIComponent(id)}`, { sweep: draw });
}

async function comparePage(ids) {
  const list = ids.split(",").filter(Boolean);
  const runs = await Promise.all(list.map((id) => getJSON(`/api/run?id=${encodeURIComponent(id)}`)));
  const charts = el("div", { class: "charts", id: "charts" });
  main.replaceChildren(el("h1", {}, `${runs.length} runs`), el("ul", {}, runs.map((r) => el("li", {}, runLink(r.id)))), charts);
  for (const k of ["val_loss", "train_loss", "val_acc", "val_rmse", "lr"]) {
    const series = runs.map((r) => ({ name: r.id, points: r.metrics.map((m) => [m.epoch + 1, m[k]]).filter((p) => typeof p[1] === "number") }));
    if (series.some((x) => x.points.length)) Chart(charts, { title: k, series, log: k === "lr" && spansDecades(series.flatMap((x) => x.points.map((p) => p[1]))) });
  }
}
