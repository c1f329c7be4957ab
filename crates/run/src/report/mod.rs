//! `report.html`: loss, accuracy, learning rate and batch size per epoch as inline SVG
//! charts, with policy events marked. Rewritten atomically after every epoch, so it
//! can be opened (and reloaded) while a long run goes on.

use std::fmt::Write as _;
use std::path::Path;

use rudder_core::metric::Metric;
use rudder_core::text::fmt_metric;
use serde_json::Value;

mod compare;
pub mod markers;
mod plot;
pub mod story;
pub mod tables;

pub use compare::{LoadRunError, RunView, compare, compare_with, load_run};
pub use markers::Marker;
pub use plot::{PALETTE, Plot, Series, VLine, esc, fmt_num};
pub use story::Steps;

/// The `(epoch + 1, history[key])` points of a `metrics.jsonl` history; NaN where the
/// key is missing or `null`.
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

/// The reports' shared CSS.
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
line.grid{stroke:#eceef2}
.frame{fill:none;stroke:#c7ccd6}
.tick,.axis{font-size:11px;fill:#5b6478}
.marker{stroke:#d9480f;stroke-dasharray:4 3;stroke-width:1.5}
.tag{font-size:11px;font-weight:600}
.events,.runs{margin:0 0 12px;align-items:center}
.events span{display:inline-flex;align-items:center;gap:4px}
.events svg{width:14px;height:14px;display:inline-block}
.event:hover line{stroke-opacity:1}
.legend{display:flex;gap:16px;font-size:12px;color:#3a4152;margin-top:4px}
.legend{flex-wrap:wrap}
.legend i,i.sw{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.empty{color:#5b6478}
table{border-collapse:collapse;background:#fff;margin-top:18px;font-size:13px}
td,th{border:1px solid #dde1e8;padding:4px 10px;text-align:right}
th{background:#eef0f4}
table.story{margin:0 0 16px}
table.story td,table.story th{text-align:left}
#events td.text{text-align:left;white-space:pre-wrap}
#filter{margin-top:4px;padding:4px 8px;font:inherit;width:280px}
h2{font-size:16px;margin:24px 0 4px}
";

/// The score a run's lines carry: `(val_rmse, "rmse")` for a regression (its
/// lines have `val_rmse`), else `(val_acc, "acc")`.
pub fn score_key(history: &[Value]) -> (Metric, &'static str) {
    if history.iter().any(|r| r.get("val_rmse").is_some()) {
        (Metric::ValRmse, "rmse")
    } else {
        (Metric::ValAcc, "acc")
    }
}

/// What one run's page is drawn from besides its epochs and events: its
/// `config.json` (`Null` when unknown) and its `steps.jsonl` lines.
#[derive(Debug, Default, Clone)]
pub struct RunFiles {
    /// `config.json`.
    pub config: Value,
    /// `steps.jsonl`, as read so far.
    pub steps: Steps,
}

impl RunFiles {
    /// The files of the run in `dir`: its config, and the steps logged so far.
    pub fn read(dir: &Path) -> RunFiles {
        let config = std::fs::read_to_string(dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        let mut steps = Steps::default();
        steps.read_more(&dir.join("steps.jsonl"));
        RunFiles { config, steps }
    }
}

/// An SVG line chart of `series` over epochs, with the policy events `groups`; a
/// log `y` axis with `y_log`, its own legend with `legend` (a page of several runs
/// has one legend for all).
fn chart(
    (title, y_label): (&str, &str),
    y_log: bool,
    legend: bool,
    series: Vec<Series>,
    groups: &[markers::Group],
) -> String {
    Plot {
        title,
        x_label: "epoch",
        x_log: false,
        y_log,
        x_whole: true,
        series,
        vlines: Vec::new(),
        events: groups,
        y_label,
        y_range: None,
        legend_inside: false,
        legend,
    }
    .render()
}

/// The page for one run's `history` (metrics.jsonl objects) and `markers`.
pub fn render(title: &str, subtitle: &str, history: &[Value], markers: &[Marker]) -> String {
    render_run(title, subtitle, &RunFiles::default(), history, markers)
}

/// The page for one run: the header of what ran (from `files.config`), the summary,
/// the charts (per-step curves from `files.steps` under the epoch curves), the
/// events' table and the epochs' table.
pub fn render_run(
    title: &str,
    subtitle: &str,
    files: &RunFiles,
    history: &[Value],
    markers: &[Marker],
) -> String {
    // A regression's lines carry val_rmse, val_mae and val_r2 instead of accuracies.
    let (score, label) = score_key(history);
    let regression = score == Metric::ValRmse;
    let mut html = String::with_capacity(32 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rudder: {t}</title><style>{STYLE}</style></head><body><header><h1>rudder run: {t}</h1><p>{st}</p></header><main><div class=\"summary\">",
        t = esc(title),
        st = esc(subtitle)
    );
    html.push_str(&stats(history, score, label));
    html.push_str("</div>");
    let lrs: Vec<f64> = if files.steps.is_empty() {
        history.iter().filter_map(|r| r["lr"].as_f64()).collect()
    } else {
        files.steps.lrs().to_vec()
    };
    html.push_str(&story::header(&files.config, &lrs, markers));
    let groups = markers::group(markers);
    html.push_str(&markers::legend(&groups));
    html.push_str("<div class=\"grid\">");
    html.push_str(&charts(history, regression, &groups, &files.steps));
    html.push_str("</div>");
    html.push_str(&story::events_table(markers));
    html.push_str(&table(history, regression));
    html.push_str("</table></main></body></html>\n");
    html
}

/// The summary boxes: epochs, the last and best score, validation loss, LR, speed.
fn stats(history: &[Value], score: Metric, label: &str) -> String {
    let last = history.last();
    let get = |k: &str| last.and_then(|r| r.get(k)).and_then(Value::as_f64);
    let epochs = last
        .and_then(|r| r.get("epochs"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let stats = [
        (
            "epochs".to_string(),
            format!("{} / {epochs}", history.len()),
        ),
        (
            format!("val {label}"),
            get(score.name()).map_or("-".into(), fmt_metric),
        ),
        (
            format!("best val {label}"),
            score
                .best_epoch(history)
                .map_or("-".into(), |(_, v)| fmt_metric(v)),
        ),
        (
            "val loss".to_string(),
            get("val_loss").map_or("-".into(), fmt_metric),
        ),
        ("lr".to_string(), get("lr").map_or("-".into(), fmt_num)),
        (
            "samples/s".to_string(),
            get("samples_per_s").map_or("-".into(), |v| format!("{v:.0}")),
        ),
    ];
    let mut html = String::new();
    for (k, v) in stats {
        let _ = write!(html, "<div class=\"stat\"><span>{k}</span><b>{v}</b></div>");
    }
    html
}

/// Whether `key` has one value in every line of `history` (its chart would be a
/// flat line: the header says it instead).
fn constant(history: &[Value], key: &str) -> bool {
    let mut values = history.iter().map(|r| r.get(key).and_then(Value::as_f64));
    let first = values.next().flatten();
    values.all(|v| v == first)
}

/// The charts: loss (per step too, when logged), accuracy (or a regression's
/// errors), LR (per step when logged; a log axis when it spans more than a decade)
/// and batch size (the effective one too under accumulation); a quantity that never
/// changed gets no chart.
fn charts(history: &[Value], regression: bool, groups: &[markers::Group], steps: &Steps) -> String {
    let two = |a: &str, b: &str, ka: &str, kb: &str| {
        vec![
            Series::new(a, "#3b5bdb", column(history, ka)),
            Series::new(b, "#e8590c", column(history, kb)),
        ]
    };
    let scores = if regression {
        chart(
            ("Validation error (the targets' units)", "error"),
            false,
            true,
            two("RMSE", "MAE", "val_rmse", "val_mae"),
            groups,
        )
    } else {
        chart(
            ("Accuracy", "accuracy"),
            false,
            true,
            two("train", "validation", "train_acc", "val_acc"),
            groups,
        )
    };
    let mut losses = two("train", "validation", "train_loss", "val_loss");
    if !steps.is_empty() {
        losses.insert(
            0,
            Series {
                faint: true,
                width: 1.0,
                ..Series::new("train, per step", "#3b5bdb", steps.loss_points())
            },
        );
    }
    let mut out = chart(("Loss", "loss"), false, true, losses, groups);
    out.push_str(&scores);
    out.push_str(&lr_chart(history, groups, steps));
    out.push_str(&batch_chart(history, groups));
    out
}

/// The LR chart (per step when logged; a log axis when it spans more than a
/// decade), or nothing when the LR never changed.
fn lr_chart(history: &[Value], groups: &[markers::Group], steps: &Steps) -> String {
    let mut out = String::new();
    let lr_constant = constant(history, "lr")
        && story::lr_used(steps.lrs()).is_none_or(|t| t.ends_with("throughout"));
    if !lr_constant {
        let (points, per) = if steps.is_empty() {
            (column(history, "lr"), "at each epoch's last step")
        } else {
            (steps.lr_points(), "per step")
        };
        let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
        let log = story::spans_decades(&ys);
        let title = format!(
            "Learning rate ({per}{})",
            if log { ", log scale" } else { "" }
        );
        out.push_str(&chart(
            (&title, "learning rate"),
            log,
            true,
            one_of("lr", points),
            groups,
        ));
    }
    out
}

/// The batch-size chart (the effective batch too under accumulation), or nothing
/// when neither changed nor accumulates.
fn batch_chart(history: &[Value], groups: &[markers::Group]) -> String {
    let one = |name: &str, key: &str| vec![Series::new(name, "#2b8a3e", column(history, key))];
    let mut out = String::new();
    let accumulated = !constant(history, "accumulation")
        || history
            .first()
            .and_then(|r| r["accumulation"].as_u64())
            .is_some_and(|a| a > 1);
    if !constant(history, "batch_size") || accumulated {
        let mut series = one("batch_size", "batch_size");
        if accumulated {
            let effective = history
                .iter()
                .filter_map(|r| {
                    let e = r["epoch"].as_f64()? + 1.0;
                    Some((e, r["batch_size"].as_f64()? * r["accumulation"].as_f64()?))
                })
                .collect();
            series.push(Series::new(
                "effective (x accumulation)",
                "#c2255c",
                effective,
            ));
        }
        out.push_str(&chart(
            ("Batch size", "batch size"),
            false,
            true,
            series,
            groups,
        ));
    }
    out
}

/// One green series of `points`.
fn one_of(name: &str, points: Vec<(f64, f64)>) -> Vec<Series> {
    vec![Series::new(name, "#2b8a3e", points)]
}

/// The table of every epoch, after the charts.
fn table(history: &[Value], regression: bool) -> String {
    let keys: &[&str] = if regression {
        &["train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"]
    } else {
        &["train_loss", "train_acc", "val_loss", "val_acc"]
    };
    let head: String = keys
        .iter()
        .map(|k| format!("<th>{}</th>", k.replace('_', " ")))
        .collect();
    let mut html = format!(
        "<h2>Epochs</h2><table><tr><th>epoch</th><th>step</th><th>lr</th><th>batch</th>{head}<th>time s</th></tr>"
    );
    for r in history {
        let f = |k: &str, d: usize| {
            r.get(k)
                .and_then(Value::as_f64)
                .map_or("null".into(), |v| format!("{v:.d$}"))
        };
        let middle: String = keys
            .iter()
            .map(|k| {
                let v = r.get(*k).and_then(Value::as_f64);
                format!("<td>{}</td>", v.map_or("null".into(), fmt_metric))
            })
            .collect();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{middle}<td>{}</td></tr>",
            r.get("epoch")
                .and_then(Value::as_u64)
                .map_or("null".into(), |e| (e + 1).to_string()),
            f("step", 0),
            r.get("lr")
                .and_then(Value::as_f64)
                .map_or("null".into(), fmt_num),
            f("batch_size", 0),
            f("epoch_time_s", 1)
        );
    }
    html
}

/// The policies of a run as its header shows them, from `config.json`'s
/// `provenance`: `policies goyal/schedule (plugin goyal 1.1.0 0cda9381c224),
/// lr/cosine`; empty when there is none.
pub fn policies_line(provenance: &[Value]) -> String {
    let names: Vec<String> = provenance
        .iter()
        .filter_map(|p| {
            let name = p.get("policy")?.as_str()?;
            Some(match p.get("plugin") {
                Some(o) => {
                    let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("?");
                    let commit = o
                        .get("commit")
                        .and_then(Value::as_str)
                        .map_or_else(|| "path".to_string(), |c| c[..c.len().min(12)].to_string());
                    format!("{name} (plugin {} {} {commit})", s("name"), s("version"))
                }
                None => name.to_string(),
            })
        })
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("policies {}", names.join(", "))
    }
}

/// Writes `dir/report.html` atomically (`runlog::write_atomic`). `subtitle`
/// describes the setup (model, data, optimizer).
pub fn write(
    dir: &Path,
    subtitle: &str,
    files: &RunFiles,
    history: &[Value],
    markers: &[Marker],
) -> std::io::Result<()> {
    let title = dir.display().to_string();
    write_page(
        &dir.join("report.html"),
        &render_run(&title, subtitle, files, history, markers),
    )
}

/// The run's own `report.html` as a sink: rewritten at each epoch's end, with a
/// marker for each event worth one. It starts with the markers of the events the
/// run's `events.jsonl` holds already (a resumed run's, cut back to its
/// checkpoint), so a resume draws what the uninterrupted run would.
pub struct Live {
    dir: std::path::PathBuf,
    subtitle: String,
    markers: Vec<Marker>,
    files: RunFiles,
}

impl Live {
    /// The report of the run in `dir`; `subtitle` describes the setup. Its
    /// `config.json` is read now (the run wrote it before its first epoch), its
    /// `steps.jsonl` as it grows.
    pub fn open(dir: &Path, subtitle: String) -> Live {
        let markers = markers::read(&dir.join("events.jsonl"), |_| {});
        Live {
            dir: dir.to_path_buf(),
            subtitle,
            markers,
            files: RunFiles::read(dir),
        }
    }
}

impl crate::sink::Sink for Live {
    fn event(&mut self, _event: &crate::sink::Event, line: &Value) -> std::io::Result<()> {
        self.markers.extend(markers::from_event(line, None));
        Ok(())
    }

    fn epoch(
        &mut self,
        _record: &crate::log::EpochRecord,
        history: &[Value],
    ) -> std::io::Result<()> {
        self.files.steps.read_more(&self.dir.join("steps.jsonl"));
        write(
            &self.dir,
            &self.subtitle,
            &self.files,
            history,
            &self.markers,
        )
    }

    fn dropped(&self, e: &std::io::Error) -> Option<String> {
        Some(format!(
            "{}: {e}; report.html is no longer updated during this run (`rudder report` writes it again)",
            self.dir.join("report.html").display()
        ))
    }

    fn name(&self) -> &'static str {
        "report"
    }
}

/// Writes `html` to `path` atomically.
pub fn write_page(path: &Path, html: &str) -> std::io::Result<()> {
    crate::files::write_atomic(path, html.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_epoch_and_marker() {
        let h: Vec<Value> = (0..3)
            .map(|e| serde_json::json!({"epoch": e, "epochs": 3, "lr": 0.1 / (e as f64 + 1.0), "batch_size": 64, "train_loss": 1.0 / (e as f64 + 1.0), "val_loss": null, "train_acc": 0.5, "val_acc": 0.6}))
            .collect();
        let page = render(
            "t",
            "mlp",
            &h,
            &[Marker {
                epoch: 1,
                kind: "stop".into(),
                label: "stop: <x>".into(),
            }],
        );
        // Loss, accuracy and LR charts (no batch-size chart: it never changed), and
        // the legend's one symbol.
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(!page.contains("Batch size"));
        assert!(page.contains("epoch 2: stop: &lt;x&gt;"));
        assert_eq!(page.matches("<tr>").count(), 5, "3 epochs, 2 heads");
        assert!(page.contains("<tr class=\"ev\"><td>2</td><td>stop</td>"));
        // The table counts epochs from 1.
        assert!(page.contains("<tr><td>1</td>"));
    }
}
