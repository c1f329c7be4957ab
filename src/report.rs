//! `report.html`: loss, accuracy, learning rate and batch size per epoch as inline SVG
//! charts, with policy events marked. Rewritten atomically after every epoch, so it
//! can be opened (and reloaded) while a long run goes on.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

/// A policy event to mark on the charts, at the end of `epoch` (0-based).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub epoch: usize,
    pub label: String,
}

/// One line of a chart: its name, colour, style and `(x, y)` points.
pub struct Series {
    pub name: String,
    pub color: String,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: &str, color: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            color: color.into(),
            dashed: false,
            points,
        }
    }
}

/// A vertical line with a hover text: a policy event, or a suggested LR.
pub struct VLine {
    pub x: f64,
    pub label: String,
    pub color: String,
}

/// A line chart: axes (linear or log), series, vertical markers.
pub struct Plot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub x_log: bool,
    pub y_log: bool,
    /// Tick only whole numbers on x (epochs).
    pub x_whole: bool,
    pub series: Vec<Series>,
    pub vlines: Vec<VLine>,
}

const W: f64 = 520.0;
const H: f64 = 250.0;
const ML: f64 = 62.0;
const MR: f64 = 16.0;
const MT: f64 = 14.0;
const MB: f64 = 38.0;

/// Colours for runs overlaid on one chart, in order.
pub const PALETTE: [&str; 10] = [
    "#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#1098ad", "#f08c00", "#495057",
    "#5c940d", "#a61e4d",
];

/// Round tick positions covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / want as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= want as f64)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).ceil() * step;
    (0..)
        .map(|i| start + i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .collect()
}

