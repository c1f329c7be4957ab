//! What the sweep's page adds below the trials' charts and table: the best LR at
//! each batch size against the rules (`rule`), and, when the trials vary along
//! exactly two dimensions (two grid axes, or one and the LR multipliers), a heatmap of
//! the sweep's metric over them.

use rudder_core::text::fmt_metric;
use rudder_run::report::tables;

use super::{Outcome, rule, space};

/// The extra HTML for `o`'s page (escaped).
pub(crate) fn extra(o: &Outcome) -> String {
    let mut html = String::new();
    if let Some(r) = &o.lr_rule {
        html.push_str(&rule::html(r, o.metric));
    }
    if let Some(h) = heatmap(o) {
        html.push_str(&h);
    }
    html
}

/// A trial's value along each dimension: its settings, then `x` (its multiplier).
fn coords(o: &Outcome) -> (Vec<String>, Vec<Vec<String>>) {
    let mut dims: Vec<String> = o
        .trials
        .first()
        .and_then(|t| t.settings.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let several = o.trials.iter().any(|t| {
        o.trials
            .first()
            .is_some_and(|f| f.multiplier != t.multiplier)
    });
    if several {
        dims.push("multiplier".into());
    }
    let values = o
        .trials
        .iter()
        .map(|t| {
            dims.iter()
                .map(|d| match d.as_str() {
                    "multiplier" => format!("x{}", rudder_run::report::fmt_num(t.multiplier)),
                    k => t.settings.get(k).map_or("-".into(), space::show),
                })
                .collect()
        })
        .collect();
    (dims, values)
}

fn heatmap(o: &Outcome) -> Option<String> {
    o.searched.get("grid")?;
    let (dims, values) = coords(o);
    if dims.len() != 2 {
        return None;
    }
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for v in &values {
        if !rows.contains(&v[0]) {
            rows.push(v[0].clone());
        }
        if !cols.contains(&v[1]) {
            cols.push(v[1].clone());
        }
    }
    let mut cells = vec![vec![None; cols.len()]; rows.len()];
    for (t, v) in o.trials.iter().zip(&values) {
        let i = rows.iter().position(|r| *r == v[0])?;
        let j = cols.iter().position(|c| *c == v[1])?;
        cells[i][j] = t.score.filter(|_| !t.diverged);
    }
    Some(tables::heatmap(
        &format!("best {} of each trial (diverged: -)", o.metric),
        (&dims[0], &rows),
        (&dims[1], &cols),
        &cells,
        o.metric.goal() == rudder_core::metric::Goal::Min,
        fmt_metric,
    ))
}
