//! The events a `Policies` keeps: as they came, made JSON only when read.

use serde_json::{Value, json};

/// An event: a policy's, with the epoch and step it came at, or the caller's own.
pub(crate) enum Event {
    Policy(rudder_policy::PolicyEvent, usize, u64),
    Own(Value),
}

impl Event {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Event::Own(v) => v.clone(),
            Event::Policy(e, epoch, step) => match serde_json::to_value(e) {
                Ok(Value::Object(mut m)) => {
                    m.insert("epoch".into(), json!(epoch));
                    m.insert("step".into(), json!(step));
                    Value::Object(m)
                }
                _ => Value::Null,
            },
        }
    }
}
