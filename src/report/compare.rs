//! One page overlaying several runs (`rudder report`, `rudder sweep`): their curves,
//! their policy events, and a table.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::runlog::{best_epoch, read_jsonl};

use super::{PALETTE, Plot, STYLE, Series, VLine, column, esc, fmt_num};

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

/// Reads a run directory: its metrics (required), events and configuration.
pub fn load_run(dir: &Path) -> Result<RunView, String> {
    let metrics = dir.join("metrics.jsonl");
    if !metrics.is_file() {
        return Err(format!(
            "{}: no metrics.jsonl there (not a run directory)",
            dir.display()
        ));
    }
    let history = read_jsonl(&metrics)?;
    let events = if dir.join("events.jsonl").is_file() {
        read_jsonl(&dir.join("events.jsonl"))?
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
        let best_loss =
            best_epoch(&r.history, "val_loss").map_or("-".into(), |(e, v)| format!("{v:.4} ({e})"));
        let best_acc =
            best_epoch(&r.history, "val_acc").map_or("-".into(), |(_, v)| format!("{v:.4}"));
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
            best_acc,
            f("val_acc").map_or("-".into(), |v| format!("{v:.4}")),
            f("lr").map_or("-".into(), fmt_num),
            esc(ended)
        );
    }
    html.push_str("</table></main></body></html>\n");
    html
}
