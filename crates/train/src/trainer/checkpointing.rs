//! The trainer's side of checkpoints: when they are written and what goes in them,
//! `save` and `rollback` decisions, and rebuilding a trainer from a checkpoint for
//! `--resume`. The files themselves are `rudder_run::checkpoint`'s.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{SHUFFLE_SALT, TrainError, Trainer};
use rudder_core::EventKind;
use rudder_policy::{Controller, Decision, EpochMetrics, Hook, Invalid, Save, Target};
use rudder_run::checkpoint::{self, CheckpointError, Loaded, Shuffle, Snapshot};

/// Whether checkpoint `l` can continue a run of `seed` on `train_len` examples: its
/// data order, position and settings must fit. Checked before a resume changes
/// anything, and again when it loads.
pub fn fits(l: &Loaded, seed: u64, train_len: usize) -> Result<(), CheckpointError> {
    let state_path = l.dir.join(checkpoint::STATE_FILE);
    let bad = |msg: String| checkpoint::fault(&state_path, msg);
    let s = &l.state;
    if s.rng.seed != seed ^ SHUFFLE_SALT {
        return Err(bad(format!(
            "its data order comes from another seed than --seed {seed} (a resume with different options?)"
        )));
    }
    if s.rng.cursor > train_len || (s.rng.shuffles == 0 && s.rng.cursor != train_len) {
        return Err(bad(format!(
            "rng.cursor {} does not fit the {train_len} training examples (a resume on other data?)",
            s.rng.cursor
        )));
    }
    if s.settings.batch_size == 0
        || s.settings.batch_size > train_len
        || s.settings.accumulation == 0
    {
        return Err(bad(format!(
            "settings: batch size {} / accumulation {} do not fit {train_len} examples",
            s.settings.batch_size, s.settings.accumulation
        )));
    }
    Ok(())
}

