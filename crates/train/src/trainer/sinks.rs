//! The trainer's sinks, in order: the run log (its record: a failure ends the run),
//! the progress lines, then the others (the live report, TensorBoard), each dropped
//! when it fails, with a line on stderr and a `sink_error` event.

use rudder_core::EventKind;
use rudder_run::log::{EpochRecord, RunLog};
use rudder_run::sink::{Event, Sink};
use serde_json::{Map, Value};

use super::{Progress, TrainError};

pub(super) struct Sinks {
    /// `events.jsonl`, `metrics.jsonl`, `steps.jsonl`.
    pub(super) log: RunLog,
    /// The progress bar and per-epoch lines on stderr.
    pub(super) progress: Progress,
    others: Vec<Box<dyn Sink>>,
    /// Outputs that failed since the last event: (sink, message), for `sink_error`.
    failed: Vec<(&'static str, String)>,
}

impl Sinks {
    pub(super) fn new(log: RunLog, progress: Progress) -> Sinks {
        Sinks {
            log,
            progress,
            others: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// An output `sink` that failed with `message`: said on stderr (`-q` or not) and
    /// recorded as a `sink_error` event with the next event or epoch.
    pub(super) fn failed(&mut self, sink: &'static str, message: String) {
        rudder_core::term::say(&format!("rudder: {message}"));
        self.failed.push((sink, message));
    }

    /// A checkpoint `name` that was not written (`message` says why): a line on
    /// stderr (`-q` or not) and a `checkpoint` event with `reason`.
    pub(super) fn failed_checkpoint(
        &mut self,
        epoch: usize,
        step: u64,
        name: &str,
        message: String,
    ) -> Result<(), TrainError> {
        rudder_core::term::say(&format!("rudder: {message}"));
        let mut f = Map::new();
        f.insert("path".into(), format!("checkpoints/{name}").into());
        f.insert("reason".into(), message.into());
        self.event(epoch, step, EventKind::Checkpoint, f)
    }

    /// The `sink_error` events of the failures since the last call, to the run log.
    fn record_failures(&mut self, epoch: usize, step: u64) -> Result<(), TrainError> {
        for (sink, message) in std::mem::take(&mut self.failed) {
            let mut f = Map::new();
            f.insert("sink".into(), sink.into());
            f.insert("message".into(), message.into());
            let event = Event::new(epoch, step, EventKind::SinkError, f);
            self.log.event(&event, &event.to_value())?;
        }
        Ok(())
    }

    /// Adds `sink` after the others.
    pub(super) fn add(&mut self, sink: Box<dyn Sink>) {
        self.others.push(sink);
    }

    /// A rank other than 0: no report, no progress, no TensorBoard.
    pub(super) fn follower(&mut self) {
        self.others.clear();
        self.progress = Progress::new(true);
    }

    /// Records an event of `kind` at `epoch` and `step` with `fields` everywhere.
    pub(super) fn event(
        &mut self,
        epoch: usize,
        step: u64,
        kind: EventKind,
        fields: Map<String, Value>,
    ) -> Result<(), TrainError> {
        let event = Event::new(epoch, step, kind, fields);
        let line = event.to_value();
        self.log.event(&event, &line)?;
        self.each(|s| s.event(&event, &line))?;
        self.record_failures(epoch, step)
    }

    /// An epoch's metrics line, with the run's lines so far (it last).
    pub(super) fn epoch(
        &mut self,
        record: &EpochRecord,
        history: &[Value],
    ) -> Result<(), TrainError> {
        self.log.epoch(record, history)?;
        self.progress.epoch(record, history)?;
        self.each(|s| s.epoch(record, history))?;
        self.record_failures(record.epoch, record.step)
    }

    /// `f` on each of the others; one that fails and may be dropped is, with its
    /// note; one that may not ends the run.
    fn each(
        &mut self,
        mut f: impl FnMut(&mut dyn Sink) -> std::io::Result<()>,
    ) -> Result<(), TrainError> {
        let mut i = 0;
        while i < self.others.len() {
            match f(self.others[i].as_mut()) {
                Ok(()) => i += 1,
                Err(e) => match self.others[i].dropped(&e) {
                    Some(note) => {
                        let sink = self.others.remove(i).name();
                        self.failed(sink, note);
                    }
                    None => return Err(e.into()),
                },
            }
        }
        Ok(())
    }
}
