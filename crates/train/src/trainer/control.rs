//! The run's control channel on the trainer's side: rank 0 reads the new lines of
//! `control.jsonl` at a step boundary when the file changed, checks each as a
//! policy's decision, records it as a `decision` or `invalid_decision` from
//! `control`, and hands the merged decision to the boundary that shares and applies
//! it.
//!
//! When it looks: with `--watch auto`, when a native file event says the file
//! changed (one atomic load per step otherwise); where native events fail, and with
//! `--watch poll`, by its length at most every 200 ms; with `--watch off`, at each
//! epoch's start only. It also looks at each epoch's start and end (after
//! `on_epoch_end`, before the epoch is recorded and checkpointed) whatever the mode.

use std::path::Path;
use std::time::{Duration, Instant};

use rudder_core::{EventKind, WatchMode};
use rudder_policy::Decision;
use rudder_policy::watch::Watcher;
use rudder_run::control::{Line, Reader};
use serde_json::{Map, Value, json};

use super::{TrainError, Trainer};

/// How often the file's length is looked at when no native events come.
const POLL: Duration = Duration::from_millis(200);

/// What a control line's events name as their policy and their hook.
pub(super) const CONTROL: &str = "control";

/// What a line from a page of `rudder serve` names as its policy.
const CONSOLE: &str = "console";

/// The stop reason of a `stop` line that gives none.
const STOP_REASON: &str = "stopped through control.jsonl";

/// The channel as rank 0 holds it: where it has read to and how it hears of more.
pub(super) struct Control {
    reader: Reader,
    /// Native events for `control.jsonl` alone.
    watcher: Option<Watcher>,
    /// Polling by length (no native events): when it last looked; `None` with
    /// `--watch off` or native events.
    polled: Option<Instant>,
}

impl Control {
    /// The channel of the run in `dir`, read on from where the run (before a
    /// resume, too) had read it.
    pub(super) fn open(dir: &Path, mode: WatchMode) -> Control {
        let reader = Reader::open(dir);
        let watcher = match mode {
            WatchMode::Auto => Watcher::native_exact(&[reader.path().to_path_buf()]),
            _ => None,
        };
        let polled = (watcher.is_none() && mode != WatchMode::Off).then(Instant::now);
        Control {
            reader,
            watcher,
            polled,
        }
    }

    /// Whether to read now: at an epoch's start when the file's length changed; at a
    /// step when its event came (or its poll is due and the length changed).
    fn due(&mut self, epoch_start: bool) -> bool {
        if epoch_start {
            if let Some(w) = &self.watcher {
                w.take();
            }
            return self.reader.changed();
        }
        if let Some(w) = &self.watcher {
            return w.take() || self.reader.has_more();
        }
        match &mut self.polled {
            Some(t) if t.elapsed() >= POLL => {
                *t = Instant::now();
                self.reader.changed()
            }
            _ => self.reader.has_more(),
        }
    }
}

impl Trainer<'_> {
    /// The control channel's decision at this boundary (rank 0): the new lines, each
    /// checked and recorded, merged in order; `None` when there was nothing new or
    /// nothing valid.
    pub(super) fn control_decision(
        &mut self,
        epoch_start: bool,
    ) -> Result<Option<Decision>, TrainError> {
        let Some(c) = self.control.as_mut() else {
            return Ok(None);
        };
        if !c.due(epoch_start) {
            return Ok(None);
        }
        let lines = c.reader.read();
        let mut merged: Option<Decision> = None;
        for line in lines {
            if let Some(d) = self.control_line(&line)? {
                merged = Some(merged.unwrap_or_default().then(d));
            }
        }
        Ok(merged)
    }

    /// One line: parsed, checked as a policy's decision, recorded.
    fn control_line(&mut self, line: &Line) -> Result<Option<Decision>, TrainError> {
        let mut f = Map::new();
        f.insert("policy".into(), json!(CONTROL));
        f.insert("hook".into(), json!(CONTROL));
        if line.number > 0 {
            f.insert("line".into(), json!(line.number));
        }
        f.insert("end".into(), json!(line.end));
        let checked = match &line.text {
            Ok(text) => self.control_parse(text, &mut f),
            Err(why) => Err(("line".to_string(), why.clone())),
        };
        let (kind, decision) = match checked {
            Ok(d) => {
                f.insert(
                    "decision".into(),
                    serde_json::to_value(&d).unwrap_or(Value::Null),
                );
                (EventKind::Decision, Some(d))
            }
            Err((key, message)) => {
                let place = match line.number {
                    0 => String::new(),
                    n => format!("line {n}: "),
                };
                self.sinks
                    .progress
                    .note(&rudder_core::text::one_line(&format!(
                        "rudder: control.jsonl {place}{message}; dropped"
                    )));
                f.insert("key".into(), json!(key));
                f.insert("message".into(), json!(message));
                (EventKind::InvalidDecision, None)
            }
        };
        self.sinks
            .event(self.state.epoch, self.state.step, kind, f)?;
        Ok(decision)
    }

    /// A line's decision, validated whole against the run as it stands; its `id`
    /// (if any) goes into the event. The error names the key at fault.
    fn control_parse(
        &self,
        text: &str,
        f: &mut Map<String, Value>,
    ) -> Result<Decision, (String, String)> {
        let mut v: Value = serde_json::from_str(text).map_err(|e| {
            (
                "line".to_string(),
                format!("is not JSON ({e}): {}", rudder_core::text::clip(text)),
            )
        })?;
        if let Some(obj) = v.as_object_mut()
            && let Some(id) = obj.remove("id")
        {
            match id {
                Value::String(s) if s.len() <= 128 => {
                    f.insert("id".into(), Value::String(s));
                }
                Value::Number(n) => {
                    f.insert("id".into(), Value::Number(n));
                }
                _ => {
                    return Err((
                        "id".into(),
                        "id must be a number or a string of at most 128 bytes".into(),
                    ));
                }
            }
        }
        if let Some(obj) = v.as_object_mut() {
            who_asked(obj, f)?;
        }
        let invalid =
            |e: rudder_policy::Invalid| (e.key.clone(), format!("{}: {}", e.key, e.message));
        let mut d = Decision::from_json(&v).map_err(invalid)?;
        let ctx = self.state.ctx();
        d.validate(&ctx)
            .and_then(|()| self.can_roll_back(&d))
            .map_err(invalid)?;
        if d.is_empty() {
            return Err(("decision".into(), "an empty decision does nothing".into()));
        }
        if d.stop && d.reason.is_none() {
            d.reason = Some(STOP_REASON.into());
        }
        Ok(d)
    }
}

/// A line's `source` and `asked`: a page of `rudder serve` sends `source: "console"`
/// (its events then name `console` as their policy) and the time it was asked.
fn who_asked(
    obj: &mut Map<String, Value>,
    f: &mut Map<String, Value>,
) -> Result<(), (String, String)> {
    match obj.remove("source") {
        None => {}
        Some(Value::String(s)) if s == CONSOLE => {
            f.insert("policy".into(), json!(CONSOLE));
        }
        Some(_) => {
            return Err((
                "source".into(),
                format!("source must be \"{CONSOLE}\" (a page of rudder serve) or absent"),
            ));
        }
    }
    match obj.remove("asked") {
        None => Ok(()),
        Some(Value::String(s)) if s.len() <= 64 => {
            f.insert("asked".into(), Value::String(s));
            Ok(())
        }
        Some(_) => Err((
            "asked".into(),
            "asked must be a time of at most 64 bytes".into(),
        )),
    }
}
