//! What `on_report` returns: a map of decisions over the population, checked key by
//! key against the trials there are (an unknown key, id or type is an error naming
//! it, and the whole report's decisions are dropped).

use std::collections::BTreeMap;

use rhai::Dynamic;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::TrialView;

/// A sweep policy's decisions at one report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepDecision {
    /// Trials to stop: each writes its checkpoint and ends (reason `scheduler`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Trials to pause: each keeps its checkpoint and frees its slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause: Vec<String>,
    /// Paused trials to run again from their checkpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resume: Vec<String>,
    /// Trials whose next epoch starts from another's newest checkpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exploit: Vec<Exploit>,
    /// New trials, by their settings over the sweep's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start: Vec<Map<String, Value>>,
    /// A line to print and record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Numbers to record in the sweep's events.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

impl SweepDecision {
    /// Whether it decides nothing.
    pub fn is_empty(&self) -> bool {
        *self == SweepDecision::default()
    }
}

/// `exploit: [#{trial, from, settings, perturb}]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exploit {
    /// The trial that copies.
    pub trial: String,
    /// The trial whose newest checkpoint (weights and optimizer state) it copies.
    pub from: String,
    /// Settings it then trains with, as values (`#{lr: 0.012}`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub settings: Map<String, Value>,
    /// Settings it then trains with, as factors over `from`'s (`#{lr: 0.8}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub perturb: BTreeMap<String, f64>,
}

const KEYS: [&str; 7] = [
    "stop", "pause", "resume", "exploit", "start", "log", "metrics",
];

fn ids(key: &str, v: &Value, trials: &[TrialView]) -> Result<Vec<String>, String> {
    let list = match v {
        Value::String(_) => vec![v.clone()],
        Value::Array(a) => a.clone(),
        _ => return Err(format!("{key}: must be a trial's id or an array of ids")),
    };
    list.iter().map(|x| id(key, x, trials)).collect()
}

fn id(key: &str, v: &Value, trials: &[TrialView]) -> Result<String, String> {
    let Some(s) = v.as_str() else {
        return Err(format!("{key}: a trial's id is a string, got {v}"));
    };
    if trials.iter().any(|t| t.id == s) {
        return Ok(s.to_string());
    }
    let near = crate::text::nearest(s, trials.iter().map(|t| t.id.as_str()))
        .map(|n| format!("; did you mean {n}?"))
        .unwrap_or_default();
    Err(format!(
        "{key}: there is no trial {:?}{near}",
        crate::text::clip(s)
    ))
}

fn exploit(v: &Value, trials: &[TrialView]) -> Result<Exploit, String> {
    let Some(m) = v.as_object() else {
        return Err("exploit: each entry is a map #{trial, from, settings, perturb}".into());
    };
    if let Some(k) = m
        .keys()
        .find(|k| !["trial", "from", "settings", "perturb"].contains(&k.as_str()))
    {
        return Err(format!(
            "exploit: unknown key {:?} (trial, from, settings, perturb)",
            crate::text::clip(k)
        ));
    }
    let need = |k: &str| m.get(k).ok_or(format!("exploit: {k} is missing"));
    let trial = id("exploit.trial", need("trial")?, trials)?;
    let from = id("exploit.from", need("from")?, trials)?;
    if trial == from {
        return Err(format!("exploit: {trial} cannot copy itself"));
    }
    let settings = match m.get("settings") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(s)) => s.clone(),
        Some(_) => return Err("exploit.settings: must be a map of settings".into()),
    };
    let mut perturb = BTreeMap::new();
    match m.get("perturb") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            for (k, f) in p {
                match f.as_f64() {
                    Some(x) if x.is_finite() && x > 0.0 => {
                        perturb.insert(k.clone(), x);
                    }
                    _ => return Err(format!("exploit.perturb.{k}: must be a positive factor")),
                }
            }
        }
        Some(_) => return Err("exploit.perturb: must be a map of factors".into()),
    }
    Ok(Exploit {
        trial,
        from,
        settings,
        perturb,
    })
}

/// Checks `v` (a map, or `()` for nothing) against `trials`.
pub(super) fn parse(v: &Dynamic, trials: &[TrialView]) -> Result<SweepDecision, String> {
    if v.is_unit() {
        return Ok(SweepDecision::default());
    }
    if !v.is_map() {
        return Err(format!(
            "on_report must return a map of decisions or nothing, got {}",
            v.type_name().rsplit("::").next().unwrap_or("a value")
        ));
    }
    let json = crate::script::convert::to_json(v);
    let map = json.as_object().cloned().unwrap_or_default();
    let mut d = SweepDecision::default();
    for (k, v) in &map {
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "stop" => d.stop = ids(k, v, trials)?,
            "pause" => d.pause = ids(k, v, trials)?,
            "resume" => d.resume = ids(k, v, trials)?,
            "exploit" => {
                let list = v.as_array().ok_or("exploit: must be an array of maps")?;
                d.exploit = list
                    .iter()
                    .map(|e| exploit(e, trials))
                    .collect::<Result<_, _>>()?;
            }
            "start" => {
                let list = v
                    .as_array()
                    .ok_or("start: must be an array of settings maps")?;
                d.start = list
                    .iter()
                    .map(|s| {
                        s.as_object()
                            .cloned()
                            .ok_or_else(|| "start: each entry is a map of settings".to_string())
                    })
                    .collect::<Result<_, _>>()?;
            }
            "log" => {
                d.log = Some(crate::text::clip(
                    &v.as_str().map_or(v.to_string(), str::to_string),
                ))
            }
            "metrics" => {
                let m = v.as_object().ok_or("metrics: must be a map of numbers")?;
                for (name, x) in m {
                    let x = x
                        .as_f64()
                        .ok_or_else(|| format!("metrics.{name}: must be a number"))?;
                    d.metrics.insert(name.clone(), x);
                }
            }
            other => {
                let near = crate::text::nearest(other, KEYS)
                    .map(|n| format!("; did you mean {n}?"))
                    .unwrap_or_default();
                return Err(format!(
                    "unknown decision {:?} for a sweep policy{near}",
                    crate::text::clip(other)
                ));
            }
        }
    }
    Ok(d)
}
