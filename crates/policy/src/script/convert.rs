//! Between the host and scripts: the `ctx` map a hook sees, and the decision map a
//! hook returns, checked key by key (numbers may be integer or float).

use std::collections::BTreeMap;

use rhai::{Dynamic, Map};

use super::host::number;
use super::strict::View;
use crate::{Ctx, Decision, Invalid, Rescale, Save, Target};

fn opt(v: Option<f64>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from_float)
}

fn int(v: usize) -> Dynamic {
    Dynamic::from_int(v as rhai::INT)
}

/// The `ctx` a hook sees for `c` (a strict [`View`]: an unknown field is an error),
/// with the policy's `params` (a view too) and the shared, read-only `history` array.
pub(crate) fn ctx_map(c: &Ctx, params: &Dynamic, history: &Dynamic) -> Dynamic {
    let s = &c.settings;
    let mut m = Map::new();
    m.insert("epoch".into(), int(c.epoch));
    // For messages: people count epochs from 1.
    m.insert("epoch_number".into(), int(c.epoch + 1));
    m.insert("epochs".into(), int(s.epochs));
    m.insert("step".into(), Dynamic::from_int(c.step as rhai::INT));
    m.insert("steps_per_epoch".into(), int(c.steps_per_epoch));
    m.insert("lr".into(), Dynamic::from_float(s.lr));
    m.insert("base_lr".into(), Dynamic::from_float(c.base_lr));
    m.insert("batch_size".into(), int(s.batch_size));
    m.insert("base_batch_size".into(), int(c.base_batch_size));
    m.insert("accumulation".into(), int(s.accumulation));
    m.insert("momentum".into(), Dynamic::from_float(s.momentum));
    m.insert("weight_decay".into(), Dynamic::from_float(s.weight_decay));
    m.insert("optimizer".into(), c.optimizer.into());
    m.insert("dataset_size".into(), int(c.dataset_size));
    // Every metric, `()` where the trainer has none (regression's for classification).
    for name in crate::METRIC_NAMES {
        m.insert(name.into(), opt(c.metrics.get(name)));
    }
    let mut best = Map::new();
    best.insert("val_loss".into(), opt(c.best.val_loss));
    best.insert("val_acc".into(), opt(c.best.val_acc));
    best.insert("epoch".into(), c.best.epoch.map_or(Dynamic::UNIT, int));
    m.insert("best".into(), View::best(best));
    m.insert("history".into(), history.clone());
    m.insert("params".into(), params.clone());
    m.insert("resumed".into(), c.resumed.into());
    View::ctx(m)
}

/// JSON (metrics.jsonl lines) to a read-only script value; non-finite numbers,
/// written as `null`, become `()`.
pub(crate) fn from_json(v: &serde_json::Value) -> Dynamic {
    rhai::serde::to_dynamic(v)
        .unwrap_or(Dynamic::UNIT)
        .into_read_only()
}

/// A script value as JSON, for events.
pub(crate) fn to_json(v: &Dynamic) -> serde_json::Value {
    rhai::serde::from_dynamic(v).unwrap_or(serde_json::Value::Null)
}

/// The most of a returned value an event records.
pub(crate) const MAX_EVENT_VALUE: usize = 4096;

/// A script value as JSON for an event, if it is small (as `this` is measured: at
/// most `MAX_EVENT_VALUE` bytes, 32 deep); else a note of what it was.
pub(crate) fn to_json_bounded(v: &Dynamic) -> serde_json::Value {
    match super::state::measure(v, MAX_EVENT_VALUE) {
        Some(_) => to_json(v),
        None => serde_json::Value::String(format!(
            "({} too large to record)",
            v.type_name().rsplit("::").next().unwrap_or("value")
        )),
    }
}

fn num(key: &'static str, v: &Dynamic) -> Result<f64, Invalid> {
    number(v).ok_or_else(|| Invalid::new(key, format!("must be a number, got {}", v.type_name())))
}

fn count(key: &'static str, v: &Dynamic) -> Result<usize, Invalid> {
    let x = num(key, v)?;
    if x.fract() != 0.0 || !(0.0..=1e15).contains(&x) {
        return Err(Invalid::new(
            key,
            format!("must be a whole number >= 0, got {x}"),
        ));
    }
    Ok(x as usize)
}

fn text(key: &'static str, v: &Dynamic) -> Result<String, Invalid> {
    v.clone()
        .into_string()
        .map_err(|t| Invalid::new(key, format!("must be a string, got {t}")))
}