impl Trainer<'_> {
    /// Continues from checkpoint `l`: weights, optimizer, settings, counters, data
    /// order and each policy's `this`. The run's logs must already be cut back to the
    /// checkpoint's sizes (`RunLog::reopen`).
    pub fn resume_from(
        &mut self,
        l: Loaded,
        controller: &mut dyn Controller,
    ) -> Result<(), CheckpointError> {
        fits(&l, self.cfg.seed, self.data.train.len())?;
        if !self
            .batcher
            .restore(l.state.rng.shuffles, l.state.rng.cursor)
        {
            return Err(checkpoint::fault(
                &l.dir.join(checkpoint::STATE_FILE),
                "rng does not replay",
            ));
        }
        self.restore_weights(&l)?;
        let s = l.state;
        self.state.history =
            rudder_run::files::read_jsonl(&self.sinks.log.dir().join("metrics.jsonl"))
                .map_err(|e| CheckpointError::Log(e.to_string()))?;
        // As the run had them (a `null` metric was NaN).
        if let Some(h) = self.state.history.last().and_then(Value::as_object) {
            self.state.metrics = EpochMetrics::from_json(h);
        }
        // The divergence guard's reference: the run's first epoch's loss (its first
        // step's is not kept), not the resumed run's first step, far down the curve.
        self.first_loss = self
            .state
            .history
            .first()
            .and_then(|h| h.get("train_loss"))
            .and_then(Value::as_f64)
            .filter(|l| l.is_finite());
        self.state.settings = s.settings;
        // The options given with `--resume` take over from here.
        let o = &self.cfg.overrides;
        let set = &mut self.state.settings;
        if let Some(e) = o.epochs {
            set.epochs = e;
        }
        if let Some(lr) = o.lr {
            set.lr = lr;
        }
        if let Some(b) = o.batch_size {
            set.batch_size = b.min(self.data.train.len());
        }
        if let Some(a) = o.accumulation {
            set.accumulation = a;
        }
        if let Some(m) = o.momentum {
            set.momentum = m;
        }
        if let Some(w) = o.weight_decay {
            set.weight_decay = w;
        }
        self.sync_hyper();
        self.state.step = s.step;
        self.state.epoch = s.epoch;
        self.partial = s.partial;
        self.state.best = s.best;
        self.policy_metrics = s.policy_metrics;
        if s.monitored.metric == self.ckpt.monitored.metric {
            self.ckpt.monitored = s.monitored;
        }
        self.ckpt.last = Some(l.dir.clone());
        let notes = controller.restore(&s.policies);
        self.state.resumed = true;
        self.resume_note = Some((Some(l.dir), notes));
        Ok(())
    }

    /// Puts a checkpoint's weights (and running statistics) and optimizer state into
    /// the learner: what a resume and a rollback share.
    fn restore_weights(&mut self, l: &Loaded) -> Result<(), CheckpointError> {
        checkpoint::load_model(self.learner.model(), &l.model, &l.dir)?;
        let path = l.dir.join(checkpoint::OPTIMIZER_FILE);
        let fault = |e: candle_core::Error| checkpoint::fault(&path, e);
        self.learner.reload_model().map_err(fault)?;
        self.learner
            .load_optimizer_state(&l.optimizer, l.state.optimizer_steps)
            .map_err(fault)
    }

    /// A `--resume` of a run that had no checkpoint yet and finished no epoch: it
    /// starts over (its logs are already emptied), and the `resume` event says so.
    pub fn restart(&mut self) {
        self.resume_note = Some((None, vec!["no checkpoint yet: the run starts over".into()]));
    }

    /// Adds `notes` (newer checkpoints that did not validate) to the `resume` event.
    pub fn note_skipped(&mut self, notes: Vec<String>) {
        if let Some((_, all)) = &mut self.resume_note {
            all.extend(notes.into_iter().map(|n| format!("skipped {n}")));
        }
    }

    /// Adds `notes` (locked plugins that changed since the run's last start) to the
    /// `resume` event.
    pub fn note(&mut self, notes: Vec<String>) {
        if let Some((_, all)) = &mut self.resume_note {
            all.extend(notes);
        }
    }

    /// A rollback needs its checkpoint: without one the decision is rejected whole.
    pub(super) fn can_roll_back(&self, d: &Decision) -> Result<(), Invalid> {
        match d.rollback {
            Some(Target::Best) if checkpoint::locate(&self.ckpt.root, "best").is_none() => {
                Err(Invalid::new("rollback", "there is no best checkpoint yet"))
            }
            Some(Target::Last) if self.ckpt.last.is_none() => Err(Invalid::new(
                "rollback",
                "no checkpoint has been written yet",
            )),
            Some(Target::Tag(ref t)) if checkpoint::locate(&self.ckpt.root, t).is_none() => Err(
                Invalid::new("rollback", format!("there is no checkpoint tagged {t:?}")),
            ),
            _ => Ok(()),
        }
    }

    /// The checkpoints due at the end of an epoch (`self.state.epoch` is the next one):
    /// `epoch-N` every `--checkpoint-every` epochs or on a `save: true`, a tagged
    /// one, and `best` when the monitored metric improved.
    pub(super) fn epoch_end_checkpoints(
        &mut self,
        controller: &mut dyn Controller,
    ) -> Result<(), TrainError> {
        let mut names = Vec::new();
        if self.ckpt.every > 0 && self.state.epoch.is_multiple_of(self.ckpt.every) {
            names.push(format!("epoch-{}", self.state.epoch - 1));
        }
        if let Some(name) = self.take_save()
            && !names.contains(&name)
        {
            names.push(name);
        }
        if let Some((value, epoch)) = self.ckpt.improved.take()
            && !self.ckpt.rolled_back
        {
            let mon = &mut self.ckpt.monitored;
            (mon.value, mon.epoch) = (Some(value), Some(epoch));
            names.push("best".into());
        }
        self.ckpt.rolled_back = false;
        if names.is_empty() {
            return Ok(());
        }
        self.write_checkpoints(&names, controller)
    }

    /// The folder name of a pending `save` decision, taken: its tag, else `step-N`
    /// inside an epoch or `epoch-N` at its end.
    pub(super) fn take_save(&mut self) -> Option<String> {
        Some(match self.ckpt.pending.take()? {
            Save::Tag(t) => t,
            Save::Now(_) if self.partial.is_some() => format!("step-{}", self.state.step),
            _ => format!("epoch-{}", self.state.epoch - 1),
        })
    }

    /// `path` relative to the run directory, for events.
    pub(super) fn relative(&self, path: &Path) -> String {
        path.strip_prefix(self.sinks.log.dir())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Writes the current state as each of `names` (all the same state). The events
    /// come first, so the log sizes a checkpoint records include them; a write that
    /// fails is reported and training goes on.
    pub(super) fn write_checkpoints(
        &mut self,
        names: &[String],
        controller: &mut dyn Controller,
    ) -> Result<(), TrainError> {
        if !self.is_root() {
            // Rank 0 writes the checkpoints; a rollback tells the others which to read.
            return Ok(());
        }
        let epoch = checkpoint::boundary_epoch(self.state.epoch, self.partial.is_some());
        for name in names {
            let mut f = Map::new();
            f.insert("path".into(), json!(format!("checkpoints/{name}")));
            self.sinks
                .event(epoch, self.state.step, EventKind::Checkpoint, f)?;
        }
        self.learner.sync_model()?;
        let model = self.learner.model();
        let tensors: Vec<(String, candle_core::Tensor)> = model
            .params()
            .into_iter()
            .chain(model.buffers())
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        let optimizer = self.learner.optimizer_state()?;
        let state = self.checkpoint_state(controller)?;
        let snap = Snapshot {
            state: &state,
            model: &tensors,
            optimizer: &optimizer,
        };
        // About what one checkpoint takes on disk; with less free, none is written
        // (a write would fail half-way, or fill the disk the logs need).
        let need = tensor_bytes(&tensors) + tensor_bytes(&optimizer) + (1 << 20);
        let _ = std::fs::create_dir_all(&self.ckpt.root);
        let free = checkpoint::free_bytes(&self.ckpt.root);
        let mut written = Vec::new();
        for name in names {
            if let Some(free) = free.filter(|f| *f < 2 * need) {
                let msg = format!(
                    "checkpoint {name} not written: {} MiB free on its disk, a checkpoint takes about {} MiB; training goes on",
                    free >> 20,
                    need.div_ceil(1 << 20)
                );
                self.sinks
                    .failed_checkpoint(epoch, self.state.step, name, msg)?;
                continue;
            }
            match checkpoint::write(&self.ckpt.root, name, &snap) {
                Ok(_) => written.push(self.ckpt.root.join(name)),
                Err(e) => {
                    let msg = format!("checkpoint {name} failed: {e}; training goes on");
                    self.sinks
                        .failed_checkpoint(epoch, self.state.step, name, msg)?;
                }
            }
        }
        // `last` is the first written (`epoch-N` before `best`).
        if let Some(first) = written.into_iter().next() {
            self.ckpt.last = Some(first);
        }
        self.prune();
        Ok(())
    }

    /// Periodic checkpoints beyond `--keep-last` and tagged ones beyond
    /// `--keep-tagged`, deleted (moved aside first: a kill here leaves no half
    /// checkpoint); never the newest.
    fn prune(&self) {
        let root = &self.ckpt.root;
        let mut old = Vec::new();
        if self.ckpt.keep > 0 {
            old.extend(checkpoint::beyond_keep(root, self.ckpt.keep));
        }
        if self.ckpt.keep_tagged > 0 {
            old.extend(checkpoint::beyond_keep_tagged(root, self.ckpt.keep_tagged));
        }
        for old in old {
            if Some(&old) != self.ckpt.last.as_ref() {
                let _ = checkpoint::remove(&old);
            }
        }
    }

    /// Everything but the tensors a checkpoint holds now, `state.json`.
    fn checkpoint_state(
        &mut self,
        controller: &mut dyn Controller,
    ) -> Result<checkpoint::State, TrainError> {
        let (shuffles, cursor) = self.batcher.position();
        Ok(checkpoint::State {
            format: checkpoint::FORMAT.into(),
            epoch: self.state.epoch,
            step: self.state.step,
            partial: self.partial,
            settings: self.state.settings,
            optimizer_steps: self.learner.optimizer_steps(),
            rng: Shuffle {
                seed: self.cfg.seed ^ SHUFFLE_SALT,
                shuffles,
                cursor,
            },
            best: self.state.best,
            monitored: self.ckpt.monitored.clone(),
            policies: controller.snapshot(),
            logs: self.sinks.log.sizes()?,
            policy_metrics: self.policy_metrics.clone(),
            checksums: Default::default(),
        })
    }

    /// The checkpoint a rollback to `target` reads.
    pub(super) fn rollback_dir(&self, target: &Target) -> Option<std::path::PathBuf> {
        match target {
            Target::Best => checkpoint::locate(&self.ckpt.root, "best"),
            Target::Tag(t) => checkpoint::locate(&self.ckpt.root, t),
            _ => self.ckpt.last.clone(),
        }
    }

    /// Restores weights and optimizer state from the `target` checkpoint; settings,
    /// counters and data order go on. A checkpoint that cannot be read is reported
    /// and training goes on as it was.
    pub(super) fn rollback(
        &mut self,
        hook: &'static str,
        target: &Target,
    ) -> Result<(), TrainError> {
        let dir = match self.rollback_from.take() {
            Some(d) if !self.is_root() => Some(d),
            _ => self.rollback_dir(target),
        };
        let result = dir
            .ok_or_else(|| CheckpointError::Missing(target.name().to_string()))
            .and_then(|d| checkpoint::read(&d))
            .and_then(|l| self.restore_weights(&l).map(|()| l));
        let mut f = Map::new();
        f.insert("hook".into(), json!(hook));
        match result {
            Ok(l) => {
                let path = self.relative(&l.dir);
                let when = if l.state.partial.is_some() {
                    format!("in epoch {}", l.state.epoch + 1)
                } else {
                    format!("after epoch {}", l.state.epoch)
                };
                let msg = format!(
                    "rolled back to {path} ({when}, step {}{})",
                    l.state.step,
                    l.state.monitored.value.map_or(String::new(), |v| format!(
                        ", {} {}",
                        l.state.monitored.metric,
                        rudder_core::text::fmt_metric(v)
                    ))
                );
                self.sinks.progress.note(&format!("rudder: {msg}"));
                f.insert("path".into(), json!(path));
                f.insert("message".into(), json!(msg));
                // A rollback before the epoch's validation (`on_step`,
                // `on_epoch_start`) leaves the weights it is measured on.
                self.ckpt.rolled_back |= hook == Hook::EpochEnd.function();
                self.restored =
                    (l.state.partial.is_none() && l.state.epoch > 0).then(|| l.state.epoch - 1);
            }
            Err(e) => {
                let msg = format!(
                    "rollback to {} failed: {e}; training goes on",
                    target.name()
                );
                self.sinks.progress.note(&format!("rudder: {msg}"));
                f.insert("reason".into(), json!(msg));
            }
        }
        self.sinks
            .event(self.state.epoch, self.state.step, EventKind::Rollback, f)
    }
}

/// The bytes of `tensors`' values.
fn tensor_bytes(tensors: &[(String, candle_core::Tensor)]) -> u64 {
    tensors
        .iter()
        .map(|(_, t)| (t.elem_count() * t.dtype().size_in_bytes()) as u64)
        .sum()
}
