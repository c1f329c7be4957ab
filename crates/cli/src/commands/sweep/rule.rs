//! How the best LR moved with the batch size, for a sweep over batch sizes: at each
//! batch size the best trial's LR (by the sweep's metric), against what the linear
//! and the square-root rule predict from the reference batch size's best (the
//! command's `--batch-size` where the sweep has it, else the smallest). Which rule
//! holds for a model is the question the founding notes leave open; this is the
//! measured answer for the sweep's model and data.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use rudder_core::metric::Metric;
use rudder_core::text::fmt_metric;
use rudder_run::report::{PALETTE, Plot, Series, fmt_num, tables};

use super::Outcome;

/// The batch sizes' best LRs and the rules' predictions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Rule {
    /// The batch size the predictions start from.
    pub(crate) reference: usize,
    pub(crate) rows: Vec<Row>,
    /// The mean distance, in octaves (|log2(best / predicted)|), of each rule's
    /// predictions from the best LRs found, over the batch sizes but the reference.
    pub(crate) linear_error: f64,
    pub(crate) sqrt_error: f64,
    /// `linear` or `sqrt`: the rule closer to what was found; `both` when they are
    /// as close.
    pub(crate) closer: &'static str,
}

/// One batch size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) batch_size: usize,
    /// The best trial at this batch size, its LR and its score.
    pub(crate) trial: String,
    pub(crate) best_lr: f64,
    pub(crate) score: f64,
    /// The LR each rule predicts here from the reference's best.
    pub(crate) linear: f64,
    pub(crate) sqrt: f64,
    /// The best LR is the smallest or the largest tried at this batch size: the best
    /// may lie beyond what was tried.
    pub(crate) at_edge: bool,
}

/// The rule table of `o`, when its trials cover at least two batch sizes.
pub(crate) fn of(o: &Outcome) -> Option<Rule> {
    let batch = |t: &super::Trial| {
        t.settings
            .get("batch_size")
            .and_then(Value::as_u64)
            .map_or(o.batch_size, |b| b as usize)
    };
    let mut by_batch: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, t) in o.trials.iter().enumerate() {
        if !t.diverged && t.score.is_some() {
            by_batch.entry(batch(t)).or_default().push(i);
        }
    }
    if by_batch.len() < 2 {
        return None;
    }
    let best: Vec<(usize, usize, f64)> = by_batch
        .iter()
        .filter_map(|(&b, idx)| {
            let (i, v) = o.metric.best_of(
                idx.iter()
                    .map(|&i| (i, o.trials[i].score.unwrap_or(f64::NAN))),
            )?;
            Some((b, i, v))
        })
        .collect();
    let reference = if by_batch.contains_key(&o.batch_size) {
        o.batch_size
    } else {
        *by_batch.keys().next()?
    };
    let ref_lr = best
        .iter()
        .find(|(b, ..)| *b == reference)
        .map(|&(_, i, _)| o.trials[i].lr)?;
    let rows: Vec<Row> = best
        .iter()
        .map(|&(b, i, v)| {
            let ratio = b as f64 / reference as f64;
            let lrs: Vec<f64> = by_batch[&b].iter().map(|&j| o.trials[j].lr).collect();
            let lr = o.trials[i].lr;
            let at_edge =
                lrs.len() > 1 && (lrs.iter().all(|&x| x <= lr) || lrs.iter().all(|&x| x >= lr));
            Row {
                at_edge,
                batch_size: b,
                trial: o.trials[i].dir.clone(),
                best_lr: o.trials[i].lr,
                score: v,
                linear: ref_lr * ratio,
                sqrt: ref_lr * ratio.sqrt(),
            }
        })
        .collect();
    let error = |pred: fn(&Row) -> f64| {
        let others: Vec<f64> = rows
            .iter()
            .filter(|r| r.batch_size != reference)
            .map(|r| (r.best_lr / pred(r)).log2().abs())
            .collect();
        others.iter().sum::<f64>() / others.len().max(1) as f64
    };
    let (linear_error, sqrt_error) = (error(|r| r.linear), error(|r| r.sqrt));
    Some(Rule {
        reference,
        closer: if (linear_error - sqrt_error).abs() < 1e-9 {
            "both"
        } else if linear_error < sqrt_error {
            "linear"
        } else {
            "sqrt"
        },
        rows,
        linear_error,
        sqrt_error,
    })
}

