//! The trainer's sinks, in order: the run log (its record: a failure ends the run),
//! the progress lines, then the others (the live report, TensorBoard), each dropped
//! with a note when it fails.

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
}

impl Sinks {
    pub(super) fn new(log: RunLog, progress: Progress) -> Sinks {
        Sinks {
            log,
            progress,
            others: Vec::new(),
        }
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
        self.each(|s| s.event(&event, &line))
    }

    /// An epoch's metrics line, with the run's lines so far (it last).
    pub(super) fn epoch(
        &mut self,
        record: &EpochRecord,
        history: &[Value],
    ) -> Result<(), TrainError> {
        self.log.epoch(record, history)?;
        self.progress.epoch(record, history)?;
        self.each(|s| s.epoch(record, history))
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
                        self.progress.note(&note);
                        self.others.remove(i);
                    }
                    None => return Err(e.into()),
                },
            }
        }
        Ok(())
    }
}