/// Ticks on a log axis, as log10 values: whole decades when the range spans two or
/// more, else round linear ticks of the log values.
fn log_ticks(lo: f64, hi: f64, want: usize) -> Vec<f64> {
    if hi - lo >= 2.0 {
        let step = ((hi - lo) / want as f64).ceil().max(1.0);
        let start = (lo / step).ceil() * step;
        (0..)
            .map(|i| start + i as f64 * step)
            .take_while(|v| *v <= hi + 1e-9)
            .collect()
    } else {
        // 1, 2, 5 in each decade the range touches.
        let mut out = Vec::new();
        for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
            for m in [1.0f64, 2.0, 5.0] {
                let t = (m * 10f64.powi(k)).log10();
                if t >= lo - 1e-9 && t <= hi + 1e-9 {
                    out.push(t);
                }
            }
        }
        out
    }
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Plot<'_> {
    /// The chart as an SVG inside a `<figure>`.
    pub fn render(&self) -> String {
        let tx = |x: f64| if self.x_log { x.log10() } else { x };
        let ty = |y: f64| if self.y_log { y.log10() } else { y };
        let usable = |&(x, y): &(f64, f64)| {
            x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
        };
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<figure class="card"><figcaption>{}</figcaption>"#,
            esc(self.title)
        );
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(usable)
            .map(|(x, y)| (tx(x), ty(y)))
            .collect();
        if pts.is_empty() {
            out.push_str(r#"<p class="empty">no finished epoch yet</p></figure>"#);
            return out;
        }
        let xs = || pts.iter().map(|p| p.0);
        let (x0, x1) = if self.x_log {
            let (a, b) = (
                xs().fold(f64::INFINITY, f64::min),
                xs().fold(f64::NEG_INFINITY, f64::max),
            );
            if b - a < 1e-9 {
                (a - 0.5, b + 0.5)
            } else {
                (a, b)
            }
        } else {
            (xs().fold(0f64, f64::min), xs().fold(1f64, f64::max))
        };
        let mut y0 = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut y1 = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if (y1 - y0).abs() < 1e-12 {
            let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
            (y0, y1) = (y0 - pad, y1 + pad);
        } else {
            let pad = (y1 - y0) * 0.06;
            (y0, y1) = (y0 - pad, y1 + pad);
        }
        let sx = |x: f64| ML + (x - x0) / (x1 - x0) * (W - ML - MR);
        let sy = |y: f64| H - MB - (y - y0) / (y1 - y0) * (H - MT - MB);
        let _ = write!(
            out,
            r#"<svg viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
            esc(self.title)
        );
        let yt = if self.y_log {
            log_ticks(y0, y1, 5)
        } else {
            ticks(y0, y1, 5)
        };
        for t in yt {
            let y = sy(t);
            let label = if self.y_log { 10f64.powf(t) } else { t };
            let _ = write!(
                out,
                r#"<line class="grid" x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                W - MR,
                ML - 6.0,
                y + 4.0,
                fmt_num(label)
            );
        }
        let xt = if self.x_log {
            log_ticks(x0, x1, 8)
        } else {
            ticks(x0, x1, 8)
        };
        for t in xt.into_iter().filter(|t| !self.x_whole || t.fract() == 0.0) {
            let x = sx(t);
            let label = if self.x_log { 10f64.powf(t) } else { t };
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - MB,
                H - MB + 16.0,
                fmt_num(label)
            );
        }
        let _ = write!(
            out,
            r#"<rect class="frame" x="{ML}" y="{MT}" width="{}" height="{}"/><text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            W - ML - MR,
            H - MT - MB,
            (ML + W - MR) / 2.0,
            H - 4.0,
            esc(self.x_label)
        );
        for v in &self.vlines {
            if self.x_log && v.x <= 0.0 {
                continue;
            }
            let x = sx(tx(v.x));
            let _ = write!(
                out,
                r#"<line class="marker" style="stroke:{}" x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{}"><title>{}</title></line>"#,
                v.color,
                H - MB,
                esc(&v.label)
            );
        }
        for s in &self.series {
            let shown: Vec<(f64, f64)> = s.points.iter().copied().filter(usable).collect();
            let path: Vec<String> = shown
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(tx(x)), sy(ty(y))))
                .collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2"{} points="{}"/>"#,
                s.color,
                if s.dashed {
                    r#" stroke-dasharray="5 4""#
                } else {
                    ""
                },
                path.join(" ")
            );
            if shown.len() <= 60 {
                for &(x, y) in &shown {
                    let _ = write!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{} at {} {}: {}</title></circle>"#,
                        sx(tx(x)),
                        sy(ty(y)),
                        s.color,
                        esc(&s.name),
                        esc(self.x_label),
                        fmt_num(x),
                        fmt_num(y)
                    );
                }
            }
        }
        out.push_str("</svg>");
        if self.series.len() > 1 {
            out.push_str(r#"<div class="legend">"#);
            for s in &self.series {
                let _ = write!(
                    out,
                    r#"<span><i style="background:{}{}"></i>{}</span>"#,
                    s.color,
                    if s.dashed { ";opacity:.55" } else { "" },
                    esc(&s.name)
                );
            }
            out.push_str("</div>");
        }
        out.push_str("</figure>");
        out
    }
}

/// An SVG line chart of `series` over epochs, with `markers` as dashed lines.
fn chart(title: &str, series: Vec<Series>, markers: &[Marker]) -> String {
    Plot {
        title,
        x_label: "epochs completed",
        x_log: false,
        y_log: false,
        x_whole: true,
        series,
        vlines: markers
            .iter()
            .map(|m| VLine {
                x: m.epoch as f64 + 1.0,
                label: format!("after epoch {}: {}", m.epoch + 1, m.label),
                color: "#d9480f".into(),
            })
            .collect(),
    }
    .render()
}

pub fn column(history: &[Value], key: &str) -> Vec<(f64, f64)> {
    history
        .iter()
        .filter_map(|r| {
            let e = r.get("epoch")?.as_f64()?;
            Some((
                e + 1.0,
                r.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN),
            ))
        })
        .collect()
}

