//! Between the host and scripts: the `ctx` map a hook sees, and the decision map a
//! hook returns, checked key by key (numbers may be integer or float).

use std::collections::BTreeMap;
use std::sync::Arc;

use rhai::{Dynamic, Map};

use super::host::number;
use super::strict::{BEST_FIELDS, FIELDS, View};
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
    ctx_cached(&mut Arc::new(Map::new()), c, params, history)
}

/// [`ctx_map`] through `cache`, the policy's last `ctx`: its map is updated in place
/// when nothing else holds it (a hook's `ctx` is dropped when the hook returns), so a
/// call builds no map; a copy a script kept is copied before (`Arc::make_mut`) and
/// keeps its values. Every field is written at every call.
pub(crate) fn ctx_cached(
    cache: &mut Arc<Map>,
    c: &Ctx,
    params: &Dynamic,
    history: &Dynamic,
) -> Dynamic {
    let m = Arc::make_mut(cache);
    if m.is_empty() {
        for name in FIELDS.iter() {
            m.insert((*name).into(), Dynamic::UNIT);
        }
        let best = BEST_FIELDS.iter().map(|k| ((*k).into(), Dynamic::UNIT));
        m.insert("best".into(), View::best(best.collect()));
    }
    for (key, v) in m.iter_mut() {
        set_field(key, v, c, params, history);
    }
    View::ctx_shared(cache.clone())
}

/// Field `key` of `ctx` for `c`.
fn set_field(key: &str, v: &mut Dynamic, c: &Ctx, params: &Dynamic, history: &Dynamic) {
    let s = &c.settings;
    *v = match key {
        "epoch" => int(c.epoch),
        // For messages: people count epochs from 1.
        "epoch_number" => int(c.epoch + 1),
        "epochs" => int(s.epochs),
        "step" => Dynamic::from_int(c.step as rhai::INT),
        "steps_per_epoch" => int(c.steps_per_epoch),
        "lr" => Dynamic::from_float(s.lr),
        "base_lr" => Dynamic::from_float(c.base_lr),
        "batch_size" => int(s.batch_size),
        "base_batch_size" => int(c.base_batch_size),
        "accumulation" => int(s.accumulation),
        "momentum" => Dynamic::from_float(s.momentum),
        "weight_decay" => Dynamic::from_float(s.weight_decay),
        "optimizer" => {
            // A string is allocated only when it changes.
            if v.read_lock::<rhai::ImmutableString>()
                .is_some_and(|o| o.as_str() == c.optimizer)
            {
                return;
            }
            c.optimizer.into()
        }
        "dataset_size" => int(c.dataset_size),
        "best" => {
            if let Some(mut best) = v.write_lock::<View>() {
                best.update(|b| {
                    // In place: the keys are there from the first call (BEST_FIELDS).
                    for (k, x) in b.iter_mut() {
                        *x = match k.as_str() {
                            "val_loss" => opt(c.best.val_loss),
                            "val_acc" => opt(c.best.val_acc),
                            _ => c.best.epoch.map_or(Dynamic::UNIT, int),
                        };
                    }
                });
            }
            return;
        }
        "history" => history.clone(),
        "params" => params.clone(),
        "resumed" => c.resumed.into(),
        // Every metric, `()` where the trainer has none (regression's for classification).
        metric => opt(c.metrics.get(metric)),
    };
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
