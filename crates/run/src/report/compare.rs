//! One page overlaying several runs (`rudder report`, `rudder sweep`): their curves,
//! their policy events, and a table.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use rudder_core::metric::Metric;
use rudder_core::text::fmt_metric;

use crate::files::{JsonlError, read_jsonl};

use super::{PALETTE, STYLE, Series, column, esc, fmt_num};

/// One run as `rudder report` and `rudder sweep` overlay it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The run's name (its folder's name).
    pub name: String,
    /// The model, data, optimizer, LR, batch size and seed, on one line.
    pub subtitle: String,
    /// The `metrics.jsonl` objects.
    pub history: Vec<Value>,
    /// The markers of its `events.jsonl` (read a line at a time: no event is kept).
    pub markers: Vec<super::Marker>,
    /// The reason of its last `stop` event, if any.
    pub stop_reason: Option<String>,
}

/// A folder `rudder report` cannot draw.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadRunError {
    /// No `metrics.jsonl`: not a run folder (`hint` says what it is, if anything).
    #[error("{}: no metrics.jsonl there (not a run directory){hint}", dir.display())]
    NotARun {
        /// The folder.
        dir: std::path::PathBuf,
        /// What it is instead (a sweep's folder), or nothing.
        hint: String,
    },
    /// Its metrics or events cannot be read.
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
}

/// `; policies ...` from a run's `config.json`, or nothing.
fn policies_suffix(cfg: &Value) -> String {
    let line = cfg["provenance"]
        .as_array()
        .map(|p| super::policies_line(p))
        .unwrap_or_default();
    if line.is_empty() {
        line
    } else {
        format!("; {line}")
    }
}

/// Reads a run directory: its metrics (required), events and configuration.
pub fn load_run(dir: &Path) -> Result<RunView, LoadRunError> {
    let metrics = dir.join("metrics.jsonl");
    if !metrics.is_file() {
        // A sweep's folder holds its own report, and its trials are runs.
        let hint = if dir.join("sweep.json").is_file() {
            let trials: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().join("metrics.jsonl").is_file())
                .map(|e| dir.join(e.file_name()).display().to_string())
                .collect();
            format!(
                "; it is a sweep: its report is {}, and its trials ({}) are runs",
                dir.join("report.html").display(),
                rudder_core::text::clip(&trials.join(" "))
            )
        } else {
            String::new()
        };
        return Err(LoadRunError::NotARun {
            dir: dir.to_path_buf(),
            hint,
        });
    }
    let history = read_jsonl(&metrics)?;
    let mut stop_reason = None;
    let markers = super::markers::read(&dir.join("events.jsonl"), |e| {
        if e["kind"] == "stop" {
            stop_reason = e["reason"].as_str().map(str::to_string);
        }
    });
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
            cfg["lr"].as_f64().map_or_else(|| "?".to_string(), fmt_num),
            cfg["batch_size"],
            cfg["seed"]
        ) + policies_suffix(&cfg).as_str()
    };
    Ok(RunView {
        name: dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        subtitle,
        history,
        markers,
        stop_reason,
    })
}

/// One page overlaying `runs`: loss (log scale) and accuracy, validation solid and
/// training dashed; LR (log scale) and batch size per epoch; policy events as markers
/// in each run's colour, their message on hover; and a table of the runs.
pub fn compare(title: &str, runs: &[RunView]) -> String {
    compare_with(title, runs, "")
}

