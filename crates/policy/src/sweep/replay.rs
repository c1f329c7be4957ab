//! A sweep policy replayed on recorded curves, for `policy test`: trials report their
//! curves' values epoch by epoch in a given order (by default one trial after
//! another, as Optuna's `study.optimize` with one job), the policy's `stop`, `pause`
//! and `exploit` decisions are carried out on the statuses, and what it did is
//! compared with what the test expects (the book's File formats page).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{DRAWS, Report, Scheduler, Status, TrialView};

/// The `sweep` part of a test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The sweep's metric (`val_loss`) and direction (`min`).
    #[serde(default = "val_loss")]
    pub metric: String,
    #[serde(default = "min")]
    /// `min` or `max`.
    pub mode: String,
    /// The epochs trials are planned for (by default the longest curve's).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Trials at once (`sweep.jobs`).
    #[serde(default = "one")]
    pub jobs: usize,
    /// The trials and their curves.
    pub trials: Vec<Recorded>,
    /// `[trial index, step]` per report, steps 1-based; by default each trial's whole
    /// curve, one trial after another.
    #[serde(default)]
    pub order: Option<Vec<(usize, usize)>>,
    /// The draws each report gets (`sweep.random`), report by report; zeros after.
    #[serde(default)]
    pub random: Vec<Vec<f64>>,
    /// What the policy must have done: `stopped` (`{id: step}`, exactly),
    /// `exploits` (`[{trial, from, step, settings}]`), `paused` (`[[id, step]]`).
    pub expect: Map<String, Value>,
}

fn val_loss() -> String {
    "val_loss".into()
}
fn min() -> String {
    "min".into()
}
fn one() -> usize {
    1
}

/// One trial's recorded curve.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// Its id (`t0`, `t1`, ... by default).
    #[serde(default)]
    pub id: Option<String>,
    /// Its settings (`sweep.trials[i].settings`).
    #[serde(default)]
    pub settings: Map<String, Value>,
    /// The metric after each epoch (`null`: NaN).
    pub curve: Vec<Option<f64>>,
}

/// `d`'s stops, pauses and exploits on `trials`, recorded.
fn carry_out(
    d: &super::SweepDecision,
    trials: &mut [TrialView],
    step: usize,
    stopped: &mut BTreeMap<String, Value>,
    paused: &mut Vec<Value>,
    exploits: &mut Vec<Value>,
) {
    let ids: Vec<String> = trials.iter().map(|u| u.id.clone()).collect();
    let at = |id: &str| ids.iter().position(|u| u == id);
    for id in &d.stop {
        if let Some(j) = at(id) {
            trials[j].status = Status::Stopped;
            stopped.insert(id.clone(), json!(trials[j].history.len()));
        }
    }
    for id in &d.pause {
        if let Some(j) = at(id) {
            trials[j].status = Status::Paused;
            paused.push(json!([id, trials[j].history.len()]));
        }
    }
    for e in &d.exploit {
        exploits
            .push(json!({"trial": e.trial, "from": e.from, "step": step, "settings": e.settings}));
        // The copy takes `from`'s settings, then the explored ones.
        if let (Some(j), Some(f)) = (at(&e.trial), at(&e.from)) {
            let mut s = trials[f].settings.clone();
            s.extend(e.settings.clone());
            trials[j].settings = s;
        }
    }
}

/// What a replay did: `stopped`, `paused`, `exploits`, and `errors` (script errors,
/// by report).
pub fn run(s: &mut Scheduler, r: &Replay) -> Value {
    let mut trials: Vec<TrialView> = r
        .trials
        .iter()
        .enumerate()
        .map(|(i, t)| TrialView {
            id: t.id.clone().unwrap_or_else(|| format!("t{i}")),
            number: i,
            settings: t.settings.clone(),
            status: Status::Pending,
            history: Vec::new(),
        })
        .collect();
    let order = r.order.clone().unwrap_or_else(|| {
        (r.trials.iter().enumerate())
            .flat_map(|(i, t)| (1..=t.curve.len()).map(move |s| (i, s)))
            .collect()
    });
    let epochs = r
        .epochs
        .unwrap_or_else(|| r.trials.iter().map(|t| t.curve.len()).max().unwrap_or(0));
    let (mut stopped, mut paused, mut exploits, mut errors) =
        (BTreeMap::new(), Vec::new(), Vec::new(), Vec::new());
    let mut reports = 0usize;
    for (i, step) in order {
        let Some(t) = r.trials.get(i) else { continue };
        if trials[i].status.finished() || step == 0 || step > t.curve.len() {
            continue;
        }
        trials[i].status = Status::Running;
        let v = t.curve[step - 1];
        trials[i]
            .history
            .push(json!({"epoch": step - 1, r.metric.as_str(): v}));
        let mut random = r.random.get(reports).cloned().unwrap_or_default();
        random.resize(DRAWS, 0.0);
        reports += 1;
        let report = Report {
            trials: &trials,
            trial: i,
            metric: &r.metric,
            mode: &r.mode,
            epochs,
            jobs: r.jobs,
            random: &random,
        };
        match s.on_report(&report) {
            Ok(d) => carry_out(
                &d,
                &mut trials,
                step,
                &mut stopped,
                &mut paused,
                &mut exploits,
            ),
            Err(e) => errors.push(json!(e.to_string())),
        }
        if !trials[i].status.finished() && step == t.curve.len() {
            trials[i].status = Status::Done;
        }
    }
    json!({"stopped": stopped, "paused": paused, "exploits": exploits, "errors": errors})
}
