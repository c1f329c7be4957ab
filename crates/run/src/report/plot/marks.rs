//! The marks of a chart: its curves, vertical lines and their tags, the lanes of
//! event symbols above it, and its legend (inside the frame or below it).

use std::fmt::Write as _;

use super::{Frame, H, MB, ML, MR, MT, Plot, VLine, W, esc, fmt_num};

impl Plot<'_> {
    /// Policy events: a symbol per kind in its lane, a line down the chart.
    pub(super) fn event_marks(&self, out: &mut String, f: &Frame) {
        for g in self.events {
            let Some(lane) = f.lanes.iter().position(|k| *k == g.kind) else {
                continue;
            };
            let s = crate::report::markers::style(&g.kind);
            let x = f.sx(g.epoch as f64 + 1.0);
            if !(ML - 1.0..=W - MR + 1.0).contains(&x) {
                continue;
            }
            let y = MT + 4.0 + 9.0 * lane as f64;
            let error = crate::report::markers::is_error(&g.kind);
            let _ = write!(
                out,
                r#"<g class="event"><title>{}</title><line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="{}" stroke-width="{}" stroke-opacity="{}"{}/>{}{}</g>"#,
                esc(&g.text),
                f.top,
                H - MB,
                s.color,
                if error { 2.0 } else { 1.0 },
                if error { 0.85 } else { 0.3 },
                if error {
                    ""
                } else {
                    r#" stroke-dasharray="3 3""#
                },
                crate::report::markers::symbol(s.shape, x, y, 3.6, s.color),
                if g.count > 1 {
                    format!(
                        r#"<text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
                        x + 5.0,
                        y + 3.5,
                        g.count
                    )
                } else {
                    String::new()
                }
            );
        }
    }

    /// The vertical lines (suggested LRs), with their hover text.
    pub(super) fn lines(&self, out: &mut String, f: &Frame) {
        for v in &self.vlines {
            if self.x_log && v.x <= 0.0 {
                continue;
            }
            let x = f.sx(self.tx(v.x));
            let _ = write!(
                out,
                r#"<line class="marker" style="stroke:{}" x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}"><title>{}</title></line>"#,
                v.color,
                f.top,
                H - MB,
                esc(&v.label)
            );
        }
    }

    /// The series, clipped to the frame, with a dot per point (hover: its value)
    /// where there are few.
    pub(super) fn curves(&self, out: &mut String, f: &Frame) {
        for s in &self.series {
            let shown: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| self.usable(p))
                .collect();
            let at = |&(x, y): &(f64, f64)| (f.sx(self.tx(x)), f.sy(self.ty(y)));
            let path: Vec<String> = shown
                .iter()
                .map(|p| {
                    let (x, y) = at(p);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = write!(
                out,
                r#"<polyline clip-path="url(#{})" fill="none" stroke="{}" stroke-width="{}"{}{} points="{}"/>"#,
                f.clip,
                s.color,
                s.width,
                if s.faint {
                    r#" stroke-opacity="0.35""#
                } else {
                    ""
                },
                if s.dashed {
                    r#" stroke-dasharray="5 4""#
                } else {
                    ""
                },
                path.join(" ")
            );
            if shown.len() > 60 || s.faint {
                continue;
            }
            for p in shown.iter().filter(|p| (f.top..=H - MB).contains(&at(p).1)) {
                let (cx, cy) = at(p);
                let _ = write!(
                    out,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="3" fill="{}"><title>{} at {} {}: {}</title></circle>"#,
                    s.color,
                    esc(&s.name),
                    esc(self.x_label),
                    fmt_num(p.0),
                    fmt_num(p.1)
                );
            }
        }
    }

    /// The vertical lines' tags, in rows: a tag too close to the one before it in a
    /// row goes a row down.
    pub(super) fn tags(&self, out: &mut String, f: &Frame) {
        let mut rows: Vec<f64> = Vec::new();
        let mut order: Vec<&VLine> = self
            .vlines
            .iter()
            .filter(|v| v.x > 0.0 || !self.x_log)
            .collect();
        order.sort_by(|a, b| a.x.total_cmp(&b.x));
        for v in order.iter().filter(|v| v.tag.is_some()) {
            let x = f.sx(self.tx(v.x));
            let tag = v.tag.as_deref().unwrap_or("");
            let width = 6.5 * tag.chars().count() as f64;
            let row = rows
                .iter()
                .position(|&end| end < x - 4.0)
                .unwrap_or(rows.len());
            if row == rows.len() {
                rows.push(0.0);
            }
            rows[row] = x + width;
            let _ = write!(
                out,
                r##"<text class="tag" x="{:.1}" y="{:.1}" fill="{}" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>"##,
                x + 3.0,
                f.top + 12.0 + 13.0 * row as f64,
                v.color,
                esc(tag)
            );
        }
    }

    /// The legend inside the chart, top left on a white ground (the curves there are
    /// usually flat).
    pub(super) fn legend_in_chart(&self, out: &mut String, f: &Frame) {
        let (x, y0) = (ML + 8.0, f.top + 8.0);
        let wide = self
            .series
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#fff" fill-opacity="0.85"/>"##,
            x - 4.0,
            y0 - 4.0,
            34.0 + 6.0 * wide as f64,
            8.0 + 14.0 * self.series.len() as f64
        );
        for (i, s) in self.series.iter().enumerate() {
            let y = y0 + 6.0 + 14.0 * i as f64;
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="{}"{}/><text class="tick" x="{:.1}" y="{:.1}">{}</text>"#,
                x + 22.0,
                s.color,
                s.width,
                if s.faint {
                    r#" stroke-opacity="0.35""#
                } else {
                    ""
                },
                x + 26.0,
                y + 4.0,
                esc(&s.name)
            );
        }
    }

    /// The legend under the chart, in HTML.
    pub(super) fn legend_below(&self, out: &mut String) {
        out.push_str(r#"<div class="legend">"#);
        for s in &self.series {
            let _ = write!(
                out,
                r#"<span><i style="background:{}{}"></i>{}</span>"#,
                s.color,
                if s.dashed || s.faint {
                    ";opacity:.45"
                } else {
                    ""
                },
                esc(&s.name)
            );
        }
        out.push_str("</div>");
    }
}