/// [`compare`], with `extra` (HTML a caller built, escaped: [`super::tables`]) after
/// the runs' table.
pub fn compare_with(title: &str, runs: &[RunView], extra: &str) -> String {
    // Every run's events, merged by epoch and kind across runs: a page of ten runs
    // shows one symbol per kind and epoch, its hover text naming the runs.
    let all: Vec<super::Marker> = runs
        .iter()
        .flat_map(|r| {
            r.markers.iter().map(|m| super::Marker {
                label: format!("{}: {}", r.name, m.label),
                ..m.clone()
            })
        })
        .collect();
    let groups = super::markers::group(&all);
    // One legend of the runs for the page, not one per chart.
    let plot = |title: &str, y_label: &str, y_log: bool, series: Vec<Series>| {
        super::chart((title, y_label), y_log, false, series, &groups)
    };
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>rudder: {t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1><p>{n} run(s); validation solid, training dashed; hover a point or a marker for its value or event</p></header><main>{runs_legend}{legend}<div class=\"grid\">",
        t = esc(title),
        n = runs.len(),
        runs_legend = runs_legend(runs),
        legend = super::markers::legend(&groups)
    );
    html.push_str(&plot(
        "Loss (log scale)",
        "loss",
        true,
        pair(runs, "val_loss", "train_loss"),
    ));
    let all: Vec<Value> = runs
        .iter()
        .flat_map(|r| r.history.iter().cloned())
        .collect();
    if super::score_key(&all).0 == Metric::ValRmse {
        html.push_str(&plot(
            "Validation RMSE (the targets' units)",
            "rmse",
            false,
            each(runs, "val_rmse"),
        ));
    } else {
        html.push_str(&plot(
            "Accuracy",
            "accuracy",
            false,
            pair(runs, "val_acc", "train_acc"),
        ));
    }
    html.push_str(&plot(
        "Learning rate at each epoch's last step (log scale)",
        "learning rate",
        true,
        each(runs, "lr"),
    ));
    html.push_str(&plot(
        "Batch size",
        "batch size",
        false,
        each(runs, "batch_size"),
    ));
    html.push_str(&table(runs));
    html.push_str(extra);
    html.push_str("</main></body></html>\n");
    html
}

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Per run, its validation `val` (solid) and training `train` (dashed) series.
fn pair(runs: &[RunView], val: &str, train: &str) -> Vec<Series> {
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
}

/// Per run, its series of `key`.
fn each(runs: &[RunView], key: &str) -> Vec<Series> {
    runs.iter()
        .enumerate()
        .map(|(i, r)| Series::new(&r.name, color(i), column(&r.history, key)))
        .collect()
}

/// The runs' colours, above the charts.
fn runs_legend(runs: &[RunView]) -> String {
    let mut l =
        String::from(r#"<div class="legend runs">runs (validation solid, training dashed):"#);
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            l,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            color(i),
            esc(&r.name)
        );
    }
    l.push_str("</div>");
    l
}

/// A row per run: its setup, epochs, best val_loss (and its epoch, from 1), best and
/// final val_acc, final LR, why it ended.
fn table(runs: &[RunView]) -> String {
    let all: Vec<Value> = runs
        .iter()
        .flat_map(|r| r.history.iter().cloned())
        .collect();
    let (score, label) = super::score_key(&all);
    let mut html = format!(
        "</div><table><tr><th>run</th><th>setup</th><th>epochs</th><th>best val loss (epoch)</th><th>best val {label}</th><th>final val {label}</th><th>final lr</th><th>ended</th></tr>",
    );
    for (i, r) in runs.iter().enumerate() {
        let best_loss = Metric::ValLoss
            .best_epoch(&r.history)
            .map_or("-".into(), |(e, v)| {
                format!("{} ({})", fmt_metric(v), e + 1)
            });
        let best_acc = score
            .best_epoch(&r.history)
            .map_or("-".into(), |(_, v)| fmt_metric(v));
        let last = r.history.last();
        let f = |k: &str| last.and_then(|h| h.get(k)).and_then(Value::as_f64);
        let ended = r.stop_reason.as_deref().unwrap_or("planned end");
        let _ = write!(
            html,
            "<tr><td style=\"text-align:left\"><i class=\"sw\" style=\"background:{}\"></i>{}</td><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            color(i),
            esc(&r.name),
            esc(&r.subtitle),
            r.history.len(),
            best_loss,
            best_acc,
            f(score.name()).map_or("-".into(), fmt_metric),
            f("lr").map_or("-".into(), fmt_num),
            esc(ended)
        );
    }
    html.push_str("</table>");
    html
}
