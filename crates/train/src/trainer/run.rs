//! A run from start to end: the `run_start` (or `resume`) event, `on_train_start`,
//! the epochs, and the end: `on_train_end` and `run_end`, or for an interrupted run
//! a checkpoint of where it is.

use rudder_core::EventKind;
use rudder_policy::{Controller, Hook};
use rudder_run::checkpoint::Partial;
use rudder_run::log::EpochRecord;
use serde_json::{Map, Value, json};

use super::{Summary, TrainError, Trainer};

impl Trainer<'_> {
    /// Runs the whole training.
    pub fn run(mut self, controller: &mut dyn Controller) -> Result<Summary, TrainError> {
        self.start()?;
        self.announce_shadowed()?;
        if self.is_root() {
            self.control = Some(super::control::Control::open(&self.cfg.out, self.cfg.watch));
        }
        self.hook(Hook::TrainStart, controller)?;
        let (last, interrupted) = self.epochs(controller)?;
        if interrupted {
            return self.interrupted(controller, last);
        }
        // The control lines written while the last epoch ran: a `save` still writes.
        self.boundary(controller, true)?;
        self.hook(Hook::TrainEnd, controller)?;
        if self.state.epoch > 0
            && let Some(name) = self.take_save()
        {
            self.write_checkpoints(&[name], controller)?;
        }
        self.learner.sync_model()?;
        let mut f = Map::new();
        if let Some(r) = &self.stop {
            f.insert("reason".into(), json!(r));
        }
        if self.world.size() > 1 {
            // Rank 0's time in the per-step collectives, for BENCHMARKS.md's figures.
            f.insert("comm_s".into(), json!(self.comm_s));
        }
        let epoch = self.state.epoch.saturating_sub(1);
        self.sinks
            .event(epoch, self.state.step, EventKind::RunEnd, f)?;
        Ok(Summary {
            epochs_run: self.state.epoch,
            steps: self.state.step,
            last,
            best: self.state.best,
            stop_reason: self.stop,
            diverged: self.diverged,
            interrupted: false,
            last_checkpoint: self.ckpt.last.clone(),
            restored: self
                .restored
                .and_then(|e| self.state.history.get(e).map(|r| (e, r.clone()))),
        })
    }

    /// The epochs until the plan, a stop or a signal: the last epoch's line, and
    /// whether a signal stopped them.
    fn epochs(
        &mut self,
        controller: &mut dyn Controller,
    ) -> Result<(Option<EpochRecord>, bool), TrainError> {
        let mut last = None;
        while self.stop.is_none() && self.state.epoch < self.state.settings.epochs {
            if self.interrupt_agreed() {
                return Ok((last, true));
            }
            self.boundary(controller, true)?;
            if self.partial.is_none() {
                self.hook(Hook::EpochStart, controller)?;
                if self.stop.is_some() {
                    break;
                }
                self.batcher.start_epoch();
                self.partial = Some(Partial::default());
            }
            self.restored = None;
            let Some(record) = self.epoch_pass(controller)? else {
                return Ok((last, true));
            };
            last = Some(record);
            self.state.epoch += 1;
            self.epoch_end_checkpoints(controller)?;
        }
        Ok((last, false))
    }

    /// The run's first event: `resume`, with where it continues and the options
    /// given, or `run_start`, with the parameters, the kernels and the ranks.
    fn start(&mut self) -> Result<(), TrainError> {
        let mut f = Map::new();
        // Where it runs: the dashboard shows the host, and finds a policy file the
        // run names relative to its working folder.
        f.insert("host".into(), json!(rudder_core::launcher::host_name()));
        if let Ok(cwd) = std::env::current_dir() {
            f.insert("cwd".into(), json!(cwd.display().to_string()));
        }
        let Some((dir, notes)) = self.resume_note.take() else {
            f.insert(
                "message".into(),
                json!(format!("{} parameters", self.param_count)),
            );
            f.insert("kernels".into(), json!(self.learner.kernels()));
            f.insert("world_size".into(), json!(self.world.size()));
            if let Some(p) = &self.cfg.provenance {
                f.insert("provenance".into(), json!(p));
            }
            f.insert("rank".into(), json!(self.world.rank()));
            if self.world.size() > 1 {
                f.insert("collective".into(), json!(self.world.name()));
            }
            return self.sinks.event(0, 0, EventKind::RunStart, f);
        };
        if let Some(d) = &dir {
            f.insert("path".into(), json!(self.relative(d)));
        }
        // Epochs as people count them: the one in progress, or the last done.
        let (epoch, step) = (self.state.epoch, self.state.step);
        let at = if self.partial.is_some() {
            format!("resumed in epoch {}, at step {step}", epoch + 1)
        } else {
            format!("resumed after epoch {epoch}, at step {step}")
        };
        let given = &self.cfg.overrides.given;
        let with = (!given.is_empty()).then(|| {
            let flags: Vec<String> = given
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{} {}",
                        rudder_core::config::flag(k),
                        rudder_core::text::clip(&v.to_string())
                    )
                })
                .collect();
            format!("with {}", flags.join(" "))
        });
        if !given.is_empty() {
            f.insert("options".into(), Value::Object(given.clone()));
        }
        let message = std::iter::once(at)
            .chain(with)
            .chain(notes)
            .collect::<Vec<_>>()
            .join("; ");
        self.sinks.progress.note(&format!("rudder: {message}"));
        f.insert("message".into(), json!(message));
        self.sinks.event(epoch, step, EventKind::Resume, f)
    }

    /// A `shadowed` event and a warning (even with `-q`) for each `--policy` name of
    /// the standard library that a file on the search path replaces.
    fn announce_shadowed(&mut self) -> Result<(), TrainError> {
        // Standard-library names are shadowed by files in the folders only (a plugin
        // may not take a library namespace), so the lock is not checked again here.
        let search = rudder_policy::SearchPath::folders_from_env();
        for (policy, path) in rudder_policy::catalog::shadowing(&self.cfg.policy, &search) {
            let message = format!(
                "--policy {policy} is {}, not the standard library's (a file on the search path shadows it)",
                path.display()
            );
            rudder_core::term::say(&format!("rudder: warning: {message}"));
            let mut f = Map::new();
            f.insert("policy".into(), json!(policy));
            f.insert("path".into(), json!(path.display().to_string()));
            f.insert("message".into(), json!(message));
            self.sinks
                .event(self.state.epoch, self.state.step, EventKind::Shadowed, f)?;
        }
        Ok(())
    }

    /// The end of a run stopped by a signal at a step boundary: a `step-N`
    /// checkpoint of where it is (mid-epoch or between epochs), then `run_end` with
    /// reason `interrupted`. `on_train_end` is not called: the run is not over.
    fn interrupted(
        mut self,
        controller: &mut dyn Controller,
        last: Option<EpochRecord>,
    ) -> Result<Summary, TrainError> {
        let name = format!("step-{}", self.state.step);
        self.write_checkpoints(std::slice::from_ref(&name), controller)?;
        self.learner.sync_model()?;
        let mut f = Map::new();
        f.insert("reason".into(), json!("interrupted"));
        let epoch =
            rudder_run::checkpoint::boundary_epoch(self.state.epoch, self.partial.is_some());
        self.sinks
            .event(epoch, self.state.step, EventKind::RunEnd, f)?;
        Ok(Summary {
            epochs_run: self.state.epoch,
            steps: self.state.step,
            last,
            best: self.state.best,
            stop_reason: Some("interrupted".into()),
            diverged: self.diverged,
            interrupted: true,
            last_checkpoint: self.ckpt.last.clone(),
            restored: None,
        })
    }
}
