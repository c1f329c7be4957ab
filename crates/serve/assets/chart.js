// rudder's charts: line charts drawn as SVG, every text set as text (never markup).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(+v.toPrecision(4));
}

// A chart in `parent`: {title, xlabel, log, series: [{name, color, points: [[x, y]]}],
// markers: [{x, label, color, error}]}. Returns {draw(spec)} to redraw with new data.
function Chart(parent, spec) {
  const W = 440, H = 250, L = 58, R = 12, T = 24, B = 54;
  const box = document.createElement("div");
  box.className = "chart";
  parent.appendChild(box);
  const self = {
    spec,
    draw(next) {
      if (next) self.spec = next;
      const s = self.spec;
      box.replaceChildren();
      const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
      root.dataset.title = s.title;
      box.appendChild(root);
      root.appendChild(svg("text", { x: L, y: 15, class: "title" }, s.title));
      const ok = (p) => p && isFinite(p[0]) && isFinite(p[1]) && (!s.log || p[1] > 0);
      const all = s.series.flatMap((x) => x.points.filter(ok));
      let points = 0;
      if (all.length === 0) {
        root.appendChild(svg("text", { x: L, y: H / 2 }, "no points yet"));
        root.dataset.points = "0";
        return;
      }
      const f = (y) => (s.log ? Math.log10(y) : y);
      let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
      let [y0, y1] = [Math.min(...all.map((p) => f(p[1]))), Math.max(...all.map((p) => f(p[1])))];
      if (x0 === x1) { x0 -= 1; x1 += 1; }
      if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
      const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
      const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
      const Y = (y) => T + (1 - (f(y) - y0) / (y1 - y0)) * (H - T - B);
      for (let i = 0; i <= 4; i++) {
        const yv = y0 + ((y1 - y0) * i) / 4, yy = T + (1 - i / 4) * (H - T - B);
        root.appendChild(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
        root.appendChild(svg("text", { x: L - 4, y: yy + 4, "text-anchor": "end" }, fmt(s.log ? 10 ** yv : yv)));
        const xv = x0 + ((x1 - x0) * i) / 4, xx = X(xv);
        root.appendChild(svg("text", { x: xx, y: H - B + 14, "text-anchor": "middle" }, fmt(xv)));
      }
      root.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
      root.appendChild(svg("text", { x: (L + W - R) / 2, y: H - B + 28, "text-anchor": "middle" }, s.xlabel || "epoch"));
      for (const m of s.markers || []) {
        if (!isFinite(m.x) || m.x < x0 || m.x > x1) continue;
        const g = svg("g", { class: "marker" });
        g.appendChild(svg("title", {}, m.label));
        g.appendChild(svg("line", { x1: X(m.x), x2: X(m.x), y1: T, y2: H - B, stroke: m.color,
          "stroke-width": m.error ? 2 : 1, "stroke-dasharray": m.error ? "" : "3,3" }));
        g.appendChild(svg("circle", { cx: X(m.x), cy: T + 4, r: 4, fill: m.color }));
        root.appendChild(g);
      }
      let lx = L;
      s.series.forEach((ser, i) => {
        const color = ser.color || PALETTE[i % PALETTE.length];
        const pts = ser.points.filter(ok);
        points += pts.length;
        if (pts.length) {
          const d = pts.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
          root.appendChild(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.5 }));
          if (pts.length <= 400) {
            for (const p of pts) {
              const c = svg("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.2, fill: color });
              c.appendChild(svg("title", {}, `${ser.name}: ${fmt(p[1])} at ${s.xlabel || "epoch"} ${fmt(p[0])}`));
              root.appendChild(c);
            }
          }
        }
        if (lx < W - 60) {
          root.appendChild(svg("rect", { x: lx, y: H - 18, width: 10, height: 10, fill: color }));
          const t = svg("text", { x: lx + 14, y: H - 9 }, ser.name);
          root.appendChild(t);
          lx += 22 + 7 * Math.min(String(ser.name).length, 24);
        }
      });
      root.dataset.points = String(points);
    },
  };
  self.draw();
  return self;
}

// Whether values span more than a decade (an LR schedule): drawn on a log scale.
function spansDecades(values) {
  const v = values.filter((x) => isFinite(x) && x > 0);
  return v.length > 1 && Math.max(...v) / Math.min(...v) >= 10;
}
