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

/// One line of a chart: its name, colour and `(x, y)` points.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

const W: f64 = 520.0;
const H: f64 = 250.0;
const ML: f64 = 62.0;
const MR: f64 = 16.0;
const MT: f64 = 14.0;
const MB: f64 = 38.0;

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

fn fmt_num(v: f64) -> String {
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG line chart of `series` over epochs, with `markers` as dashed lines.
fn chart(title: &str, series: &[Series], markers: &[Marker]) -> String {
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure class="card"><figcaption>{}</figcaption>"#,
        esc(title)
    );
    let finite: Vec<(f64, f64)> = pts().copied().filter(|p| p.1.is_finite()).collect();
    if finite.is_empty() {
        out.push_str(r#"<p class="empty">no finished epoch yet</p></figure>"#);
        return out;
    }
    let (x0, x1) = (0.0, finite.iter().map(|p| p.0).fold(1.0, f64::max));
    let mut y0 = finite.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut y1 = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
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
        esc(title)
    );
    for t in ticks(y0, y1, 5) {
        let y = sy(t);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - MR,
            ML - 6.0,
            y + 4.0,
            fmt_num(t)
        );
    }
    for t in ticks(x0, x1, 8).into_iter().filter(|t| t.fract() == 0.0) {
        let x = sx(t);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{}"/><text class="tick" x="{x:.1}" y="{}" text-anchor="middle">{t}</text>"#,
            H - MB,
            H - MB + 16.0
        );
    }
    let _ = write!(
        out,
        r#"<rect class="frame" x="{ML}" y="{MT}" width="{}" height="{}"/><text class="axis" x="{}" y="{}" text-anchor="middle">epochs completed</text>"#,
        W - ML - MR,
        H - MT - MB,
        (ML + W - MR) / 2.0,
        H - 4.0
    );
    for m in markers {
        let x = sx(m.epoch as f64 + 1.0);
        let _ = write!(
            out,
            r#"<line class="marker" x1="{x:.1}" x2="{x:.1}" y1="{MT}" y2="{}"><title>after epoch {}: {}</title></line>"#,
            H - MB,
            m.epoch + 1,
            esc(&m.label)
        );
    }
    for s in series {
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            s.color,
            path.join(" ")
        );
        for &(x, y) in s.points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{} after epoch {}: {}</title></circle>"#,
                sx(x),
                sy(y),
                s.color,
                esc(s.name),
                x,
                fmt_num(y)
            );
        }
    }
    out.push_str("</svg>");
    if series.len() > 1 {
        out.push_str(r#"<div class="legend">"#);
        for s in series {
            let _ = write!(
                out,
                r#"<span><i style="background:{}"></i>{}</span>"#,
                s.color,
                esc(s.name)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</figure>");
    out
}

fn column(history: &[Value], key: &str) -> Vec<(f64, f64)> {
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

const STYLE: &str = "
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
.legend i{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
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
    let two = |a: &'static str, b: &'static str, ka: &str, kb: &str| {
        [
            Series {
                name: a,
                color: "#3b5bdb",
                points: column(history, ka),
            },
            Series {
                name: b,
                color: "#e8590c",
                points: column(history, kb),
            },
        ]
    };
    html.push_str(&chart(
        "Loss",
        &two("train", "validation", "train_loss", "val_loss"),
        markers,
    ));
    html.push_str(&chart(
        "Accuracy",
        &two("train", "validation", "train_acc", "val_acc"),
        markers,
    ));
    let one = |name: &'static str, key: &str| {
        [Series {
            name,
            color: "#2b8a3e",
            points: column(history, key),
        }]
    };
    html.push_str(&chart(
        "Learning rate (at each epoch's last step)",
        &one("lr", "lr"),
        markers,
    ));
    html.push_str(&chart(
        "Batch size",
        &one("batch_size", "batch_size"),
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