/// Every key a decision may have (the book's Decisions page).
pub(crate) const DECISION_KEYS: &[&str] = &[
    "lr",
    "batch_size",
    "accumulation",
    "epochs",
    "momentum",
    "weight_decay",
    "rescale",
    "stop",
    "reason",
    "log",
    "metrics",
    "save",
    "rollback",
];

impl Decision {
    /// A decision written as JSON (a line of a run's `control.jsonl`), checked key by
    /// key exactly as a hook's returned map is: a number where a number goes, `save`
    /// `true` or a tag, `rollback` `"best"` or `"last"`, no unknown key. Validate it
    /// against the context ([`Decision::validate`]) before applying it.
    ///
    /// ```
    /// use rudder_policy::Decision;
    /// let d = Decision::from_json(&serde_json::json!({"lr": 0.01, "save": "warm"})).unwrap();
    /// assert_eq!(d.lr, Some(0.01));
    /// let e = Decision::from_json(&serde_json::json!({"lr_": 0.01})).unwrap_err();
    /// assert_eq!(e.message, "unknown decision key \"lr_\"; did you mean lr?");
    /// ```
    pub fn from_json(v: &serde_json::Value) -> Result<Decision, Invalid> {
        if !v.is_object() {
            return Err(Invalid::new(
                "decision",
                format!("a decision is a JSON object, got {}", json_type(v)),
            ));
        }
        let value = rhai::serde::to_dynamic(v)
            .map_err(|e| Invalid::new("decision", format!("cannot be read: {e}")))?;
        decision(&value)
    }
}

/// How a person names a JSON value's type.
fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A key no decision has, with the nearest that one has.
fn unknown_key(key: &str) -> Invalid {
    let near = crate::text::nearest(key, DECISION_KEYS.iter().copied())
        .map(|n| format!("; did you mean {n}?"))
        .unwrap_or_default();
    Invalid::new(key, format!("unknown decision key {key:?}{near}"))
}

/// The decision a hook returned: `()` is none; a map is checked key by key and
/// rejected whole at the first bad key.
pub(crate) fn decision(v: &Dynamic) -> Result<Decision, Invalid> {
    if v.is_unit() {
        return Ok(Decision::default());
    }
    let Some(map) = v.read_lock::<Map>() else {
        return Err(Invalid::new(
            "decision",
            format!(
                "a hook returns a map of decisions or (), got {}",
                v.type_name()
            ),
        ));
    };
    let mut d = Decision::default();
    for (k, v) in map.iter() {
        match k.as_str() {
            "lr" => d.lr = Some(num("lr", v)?),
            "batch_size" => d.batch_size = Some(count("batch_size", v)?),
            "accumulation" => d.accumulation = Some(count("accumulation", v)?),
            "epochs" => d.epochs = Some(count("epochs", v)?),
            "momentum" => d.momentum = Some(num("momentum", v)?),
            "weight_decay" => d.weight_decay = Some(num("weight_decay", v)?),
            "rescale" => {
                d.rescale = Some(
                    Rescale::from_name(&text("rescale", v)?)
                        .map_err(|m| Invalid::new("rescale", m.to_string()))?,
                )
            }
            "stop" => {
                d.stop = v
                    .as_bool()
                    .map_err(|t| Invalid::new("stop", format!("must be true or false, got {t}")))?
            }
            "reason" => d.reason = Some(text("reason", v)?),
            "log" => d.log = Some(text("log", v)?),
            "metrics" => {
                let Some(m) = v.read_lock::<Map>() else {
                    return Err(Invalid::new(
                        "metrics",
                        format!("must be a map of numbers, got {}", v.type_name()),
                    ));
                };
                let mut out = BTreeMap::new();
                for (name, x) in m.iter() {
                    out.insert(name.to_string(), num("metrics", x)?);
                }
                d.metrics = out;
            }
            "save" => {
                d.save = if let Ok(b) = v.as_bool() {
                    b.then_some(Save::Now(true))
                } else if v.is_string() {
                    Some(Save::Tag(text("save", v)?))
                } else {
                    return Err(Invalid::new(
                        "save",
                        format!("must be true, false or a tag string, got {}", v.type_name()),
                    ));
                }
            }
            "rollback" => {
                d.rollback = Some(
                    Target::from_name(&text("rollback", v)?)
                        .map_err(|m| Invalid::new("rollback", m.to_string()))?,
                )
            }
            other => return Err(unknown_key(other)),
        }
    }
    Ok(d)
}
