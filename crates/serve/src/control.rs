//! A page's control, as a line of the run's `control.jsonl`: the decision checked as
//! `rudder ctl` checks it (keys and types; the run checks the values against its state
//! at the next step boundary), with `source: "console"`, the time it was asked and an
//! id, so the run records it as a `decision` (or `invalid_decision`) from `console`,
//! and the page finds the answer in `events.jsonl` by the id. A sweep's control goes
//! to the sweep's own `control.jsonl`, which its coordinator reads.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rudder_policy::Decision;
use serde_json::{Map, Value, json};

/// The keys a page may send: what a person steers a run with.
const KEYS: &[&str] = &[
    "stop",
    "reason",
    "save",
    "rollback",
    "lr",
    "batch_size",
    "epochs",
    "momentum",
    "weight_decay",
];

/// The stop reason of a stop from a page that gives none.
pub(crate) const STOP_REASON: &str = "console";

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Why a control was not sent.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The decision is not one a page may send (400).
    Invalid(String),
    /// Nothing trains the run now (409).
    NotRunning,
    /// The line could not be appended (500).
    Io(String),
}

/// The line for `asked` (a JSON object of [`KEYS`]), checked.
fn line_of(asked: &Value) -> Result<Map<String, Value>, Refused> {
    let Some(obj) = asked.as_object() else {
        return Err(Refused::Invalid("a control is a JSON object".into()));
    };
    if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(Refused::Invalid(format!(
            "{}: not a control (one of {})",
            rudder_core::text::clip(k),
            KEYS.join(", ")
        )));
    }
    let mut m = obj.clone();
    if m.get("stop") == Some(&json!(true)) && !m.contains_key("reason") {
        m.insert("reason".into(), json!(STOP_REASON));
    }
    let d = Decision::from_json(&Value::Object(m.clone()))
        .map_err(|e| Refused::Invalid(format!("{}: {}", e.key, e.message)))?;
    if d.is_empty() {
        return Err(Refused::Invalid("an empty decision does nothing".into()));
    }
    Ok(m)
}

/// Appends control `asked` to the running run in `dir`; its id.
pub(crate) fn send(dir: &Path, asked: &Value, running: bool) -> Result<String, Refused> {
    let m = line_of(asked)?;
    if !running {
        return Err(Refused::NotRunning);
    }
    append(dir, m)
}

/// A sweep's control (`{"pause": TRIAL}`, `stop`, `resume`: a trial's folder name, or
/// a list), checked against the sweep's trials, appended to its own `control.jsonl`,
/// which its coordinator reads; its id.
pub(crate) fn send_sweep(
    dir: &Path,
    asked: &Value,
    trials: &[String],
    running: bool,
) -> Result<String, Refused> {
    let Some(obj) = asked.as_object().filter(|o| !o.is_empty()) else {
        return Err(Refused::Invalid(
            "a sweep control is a JSON object: stop, pause or resume".into(),
        ));
    };
    for (k, v) in obj {
        if !["stop", "pause", "resume"].contains(&k.as_str()) {
            return Err(Refused::Invalid(format!(
                "{}: not a sweep control (stop, pause, resume)",
                rudder_core::text::clip(k)
            )));
        }
        let names: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        for n in names {
            if !n.as_str().is_some_and(|n| trials.iter().any(|t| t == n)) {
                return Err(Refused::Invalid(format!(
                    "{k}: {} is not a trial of this sweep",
                    rudder_core::text::clip(&n.to_string())
                )));
            }
        }
    }
    if !running {
        return Err(Refused::NotRunning);
    }
    append(dir, obj.clone())
}

/// `m` appended with its id, `source` and `asked`.
fn append(dir: &Path, mut m: Map<String, Value>) -> Result<String, Refused> {
    let id = format!(
        "console-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    m.insert("id".into(), json!(id));
    m.insert("source".into(), json!("console"));
    m.insert("asked".into(), json!(rudder_core::time::now_iso()));
    rudder_run::control::append(dir, &Value::Object(m).to_string())
        .map_err(|e| Refused::Io(format!("{}: {e}", rudder_run::control::CONTROL_FILE)))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_persons_keys_pass_and_a_stop_says_console() {
        assert!(matches!(
            line_of(&json!({"log": "x"})),
            Err(Refused::Invalid(_))
        ));
        assert!(matches!(
            line_of(&json!({"lr": "fast"})),
            Err(Refused::Invalid(_))
        ));
        assert!(matches!(line_of(&json!({})), Err(Refused::Invalid(_))));
        assert!(matches!(line_of(&json!([1])), Err(Refused::Invalid(_))));
        let m = line_of(&json!({"stop": true})).unwrap();
        assert_eq!(m["reason"], "console");
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            send(d.path(), &json!({"lr": 0.1}), false),
            Err(Refused::NotRunning)
        ));
        let id = send(d.path(), &json!({"lr": 0.1}), true).unwrap();
        let text = std::fs::read_to_string(d.path().join("control.jsonl")).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            (
                line["lr"].clone(),
                line["id"].clone(),
                line["source"].clone()
            ),
            (json!(0.1), json!(id), json!("console"))
        );
        assert!(line["asked"].as_str().unwrap().ends_with('Z'));
    }
}
