//! What a run reports as it goes, and where it goes. The trainer builds one typed
//! [`Event`] per thing that happened and hands it, and each finished epoch's
//! metrics line, to its sinks in order: the run log (`events.jsonl`,
//! `metrics.jsonl`), the progress lines, the live report, TensorBoard. It writes
//! none of them itself.

use rudder_core::EventKind;
use serde_json::{Map, Value};

use crate::log::{EpochRecord, RunLog};

/// One line of `events.jsonl`: when, at which epoch (0-based) and step, what, and
/// the kind's own fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// UTC, as `2026-11-27T04:26:00.123Z`.
    pub time: String,
    /// The epoch it belongs to, 0-based.
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: u64,
    /// What happened.
    pub kind: EventKind,
    /// The kind's fields (`message`, `path`, `decision`, ...).
    pub fields: Map<String, Value>,
}

impl Event {
    /// An event of `kind` now, at `epoch` and `step`.
    pub fn new(epoch: usize, step: u64, kind: EventKind, fields: Map<String, Value>) -> Event {
        Event {
            time: rudder_core::time::now_iso(),
            epoch,
            step,
            kind,
            fields,
        }
    }

    /// As `events.jsonl` writes it: `time`, `epoch`, `step`, `kind`, then the fields.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("time".into(), self.time.clone().into());
        obj.insert("epoch".into(), self.epoch.into());
        obj.insert("step".into(), self.step.into());
        obj.insert("kind".into(), self.kind.as_str().into());
        obj.extend(self.fields.clone());
        Value::Object(obj)
    }
}

/// A place a run's events and epochs go.
pub trait Sink {
    /// Something happened (`line` is the event as `events.jsonl` has it).
    fn event(&mut self, event: &Event, line: &Value) -> std::io::Result<()> {
        let _ = (event, line);
        Ok(())
    }

    /// An epoch ended: its metrics line, and the run's lines so far (it last).
    fn epoch(&mut self, record: &EpochRecord, history: &[Value]) -> std::io::Result<()> {
        let _ = (record, history);
        Ok(())
    }

    /// What to say when this sink fails with `error`: `Some(note)`, the sink is
    /// dropped and the run goes on; `None` (the run's own record), the run ends.
    fn dropped(&self, error: &std::io::Error) -> Option<String> {
        let _ = error;
        None
    }

    /// What a `sink_error` event calls this sink (`tensorboard`, `report`).
    fn name(&self) -> &'static str {
        "output"
    }
}

/// The run's own record: every event to `events.jsonl`, every epoch to
/// `metrics.jsonl`, each line flushed. A failure ends the run.
impl Sink for RunLog {
    fn event(&mut self, _event: &Event, line: &Value) -> std::io::Result<()> {
        self.event_line(line)
    }

    fn epoch(&mut self, record: &EpochRecord, _history: &[Value]) -> std::io::Result<()> {
        self.epoch_line(record)
    }
}
