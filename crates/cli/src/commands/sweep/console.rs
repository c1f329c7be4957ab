//! A person's controls for a running sweep: lines of the sweep folder's
//! `control.jsonl` (what `rudder serve`'s sweep page appends), each `{"stop" |
//! "pause" | "resume": [TRIAL, ...]}` naming trials by their folders, with an `id`,
//! `source` and `asked` as a run's control lines have. The coordinator reads them at
//! every report and while it waits for a slot (locally), or at every look (on
//! Slurm), carries each out as it does a scheduler's decision, and records it in the
//! sweep's `events.jsonl` as a `decision` of policy `console`, or an
//! `invalid_decision` saying why (a trial that does not exist, a resume of a trial
//! not paused).

use rudder_policy::sweep::{Status, SweepDecision};
use rudder_run::control::Line;
use serde_json::{Map, Value, json};

use super::coord::{Coordinator, State};

/// The keys a line may hold besides its decision's.
const BESIDES: [&str; 3] = ["id", "source", "asked"];

impl Coordinator {
    /// The new lines of the sweep's channel, carried out: whether any was.
    pub(crate) fn heed_console(&self, st: &mut State) -> bool {
        let lines = {
            let mut reader = self.console.lock().unwrap_or_else(|e| e.into_inner());
            if !reader.changed() {
                return false;
            }
            reader.read()
        };
        let mut any = false;
        for line in lines {
            let mut event = Map::new();
            event.insert("policy".into(), json!("console"));
            event.insert("line".into(), json!(line.number));
            match self.console_line(st, &line, &mut event) {
                Ok(d) => {
                    event.insert("kind".into(), json!("decision"));
                    event.insert(
                        "decision".into(),
                        serde_json::to_value(&d).unwrap_or(Value::Null),
                    );
                    self.carry_out(st, 0, d);
                    any = true;
                }
                Err(message) => {
                    event.insert("kind".into(), json!("invalid_decision"));
                    event.insert("message".into(), json!(message));
                }
            }
            self.event(Value::Object(event));
        }
        any
    }

    /// One line checked against the population as it stands.
    fn console_line(
        &self,
        st: &State,
        line: &Line,
        event: &mut Map<String, Value>,
    ) -> Result<SweepDecision, String> {
        let text = line.text.as_ref().map_err(Clone::clone)?;
        let v: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON ({e})"))?;
        let Value::Object(mut m) = v else {
            return Err("a control is a JSON object".into());
        };
        for k in BESIDES {
            if let Some(x) = m.remove(k).filter(|x| x.is_string() || x.is_number()) {
                event.insert(k.into(), x);
            }
        }
        let mut d = SweepDecision::default();
        for (k, v) in m {
            let names: Vec<String> = match v {
                Value::String(s) => vec![s],
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => return Err(format!("{k}: a trial's folder name, or a list of them")),
            };
            for n in &names {
                let Some(s) = st.slots.iter().find(|s| &s.view.id == n) else {
                    return Err(format!("{k}: no trial {}", rudder_core::text::clip(n)));
                };
                let status = s.view.status;
                let fits = match k.as_str() {
                    "resume" => status == Status::Paused,
                    "pause" | "stop" => {
                        matches!(status, Status::Running | Status::Pending | Status::Paused)
                    }
                    _ => {
                        return Err(format!(
                            "{}: not a sweep control (stop, pause, resume)",
                            rudder_core::text::clip(&k)
                        ));
                    }
                };
                if !fits {
                    return Err(format!("{k}: trial {n} is {}", status.name()));
                }
            }
            match k.as_str() {
                "stop" => d.stop = names,
                "pause" => d.pause = names,
                _ => d.resume = names,
            }
        }
        if d.is_empty() {
            return Err("an empty control does nothing".into());
        }
        Ok(d)
    }
}
