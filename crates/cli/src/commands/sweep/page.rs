//! What the sweep's page adds below the trials' charts and table: the best LR at
//! each batch size against the rules (`rule`), and, when the trials vary along
//! exactly two dimensions (two grid axes, or one and the LR multipliers), a heatmap of
//! the sweep's metric over them; under a scheduler, what it stopped and paused, and
//! the exploits' lineage (which trial copied which, at which epoch) drawn and listed;
//! on Slurm, every task attempt.

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
    if o.scheduler.is_some() {
        html.push_str(&scheduled(o));
    }
    html.push_str(&tasks(o));
    html
}

/// On Slurm: every attempt of every trial (job, node, state, exit, queued, ran).
fn tasks(o: &Outcome) -> String {
    let secs = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |s| format!("{s:.1} s"));
    let rows: Vec<Vec<String>> = o
        .trials
        .iter()
        .filter_map(|t| Some((t, t.slurm.as_ref()?["attempts"].as_array()?.clone())))
        .flat_map(|(t, attempts)| {
            attempts.into_iter().enumerate().map(move |(k, a)| {
                let text = |key: &str| a[key].as_str().unwrap_or("-").to_string();
                vec![
                    t.dir.clone(),
                    (k + 1).to_string(),
                    text("job"),
                    text("node"),
                    text("state"),
                    a["exit"].as_i64().map_or("-".into(), |e| e.to_string()),
                    text("outcome"),
                    secs(&a["queued_s"]),
                    secs(&a["running_s"]),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let head = [
        "trial", "attempt", "job", "node", "state", "exit", "outcome", "queued", "ran",
    ]
    .map(String::from);
    tables::table("Slurm tasks", &head, &rows)
}

/// The scheduler's doing: each trial's status and epochs, then its lineage.
fn scheduled(o: &Outcome) -> String {
    let name = o
        .scheduler
        .as_ref()
        .and_then(|s| s["name"].as_str())
        .unwrap_or("");
    let rows: Vec<Vec<String>> = o
        .trials
        .iter()
        .map(|t| {
            vec![
                t.dir.clone(),
                t.status.name().to_string(),
                t.epochs_run.to_string(),
                t.score.map_or("-".into(), fmt_metric),
                t.stop_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = [
        "trial",
        "status",
        "epochs",
        &format!("best {}", o.metric),
        "stop reason",
    ]
    .map(String::from);
    let mut html = tables::table(&format!("what {name} decided"), &head, &rows);
    let copies: Vec<Vec<String>> = o
        .trials
        .iter()
        .flat_map(|t| t.lineage.iter().map(move |e| (t, e)))
        .map(|(t, e)| {
            vec![
                t.dir.clone(),
                e["epoch"].to_string(),
                e["from"].as_str().unwrap_or("").to_string(),
                e["from_epoch"].to_string(),
                e["settings"]["lr"]
                    .as_f64()
                    .map_or("-".into(), rudder_run::report::fmt_num),
            ]
        })
        .collect();
    if !copies.is_empty() {
        html.push_str(&lineage_svg(o));
        let head = [
            "trial",
            "at its epoch",
            "copied from",
            "checkpoint after epoch",
            "then lr",
        ]
        .map(String::from);
        html.push_str(&tables::table("exploits, in order", &head, &copies));
    }
    html
}

/// Each trial a line over its epochs, each exploit an arrow from the checkpoint it
/// copied to the trial and epoch that took it.
fn lineage_svg(o: &Outcome) -> String {
    let (w, row, left) = (900.0, 26.0, 110.0);
    let epochs = o
        .trials
        .iter()
        .map(|t| t.epochs_run)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |e: f64| left + (w - left - 20.0) * e / epochs;
    let y = |i: usize| 20.0 + row * i as f64;
    let h = y(o.trials.len()) + 14.0;
    let esc = rudder_run::report::esc;
    let mut svg = format!(
        "<figure><figcaption>lineage: each exploit an arrow from the checkpoint copied to the trial that took it (x: epochs)</figcaption><svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\"><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#e8590c\"/></marker></defs>"
    );
    for (i, t) in o.trials.iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"4\" y=\"{:.1}\" font-size=\"12\">{}</text><line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#adb5bd\" stroke-width=\"3\"/>",
            y(i) + 4.0,
            esc(&t.dir),
            x(0.0),
            y(i),
            x(t.epochs_run as f64),
            y(i)
        ));
    }
    for (i, t) in o.trials.iter().enumerate() {
        for e in &t.lineage {
            let Some(f) = o
                .trials
                .iter()
                .position(|u| Some(u.dir.as_str()) == e["from"].as_str())
            else {
                continue;
            };
            let (fe, te) = (
                e["from_epoch"].as_f64().unwrap_or(0.0),
                e["epoch"].as_f64().unwrap_or(0.0),
            );
            svg.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e8590c\" stroke-width=\"1.5\" marker-end=\"url(#arrow)\"><title>{} took {}'s checkpoint after epoch {} at its epoch {}</title></line>",
                x(fe),
                y(f),
                x(te),
                y(i),
                esc(&t.dir),
                esc(&o.trials[f].dir),
                fe,
                te
            ));
        }
    }
    let step = (epochs / 10.0).ceil().max(1.0);
    let mut e = 0.0;
    while e <= epochs {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#495057\">{e}</text>",
            x(e),
            h - 2.0
        ));
        e += step;
    }
    svg.push_str("</svg></figure>");
    svg
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
