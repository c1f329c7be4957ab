//! The table a sweep prints on stderr at its end, and the order it lists trials in.

use serde_json::Value;

use rudder_core::text::fmt_metric;
use rudder_run::report;

use super::{Outcome, Trial};

/// The trials (with their index in `o.trials`) from the smallest LR to the largest,
/// as the table and the report list them (sweep.json keeps the multipliers' order).
pub(super) fn by_lr(o: &Outcome) -> impl Iterator<Item = (usize, &Trial)> {
    // Trials of the same settings stay together, in the grid's order.
    let group = |t: &Trial| {
        o.trials
            .iter()
            .position(|u| u.settings == t.settings)
            .unwrap_or(0)
    };
    let mut order: Vec<(usize, &Trial)> = o.trials.iter().enumerate().collect();
    order.sort_by(|a, b| group(a.1).cmp(&group(b.1)).then(a.1.lr.total_cmp(&b.1.lr)));
    order.into_iter()
}

/// The table printed on stderr at the end of a sweep.
pub(super) fn text(o: &Outcome) -> String {
    // Classification's accuracy, or a regression's RMSE.
    let lines: Vec<Value> = o.trials.iter().map(|t| t.last.clone()).collect();
    let (score, label) = report::score_key(&lines);
    let w = o
        .trials
        .iter()
        .map(|t| t.dir.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let sampled = o.searched.get("samples").is_some();
    let mut out = format!(
        "{:<w$} {:>10} {:>14} {:>6} {:>14} {:>13}  {}\n",
        "trial",
        "lr",
        format!("best {}", o.metric),
        "epoch",
        "final loss",
        format!("final {label}"),
        "note"
    );
    for (i, t) in by_lr(o) {
        let best_epoch = t
            .best
            .get(o.metric.name())
            .and_then(|b| b.get("epoch"))
            .and_then(Value::as_u64)
            // 1-based, as people count epochs (sweep.json keeps the 0-based index).
            .map_or("-".into(), |e| (e + 1).to_string());
        let f = |k: &str| {
            t.last
                .get(k)
                .and_then(Value::as_f64)
                .map_or("-".into(), fmt_metric)
        };
        let settings = if sampled {
            format!("  {}", t.described)
        } else {
            String::new()
        };
        let line = format!(
            "{:<w$} {:>10} {:>14} {:>6} {:>14} {:>13}  {:<8}{settings}\n",
            t.dir,
            report::fmt_num(t.lr),
            t.score.map_or("-".into(), fmt_metric),
            best_epoch,
            f("val_loss"),
            f(score.name()),
            if o.winner == Some(i) {
                "winner"
            } else if t.diverged {
                "diverged"
            } else if t.status == rudder_policy::sweep::Status::Failed {
                "failed"
            } else if t.stop_reason.is_some() {
                "stopped"
            } else {
                ""
            }
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&tasks(o));
    out
}

/// On Slurm: the tasks' totals, and each trial that took more than one attempt.
fn tasks(o: &Outcome) -> String {
    let all: Vec<(&str, Vec<Value>)> = o
        .trials
        .iter()
        .filter_map(|t| {
            let a = t.slurm.as_ref()?["attempts"].as_array()?.clone();
            Some((t.dir.as_str(), a))
        })
        .collect();
    if all.is_empty() {
        return String::new();
    }
    let sum = |k: &str| -> f64 {
        all.iter()
            .flat_map(|(_, a)| a.iter())
            .filter_map(|a| a[k].as_f64())
            .sum()
    };
    let n: usize = all.iter().map(|(_, a)| a.len()).sum();
    let mut out = format!(
        "slurm: {n} task attempt(s) for {} trial(s), {:.1} s queued and {:.1} s running in all\n",
        all.len(),
        sum("queued_s"),
        sum("running_s")
    );
    for (dir, attempts) in all.iter().filter(|(_, a)| a.len() > 1) {
        let each: Vec<String> = attempts
            .iter()
            .map(|a| {
                format!(
                    "{} on {} {}{}",
                    a["job"].as_str().unwrap_or("?"),
                    a["node"].as_str().unwrap_or("?"),
                    a["state"].as_str().unwrap_or("?"),
                    a["exit"]
                        .as_i64()
                        .map_or(String::new(), |e| format!(" (exit {e})"))
                )
            })
            .collect();
        out.push_str(&format!("  {dir}: {}\n", each.join("; ")));
    }
    out
}
