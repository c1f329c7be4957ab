//! A hook call's keyword arguments into the run's context ([`RunState`]), a saved
//! context back, and an epoch's line for `ctx.history`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rudder_policy::{Decision, EpochMetrics, RunState};
use serde_json::{Map, Value, json};

/// A keyword argument of a hook call.
pub(crate) enum Update {
    Int(&'static str, u64),
    Num(&'static str, Option<f64>),
    Optimizer(String),
    Resumed(bool),
}

pub(crate) const INTS: [&str; 7] = [
    "epoch",
    "step",
    "steps_per_epoch",
    "batch_size",
    "accumulation",
    "epochs",
    "dataset_size",
];
/// The real-valued settings; the metrics (`rudder_policy::METRIC_NAMES`) are too.
pub(crate) const NUMS: [&str; 4] = ["lr", "momentum", "weight_decay", "base_lr"];

pub(crate) fn read_kwargs(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<Update>> {
    let mut out = Vec::new();
    let Some(kwargs) = kwargs else {
        return Ok(out);
    };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        let bad = |want: &str| {
            let shown = v.repr().map_or_else(|_| "?".to_string(), |r| r.to_string());
            PyTypeError::new_err(format!(
                "{key} must be {want}, got {}",
                rudder_policy::text::clip(&shown)
            ))
        };
        if let Some(k) = INTS.iter().find(|n| **n == key) {
            let n: u64 = v.extract().map_err(|_| bad("a whole number >= 0"))?;
            out.push(Update::Int(k, n));
        } else if let Some(k) = NUMS
            .iter()
            .chain(&rudder_policy::METRIC_NAMES)
            .find(|n| **n == key)
        {
            let x: Option<f64> = if v.is_none() {
                None
            } else {
                Some(v.extract().map_err(|_| bad("a number or None"))?)
            };
            out.push(Update::Num(k, x));
        } else if key == "optimizer" {
            out.push(Update::Optimizer(v.extract().map_err(|_| bad("a str"))?));
        } else if key == "base_batch_size" {
            out.push(Update::Int(
                "base_batch_size",
                v.extract().map_err(|_| bad("a whole number"))?,
            ));
        } else if key == "resumed" {
            out.push(Update::Resumed(v.extract().map_err(|_| bad("a bool"))?));
        } else {
            return Err(PyTypeError::new_err(format!(
                "unexpected keyword {key:?}: the context has {}, {}, {}, base_batch_size, optimizer and resumed",
                INTS.join(", "),
                NUMS.join(", "),
                rudder_policy::METRIC_NAMES.join(", ")
            )));
        }
    }
    Ok(out)
}

/// A hook's keyword argument, into the run's context.
pub(crate) fn update(run: &mut RunState, u: &Update) {
    let s = &mut run.settings;
    match *u {
        Update::Int("epoch", n) => run.epoch = n as usize,
        Update::Int("step", n) => run.step = n,
        Update::Int("steps_per_epoch", n) => run.steps_per_epoch = Some((n as usize).max(1)),
        Update::Int("batch_size", n) => s.batch_size = (n as usize).max(1),
        Update::Int("accumulation", n) => s.accumulation = (n as usize).max(1),
        Update::Int("epochs", n) => s.epochs = n as usize,
        Update::Int("dataset_size", n) => run.dataset_size = Some((n as usize).max(1)),
        Update::Int("base_batch_size", n) => run.base_batch_size = Some(n as usize),
        Update::Num("lr", Some(x)) => s.lr = x,
        Update::Num("momentum", Some(x)) => s.momentum = x,
        Update::Num("weight_decay", Some(x)) => s.weight_decay = x,
        Update::Num("base_lr", x) => run.base_lr = x,
        Update::Num(name, x) if run.metrics.set(name, x) => {}
        Update::Optimizer(ref t) => run.optimizer = t.clone(),
        Update::Resumed(b) => run.resumed = b,
        _ => {}
    }
}

/// From `state()`'s `run`.
pub(crate) fn restore(run: &mut RunState, r: &Map<String, Value>) {
    let int = |k: &str| r.get(k).and_then(Value::as_u64);
    let num = |k: &str| r.get(k).and_then(Value::as_f64);
    let s = &mut run.settings;
    run.epoch = int("epoch").map_or(run.epoch, |v| v as usize);
    run.step = int("step").unwrap_or(run.step);
    if let Some(n) = int("steps_per_epoch") {
        run.steps_per_epoch = Some(n as usize);
    }
    s.lr = num("lr").unwrap_or(s.lr);
    s.batch_size = int("batch_size").map_or(s.batch_size, |v| v as usize);
    s.accumulation = int("accumulation").map_or(s.accumulation, |v| v as usize);
    s.epochs = int("epochs").map_or(s.epochs, |v| v as usize);
    s.momentum = num("momentum").unwrap_or(s.momentum);
    s.weight_decay = num("weight_decay").unwrap_or(s.weight_decay);
    run.base_lr = num("base_lr").or(run.base_lr);
    run.base_batch_size = int("base_batch_size")
        .map(|v| v as usize)
        .or(run.base_batch_size);
    if let Some(o) = r.get("optimizer").and_then(Value::as_str) {
        run.optimizer = o.to_string();
    }
    run.dataset_size = int("dataset_size").map(|v| v as usize).or(run.dataset_size);
    if let Some(b) = r
        .get("best")
        .and_then(|b| serde_json::from_value(b.clone()).ok())
    {
        run.best = b;
    }
    if let Some(h) = r.get("history").and_then(Value::as_array) {
        run.history = h.clone();
        if let Some(last) = h.last().and_then(Value::as_object) {
            run.metrics = EpochMetrics::from_json(last);
        }
    }
    run.stopped = r.get("stopped").and_then(Value::as_bool).unwrap_or(false);
}

/// The `metrics.jsonl`-like record of an epoch, for `ctx.history` (a non-finite
/// number is `null`, as there).
pub(crate) fn epoch_record(r: &RunState, decision: &Decision) -> Value {
    let s = r.settings;
    let m = r.metrics;
    json!({
        "epoch": r.epoch, "step": r.step, "epochs": s.epochs, "lr": s.lr,
        "batch_size": s.batch_size, "accumulation": s.accumulation,
        "train_loss": m.train_loss, "train_acc": m.train_acc,
        "val_loss": m.val_loss, "val_acc": m.val_acc,
        "val_rmse": m.val_rmse, "val_mae": m.val_mae, "val_r2": m.val_r2,
        "policy": decision.metrics,
    })
}
