//! The schedule a population found, as a policy: the winning trial's weights traced
//! back through every exploit (whose checkpoint, after how many epochs), the settings
//! each stretch of epochs trained with, written as `best_schedule.rhai`, which
//! replays them from scratch (Ray Tune's `PopulationBasedTrainingReplay`, as a plain
//! policy file).

use serde_json::{Map, Value};

use super::Trial;

/// The settings a stretch of epochs trained with, from epoch `start` (0-based) on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stretch {
    pub(crate) start: usize,
    pub(crate) settings: Map<String, Value>,
}

const KEYS: [&str; 5] = [
    "lr",
    "batch_size",
    "momentum",
    "weight_decay",
    "accumulation",
];

/// A trial's settings before any exploit.
fn initial(t: &Trial) -> Map<String, Value> {
    t.initial
        .iter()
        .filter(|(k, _)| KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The stretches that made trial `t`'s weights after `epochs` of its epochs, oldest
/// first (`depth` bounds the walk: lineages cannot loop, but a hostile sweep.json
/// might).
pub(crate) fn stretches(trials: &[Trial], t: usize, epochs: usize, depth: usize) -> Vec<Stretch> {
    let trial = &trials[t];
    let last = trial.lineage.iter().rev().find(|e| {
        e.get("epoch")
            .and_then(Value::as_u64)
            .is_some_and(|x| x as usize <= epochs)
    });
    let Some(e) = last.filter(|_| depth > 0) else {
        return vec![Stretch {
            start: 0,
            settings: initial(trial),
        }];
    };
    let at = e.get("epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
    let from_epoch = e.get("from_epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
    let from = e.get("from").and_then(Value::as_str).unwrap_or("");
    let mut out = match trials.iter().position(|u| u.dir == from) {
        Some(f) => stretches(trials, f, from_epoch, depth - 1),
        None => Vec::new(),
    };
    out.retain(|s| s.start < from_epoch);
    if epochs > at {
        out.push(Stretch {
            start: from_epoch,
            settings: e
                .get("settings")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        });
    }
    out
}

/// The epochs the replay trains: the copied checkpoint's, then the rest.
pub(crate) fn length(trials: &[Trial], t: usize) -> usize {
    let trial = &trials[t];
    match trial.lineage.last() {
        None => trial.epochs_run,
        Some(e) => {
            let at = e.get("epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
            let from_epoch = e.get("from_epoch").and_then(Value::as_u64).unwrap_or(0) as usize;
            from_epoch + trial.epochs_run.saturating_sub(at)
        }
    }
}

/// `best_schedule.rhai` for trial `t` of the sweep in `sweep_dir`.
pub(crate) fn policy(trials: &[Trial], t: usize, sweep_dir: &str) -> String {
    let parts = stretches(trials, t, trials[t].epochs_run, trials.len());
    let total = length(trials, t);
    let mut plan = String::new();
    for s in &parts {
        let fields: Vec<String> = s
            .settings
            .iter()
            .filter(|(k, _)| KEYS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}: {}", rhai_value(v)))
            .collect();
        plan.push_str(&format!(
            "        [{}, #{{ {} }}],\n",
            s.start,
            fields.join(", ")
        ));
    }
    format!(
        "//! The schedule the population of sweep {sweep_dir} found for its winner, {}:\n\
         //! its weights traced back through every exploit, and the settings each stretch\n\
         //! of epochs trained with, replayed from scratch. Train the sweep's model on its\n\
         //! data (the options of its sweep.json's `args`) for {total} epochs with it:\n\
         //!   rudder train --policy {sweep_dir}/best_schedule.rhai --epochs {total} ...\n\
         //! Written by rudder sweep; each entry is [first epoch (0-based), settings].\n\
         \n\
         fn on_epoch_start(ctx) {{\n    let plan = [\n{plan}    ];\n    for s in plan {{\n        if s[0] == ctx.epoch {{ return s[1]; }}\n    }}\n}}\n",
        trials[t].dir
    )
}

/// A JSON number or string as Rhai source (floats keep a point).
fn rhai_value(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            let s = format!("{f:?}");
            if s.contains(['.', 'e']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        other => other.to_string(),
    }
}