pub const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{padding:18px 28px;background:#1d2330;color:#f6f7f9}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:#aab3c5}
main{padding:20px 28px}
.summary{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.stat{background:#fff;border:1px solid #dde1e8;border-radius:8px;padding:10px 16px;min-width:120px}
.stat b{display:block;font-size:20px;font-weight:600}
.stat span{color:#5b6478;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:8px;margin:0;padding:12px 14px}
figcaption{font-weight:600;margin-bottom:6px}
svg{width:100%;height:auto;display:block}
.grid line,line.grid{stroke:#eceef2}
.frame{fill:none;stroke:#c7ccd6}
.tick,.axis{font-size:11px;fill:#5b6478}
.marker{stroke:#d9480f;stroke-dasharray:4 3;stroke-width:1.5}
.legend{display:flex;gap:16px;font-size:12px;color:#3a4152;margin-top:4px}
.legend{flex-wrap:wrap}
.legend i,i.sw{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.empty{color:#5b6478}
table{border-collapse:collapse;background:#fff;margin-top:18px;font-size:13px}
td,th{border:1px solid #dde1e8;padding:4px 10px;text-align:right}
th{background:#eef0f4}
";

/// The page for one run's `history` (metrics.jsonl objects) and `markers`.
pub fn render(title: &str, subtitle: &str, history: &[Value], markers: &[Marker]) -> String {
    let last = history.last();
    let get = |k: &str| last.and_then(|r| r.get(k)).and_then(Value::as_f64);
    let best_acc = history
        .iter()
        .filter_map(|r| r.get("val_acc")?.as_f64())
        .fold(f64::NAN, f64::max);
    let mut html = String::with_capacity(32 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rudder: {t}</title><style>{STYLE}</style></head><body><header><h1>rudder run: {t}</h1><p>{st}</p></header><main><div class=\"summary\">",
        t = esc(title),
        st = esc(subtitle)
    );
    let epochs = last
        .and_then(|r| r.get("epochs"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let stats = [
        ("epochs", format!("{} / {epochs}", history.len())),
        (
            "val acc",
            get("val_acc").map_or("-".into(), |v| format!("{v:.4}")),
        ),
        (
            "best val acc",
            if best_acc.is_nan() {
                "-".into()
            } else {
                format!("{best_acc:.4}")
            },
        ),
        (
            "val loss",
            get("val_loss").map_or("-".into(), |v| format!("{v:.4}")),
        ),
        ("lr", get("lr").map_or("-".into(), fmt_num)),
        (
            "samples/s",
            get("samples_per_s").map_or("-".into(), |v| format!("{v:.0}")),
        ),
    ];
    for (k, v) in stats {
        let _ = write!(html, "<div class=\"stat\"><span>{k}</span><b>{v}</b></div>");
    }
    html.push_str("</div><div class=\"grid\">");
    let two = |a: &str, b: &str, ka: &str, kb: &str| {
        vec![
            Series::new(a, "#3b5bdb", column(history, ka)),
            Series::new(b, "#e8590c", column(history, kb)),
        ]
    };
    html.push_str(&chart(
        "Loss",
        two("train", "validation", "train_loss", "val_loss"),
        markers,
    ));
    html.push_str(&chart(
        "Accuracy",
        two("train", "validation", "train_acc", "val_acc"),
        markers,
    ));
    let one = |name: &str, key: &str| vec![Series::new(name, "#2b8a3e", column(history, key))];
    html.push_str(&chart(
        "Learning rate (at each epoch's last step)",
        one("lr", "lr"),
        markers,
    ));
    html.push_str(&chart(
        "Batch size",
        one("batch_size", "batch_size"),
        markers,
    ));
    html.push_str("</div><table><tr><th>epoch</th><th>step</th><th>lr</th><th>batch</th><th>train loss</th><th>train acc</th><th>val loss</th><th>val acc</th><th>time s</th></tr>");
    for r in history {
        let f = |k: &str, d: usize| {
            r.get(k)
                .and_then(Value::as_f64)
                .map_or("null".into(), |v| format!("{v:.d$}"))
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            f("epoch", 0),
            f("step", 0),
            r.get("lr")
                .and_then(Value::as_f64)
                .map_or("null".into(), fmt_num),
            f("batch_size", 0),
            f("train_loss", 4),
            f("train_acc", 4),
            f("val_loss", 4),
            f("val_acc", 4),
            f("epoch_time_s", 1)
        );
    }
    html.push_str("</table></main></body></html>\n");
    html
}

/// Writes `dir/report.html` atomically (a temporary file renamed over it).
/// `subtitle` describes the setup (model, data, optimizer).
pub fn write(
    dir: &Path,
    subtitle: &str,
    history: &[Value],
    markers: &[Marker],
) -> std::io::Result<()> {
    let title = dir.display().to_string();
    let tmp = dir.join(".report.html.tmp");
    std::fs::write(&tmp, render(&title, subtitle, history, markers))?;
    std::fs::rename(tmp, dir.join("report.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            ticks(0.0, 20.0, 8),
            vec![0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0]
        );
    }

    #[test]
    fn renders_every_epoch_and_marker() {
        let h: Vec<Value> = (0..3)
            .map(|e| serde_json::json!({"epoch": e, "epochs": 3, "lr": 0.1, "batch_size": 64, "train_loss": 1.0 / (e as f64 + 1.0), "val_loss": null, "train_acc": 0.5, "val_acc": 0.6}))
            .collect();
        let page = render(
            "t",
            "mlp",
            &h,
            &[Marker {
                epoch: 1,
                label: "stop: <x>".into(),
            }],
        );
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("after epoch 2: stop: &lt;x&gt;"));
        assert_eq!(page.matches("<tr>").count(), 4);
    }
}

/// One run as `rudder report` and `rudder sweep` overlay it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub name: String,
    pub subtitle: String,
    pub history: Vec<Value>,
    pub events: Vec<Value>,
}

/// The events worth a marker: what policies did, and what happened to the run.
const MARKED: [&str; 9] = [
    "decision",
    "invalid_decision",
    "policy_error",
    "reload",
    "reload_failed",
    "rollback",
    "stop",
    "log",
    "resume",
];

fn jsonl(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{}:{}:{}: {e}", path.display(), i + 1, e.column()))
        })
        .collect()
}

/// Reads a run directory: its metrics (required), events and configuration.
pub fn load_run(dir: &Path) -> Result<RunView, String> {
    let metrics = dir.join("metrics.jsonl");
    if !metrics.is_file() {
        return Err(format!(
            "{}: no metrics.jsonl there (not a run directory)",
            dir.display()
        ));
    }
    let history = jsonl(&metrics)?;
    let events = if dir.join("events.jsonl").is_file() {
        jsonl(&dir.join("events.jsonl"))?
    } else {
        Vec::new()
    };
    let cfg: Value = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let subtitle = if cfg.is_null() {
        String::new()
    } else {
        format!(
            "{} on {}, {} lr {} batch {}, seed {}",
            cfg["model"].as_str().unwrap_or("?"),
            cfg["data"].as_str().unwrap_or("?"),
            cfg["optimizer"].as_str().unwrap_or("?"),
            cfg["lr"],
            cfg["batch_size"],
            cfg["seed"]
        )
    };
    Ok(RunView {
        name: dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        subtitle,
        history,
        events,
    })
}

/// The hover text of an event marker.
fn event_label(run: &str, e: &Value) -> String {
    let kind = e["kind"].as_str().unwrap_or("?");
    let mut text = format!("{run}: {kind}");
    if let Some(p) = e["policy"].as_str() {
        text.push_str(&format!(" ({p})"));
    }
    for key in ["message", "reason"] {
        if let Some(m) = e[key].as_str() {
            text.push_str(&format!(": {m}"));
        }
    }
    if let Some(d) = e.get("decision") {
        text.push_str(&format!(": {d}"));
    }
    text
}

/// One page overlaying `runs`: loss (log scale) and accuracy, validation solid and
/// training dashed; LR (log scale) and batch size per epoch; policy events as markers
/// in each run's colour, their message on hover; and a table of the runs.
pub fn compare(title: &str, runs: &[RunView]) -> String {
    let color = |i: usize| PALETTE[i % PALETTE.len()];
    let vlines = |runs: &[RunView]| -> Vec<VLine> {
        runs.iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.events
                    .iter()
                    .filter(|e| MARKED.contains(&e["kind"].as_str().unwrap_or("")))
                    .map(move |e| VLine {
                        // Events during epoch E are drawn at its end.
                        x: e["epoch"].as_f64().unwrap_or(0.0) + 1.0,
                        label: event_label(&r.name, e),
                        color: color(i).into(),
                    })
            })
            .collect()
    };
    let pair = |val: &str, train: &str| -> Vec<Series> {
        runs.iter()
            .enumerate()
            .flat_map(|(i, r)| {
                [
                    Series::new(
                        &format!("{} val", r.name),
                        color(i),
                        column(&r.history, val),
                    ),
                    Series {
                        dashed: true,
                        ..Series::new(
                            &format!("{} train", r.name),
                            color(i),
                            column(&r.history, train),
                        )
                    },
                ]
            })
            .collect()
    };
    let each = |key: &str| -> Vec<Series> {
        runs.iter()
            .enumerate()
            .map(|(i, r)| Series::new(&r.name, color(i), column(&r.history, key)))
            .collect()
    };
    let plot = |title: &str, y_log: bool, series: Vec<Series>| {
        Plot {
            title,
            x_label: "epochs completed",
            x_log: false,
            y_log,
            x_whole: true,
            series,
            vlines: vlines(runs),
        }
        .render()
    };
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rudder: {t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1><p>{n} run(s); validation solid, training dashed; hover a point or a marker for its value or event</p></header><main><div class=\"grid\">",
        t = esc(title),
        n = runs.len()
    );
    html.push_str(&plot(
        "Loss (log scale)",
        true,
        pair("val_loss", "train_loss"),
    ));
    html.push_str(&plot("Accuracy", false, pair("val_acc", "train_acc")));
    html.push_str(&plot(
        "Learning rate at each epoch's last step (log scale)",
        true,
        each("lr"),
    ));
    html.push_str(&plot("Batch size", false, each("batch_size")));
    html.push_str("</div><table><tr><th>run</th><th>setup</th><th>epochs</th><th>best val loss (epoch)</th><th>best val acc</th><th>final val acc</th><th>final lr</th><th>ended</th></tr>");
    for (i, r) in runs.iter().enumerate() {
        let vals = |k: &str| -> Vec<(usize, f64)> {
            r.history
                .iter()
                .enumerate()
                .filter_map(|(e, h)| Some((e, h.get(k)?.as_f64()?)))
                .collect()
        };
        let best_loss = vals("val_loss")
            .into_iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map_or("-".into(), |(e, v)| format!("{v:.4} ({e})"));
        let best_acc = vals("val_acc")
            .into_iter()
            .map(|p| p.1)
            .fold(f64::NAN, f64::max);
        let last = r.history.last();
        let f = |k: &str| last.and_then(|h| h.get(k)).and_then(Value::as_f64);
        let ended = r
            .events
            .iter()
            .rev()
            .find(|e| e["kind"] == "stop")
            .and_then(|e| e["reason"].as_str())
            .unwrap_or("planned end");
        let _ = write!(
            html,
            "<tr><td style=\"text-align:left\"><i class=\"sw\" style=\"background:{}\"></i>{}</td><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            color(i),
            esc(&r.name),
            esc(&r.subtitle),
            r.history.len(),
            best_loss,
            if best_acc.is_nan() {
                "-".into()
            } else {
                format!("{best_acc:.4}")
            },
            f("val_acc").map_or("-".into(), |v| format!("{v:.4}")),
            f("lr").map_or("-".into(), fmt_num),
            esc(ended)
        );
    }
    html.push_str("</table></main></body></html>\n");
    html
}

/// Writes `html` to `path` atomically.
pub fn write_page(path: &Path, html: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, html)?;
    std::fs::rename(tmp, path)
}
