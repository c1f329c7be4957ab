//! What a run's page and a sweep's page are drawn from, as JSON: the run's config,
//! epochs, events with the report's markers, steps, policies with their reload
//! history, checkpoints, and the byte offsets its live stream goes on from; a
//! sweep's `sweep.json`, every trial's epochs and the scheduler's events.

use std::path::Path;

use rudder_run::report::markers;
use serde_json::{Value, json};

use crate::scan::{Found, Roots};
use crate::summary::{Locks, MAX_JSON, status};
use crate::{edit, tail};

/// The most steps a page is sent at once (the newest), and events.
const MAX_STEPS: usize = 20_000;
const MAX_EVENTS: usize = 5_000;

/// A marker for event `e`, with the colour the report draws it in.
pub(crate) fn marker(e: &Value) -> Option<Value> {
    let m = markers::from_event(e, None)?;
    let style = markers::style(&m.kind);
    Some(json!({
        "epoch": m.epoch,
        "kind": m.kind,
        "label": m.label,
        "color": style.color,
        "name": style.name,
        "error": markers::is_error(&m.kind),
    }))
}

/// The newest `n` of `v`.
fn newest(mut v: Vec<Value>, n: usize) -> Vec<Value> {
    if v.len() > n {
        v.drain(..v.len() - n);
    }
    v
}

/// A step line as the page draws it: `[step, lr, loss, batch_size]`.
pub(crate) fn step_point(s: &Value) -> Value {
    json!([s["step"], s["lr"], s["loss"], s["batch_size"]])
}

/// A run's page.
pub(crate) fn run(found: &Found) -> Value {
    let dir = &found.dir;
    let config = tail::json_file(dir, "config.json", MAX_JSON).unwrap_or(Value::Null);
    let metrics = tail::read_all(dir, "metrics.jsonl");
    let events = tail::read_all(dir, "events.jsonl");
    let steps = tail::read_all(dir, "steps.jsonl");
    let marks: Vec<Value> = events.values.iter().filter_map(marker).collect();
    let (st, reason) = status(dir, &Locks::now());
    json!({
        "id": found.id,
        "sweep": found.sweep,
        "status": st,
        "reason": reason,
        "config": config,
        "metrics": metrics.values,
        "markers": marks,
        "policies": edit::policies(dir, &config, &events.values),
        "events": newest(events.values, MAX_EVENTS),
        "steps": newest(steps.values, MAX_STEPS).iter().map(step_point).collect::<Vec<_>>(),
        "checkpoints": checkpoints(dir),
        "offsets": {"metrics": metrics.end, "events": events.end, "steps": steps.end},
    })
}

/// The run's checkpoints: name, epoch and step, newest step last.
fn checkpoints(dir: &Path) -> Vec<Value> {
    let Some(root) = crate::scan::inside(dir, "checkpoints") else {
        return Vec::new();
    };
    let mut out: Vec<Value> = rudder_run::checkpoint::list(&root)
        .into_iter()
        .map(|(name, path)| {
            let state = tail::json_file(&path, "state.json", MAX_JSON).unwrap_or(Value::Null);
            json!({"name": name, "epoch": state["epoch"], "step": state["step"]})
        })
        .collect();
    out.sort_by_key(|c| c["step"].as_u64().unwrap_or(0));
    out
}

/// A sweep's page: its record, every trial's epochs and the scheduler's events.
pub(crate) fn sweep(found: &Found, roots: &Roots) -> Value {
    let dir = &found.dir;
    let record = tail::json_file(dir, "sweep.json", MAX_JSON).unwrap_or(Value::Null);
    let locks = Locks::now();
    let trials: Vec<Value> = record["trials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let name = t["dir"].as_str().unwrap_or_default();
            let id = format!("{}/{name}", found.id);
            let run = roots
                .resolve(&id)
                .filter(|f| f.kind == crate::scan::Kind::Run);
            let (history, st) = match &run {
                Some(f) => (
                    tail::read_all(&f.dir, "metrics.jsonl").values,
                    status(&f.dir, &locks).0,
                ),
                None => (Vec::new(), "missing"),
            };
            json!({"id": run.map(|_| id), "dir": name, "run_status": st, "metrics": history})
        })
        .collect();
    json!({
        "id": found.id,
        "sweep": record,
        "trials": trials,
        "events": newest(tail::read_all(dir, "events.jsonl").values, MAX_EVENTS),
    })
}