/// The table's head and rows, as the terminal and the page show them.
fn cells(r: &Rule, metric: Metric) -> (Vec<String>, Vec<Vec<String>>) {
    let head = [
        "batch size",
        "best lr",
        "linear rule",
        "sqrt rule",
        &format!("best {metric}"),
        "trial",
    ]
    .map(String::from)
    .to_vec();
    let rows = r
        .rows
        .iter()
        .map(|row| {
            let reference = row.batch_size == r.reference;
            let pred = |x: f64| {
                if reference {
                    "(reference)".to_string()
                } else {
                    fmt_num(x)
                }
            };
            vec![
                row.batch_size.to_string(),
                format!(
                    "{}{}",
                    fmt_num(row.best_lr),
                    if row.at_edge { "*" } else { "" }
                ),
                pred(row.linear),
                pred(row.sqrt),
                fmt_metric(row.score),
                row.trial.clone(),
            ]
        })
        .collect();
    (head, rows)
}

/// One line that says which rule the sweep found closer, and by how much.
fn verdict(r: &Rule) -> String {
    let octaves = |x: f64| format!("{} octave{}", fmt_num(x), if x == 1.0 { "" } else { "s" });
    let from = format!("predictions from batch {}'s best", r.reference);
    let mut v = match r.closer {
        "both" => format!(
            "the best LRs are as far from both rules: {} off on average ({from})",
            octaves(r.linear_error)
        ),
        closer => {
            let (near, far) = if closer == "linear" {
                ("linear", "square-root")
            } else {
                ("square-root", "linear")
            };
            format!(
                "the best LRs are closer to the {near} rule: {} off on average, against {} for the {far} rule ({from})",
                octaves(r.linear_error.min(r.sqrt_error)),
                octaves(r.linear_error.max(r.sqrt_error)),
            )
        }
    };
    if r.rows.iter().any(|row| row.at_edge) {
        v.push_str("; * the smallest or largest LR tried at that batch size: the best may lie beyond (widen --multipliers)");
    }
    v
}

/// The table for the terminal, after the trials'.
pub(crate) fn text(r: &Rule, metric: Metric) -> String {
    let (head, rows) = cells(r, metric);
    let line = |c: &[String]| {
        let l = format!(
            "{:>10} {:>10} {:>12} {:>12} {:>14}  {}",
            c[0], c[1], c[2], c[3], c[4], c[5]
        );
        format!("{}\n", l.trim_end())
    };
    let mut out = String::from("\nthe best LR at each batch size:\n");
    out.push_str(&line(&head));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str(&verdict(r));
    out.push('\n');
    out
}

/// The chart and the table for the sweep's page: the best LR against the batch size
/// on log axes, with the two rules' lines through the reference's best.
pub(crate) fn html(r: &Rule, metric: Metric) -> String {
    let (head, rows) = cells(r, metric);
    let line = |f: fn(&Row) -> f64| {
        r.rows
            .iter()
            .map(|row| (row.batch_size as f64, f(row)))
            .collect()
    };
    let chart = Plot {
        title: "The best LR at each batch size, and the two rules (log scales)",
        x_label: "batch size (log scale)",
        x_log: true,
        y_log: true,
        x_whole: false,
        series: vec![
            Series {
                width: 2.6,
                ..Series::new("best LR found", PALETTE[0], line(|row| row.best_lr))
            },
            Series {
                dashed: true,
                ..Series::new("linear rule", PALETTE[1], line(|row| row.linear))
            },
            Series {
                dashed: true,
                ..Series::new("square-root rule", PALETTE[2], line(|row| row.sqrt))
            },
        ],
        vlines: Vec::new(),
        events: &[],
        y_label: "learning rate",
        y_range: None,
        legend_inside: false,
        legend: true,
    };
    // Half the page's width, as the other charts: an empty second cell.
    let mut html = String::from("<div class=\"grid\">");
    html.push_str(&chart.render());
    html.push_str("<div></div></div>");
    html.push_str(&tables::table(
        &format!("The best LR at each batch size: {}", verdict(r)),
        &head,
        &rows,
    ));
    html
}
