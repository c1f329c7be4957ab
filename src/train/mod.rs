//! The training loop: the only code that mutates the model, the optimizer and the
//! batcher. Hooks are called at one place each; the decisions they return are applied
//! between optimizer steps, never inside a (micro-)batch.

mod checkpointing;
mod learner;
mod progress;
pub mod range;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::checkpoint::{Monitored, Partial};
use crate::config::TrainConfig;
use crate::data::{Batcher, Data, Split};
use crate::dist::Collective;
use crate::policy::{Best, Controller, Ctx, Decision, EpochMetrics, Hook, Reply, Save, Settings};
use crate::report;
use crate::runlog::{EpochRecord, RunLog};

pub use checkpointing::fits;
pub use learner::{Engine, Graph, Learner, Sums};
pub use progress::Progress;

/// A failure during the run (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("writing the run directory: {0}")]
    Io(#[from] std::io::Error),
    /// Ranks that disagree (a message that does not parse, a step that is not theirs).
    #[error("many processes: {0}")]
    Rank(String),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub epochs_run: usize,
    pub steps: u64,
    pub last: Option<EpochRecord>,
    pub best: Best,
    pub stop_reason: Option<String>,
    /// Stopped by the sweep's divergence guard.
    pub diverged: bool,
    /// Stopped by SIGINT or SIGTERM, after a checkpoint of where it was.
    pub interrupted: bool,
    /// The newest checkpoint when the run ended (the interrupted one when its write
    /// succeeded).
    pub last_checkpoint: Option<PathBuf>,
    /// When the run ended on weights restored from a checkpoint (a rollback after the
    /// last epoch, as `restore_best_weights` does): that epoch's index and metrics
    /// line, the numbers the final weights have.
    pub restored: Option<(usize, Value)>,
}

/// How far above the first step's loss a sweep trial counts as diverged.
pub const DIVERGENCE_FACTOR: f64 = 10.0;

/// Mixed into the seed for the shuffle stream.
const SHUFFLE_SALT: u64 = 0x5407_f1e5;

/// Everything one run owns and changes.
pub struct Trainer<'a> {
    cfg: &'a TrainConfig,
    data: &'a Data,
    learner: Box<dyn Learner>,
    param_count: usize,
    batcher: Batcher,
    settings: Settings,
    step: u64,
    epoch: usize,
    history: Vec<Value>,
    best: Best,
    last_metrics: EpochMetrics,
    /// Scalars policies asked to record for the current epoch.
    policy_metrics: std::collections::BTreeMap<String, f64>,
    stop: Option<String>,
    markers: Vec<report::Marker>,
    log: RunLog,
    progress: Progress,
    ckpt: Checkpoints,
    /// The sums of the epoch in progress; `None` between epochs.
    partial: Option<Partial>,
    /// Continued by `--resume` from a checkpoint (`ctx.resumed`).
    resumed: bool,
    /// The `resume` event to write when the run starts: the checkpoint and notes.
    resume_note: Option<(Option<PathBuf>, Vec<String>)>,
    /// The first step's mean loss, for the divergence guard.
    first_loss: Option<f64>,
    /// The finished epoch whose weights a rollback since the last epoch brought back.
    restored: Option<usize>,
    /// TensorBoard's event file, when `--tensorboard` asks for one.
    tb: Option<crate::tensorboard::Writer>,
    diverged: bool,
    /// The ranks training together (one process: `dist::Single`).
    world: &'static dyn Collective,
    /// The checkpoint a rollback decision reads, as rank 0 resolved it (followers).
    rollback_from: Option<PathBuf>,
    /// Time spent in the per-step collectives (the gradient and loss sums, waiting for
    /// the slowest rank included), this session.
    comm_s: f64,
}

/// What rank 0 broadcasts at a hook: the validated decision, and the checkpoint its
/// rollback reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rollback_from: Option<PathBuf>,
}

/// Where checkpoints go, when, and what the trainer knows of them.
struct Checkpoints {
    root: PathBuf,
    every: usize,
    keep: usize,
    monitored: Monitored,
    /// The monitored metric improved in the epoch just finished.
    improved: bool,
    /// The newest checkpoint written or resumed from (`rollback: "last"`).
    last: Option<PathBuf>,
    /// A `save` decision waiting for the next boundary.
    pending: Option<Save>,
    /// A rollback happened since the last epoch-end boundary: the weights are not the
    /// ones the monitored metric was measured on.
    rolled_back: bool,
}

impl<'a> Trainer<'a> {
    pub fn new(
        cfg: &'a TrainConfig,
        data: &'a Data,
        learner: Box<dyn Learner>,
        param_count: usize,
        log: RunLog,
    ) -> Trainer<'a> {
        let h = learner.hyper();
        Trainer {
            cfg,
            data,
            learner,
            param_count,
            batcher: Batcher::new(data.train.len(), cfg.seed ^ SHUFFLE_SALT),
            settings: {
                let mut s = Settings::new(h.lr, cfg.batch_size.min(data.train.len()));
                s.accumulation = cfg.accumulation;
                s.epochs = cfg.epochs;
                s.momentum = h.momentum;
                s.weight_decay = h.weight_decay;
                s
            },
            step: 0,
            epoch: 0,
            history: Vec::new(),
            best: Best::default(),
            last_metrics: EpochMetrics::default(),
            policy_metrics: Default::default(),
            stop: None,
            markers: Vec::new(),
            log,
            progress: Progress::new(cfg.quiet || crate::dist::world().rank() != 0),
            ckpt: Checkpoints {
                root: cfg.out.join("checkpoints"),
                every: cfg.checkpoint_every,
                keep: cfg.keep_last,
                monitored: Monitored {
                    metric: cfg.monitor.clone(),
                    ..Monitored::default()
                },
                improved: false,
                last: None,
                pending: None,
                rolled_back: false,
            },
            partial: None,
            resumed: false,
            resume_note: None,
            first_loss: None,
            restored: None,
            tb: None,
            diverged: false,
            world: crate::dist::world(),
            rollback_from: None,
            comm_s: 0.0,
        }
    }

    /// Rank 0 of a job: the one that calls the policies and writes the run directory
    /// (always, in one process).
    pub fn is_root(&self) -> bool {
        self.world.rank() == 0
    }

    /// Trains as one of the ranks of `world` instead of the process's world.
    pub fn in_world(mut self, world: &'static dyn Collective) -> Self {
        self.world = world;
        if !self.is_root() {
            self.progress = Progress::new(true);
        }
        self
    }

    /// Rank 0's decision on every rank (`None`: nothing to apply). One process: as is.
    fn share(&mut self, d: Option<Decision>) -> Result<Option<Decision>, TrainError> {
        if self.world.size() == 1 {
            return Ok(d);
        }
        let from = d
            .as_ref()
            .and_then(|d| d.rollback)
            .and_then(|t| self.rollback_dir(t));
        let shared = d.map(|decision| Shared {
            decision,
            rollback_from: from,
        });
        let got = crate::dist::share(self.world, shared).map_err(TrainError::Rank)?;
        Ok(got.map(|s| {
            if !self.is_root() {
                self.rollback_from = s.rollback_from;
            }
            s.decision
        }))
    }

    /// Whether any rank was asked to stop by a signal (the same answer on every rank).
    fn interrupt_agreed(&self) -> bool {
        crate::dist::any(self.world, crate::interrupt::requested())
    }

    /// Writes TensorBoard event files into `dir` too (a run resumed at epoch `e`
    /// tells TensorBoard to drop what an earlier file holds from there on).
    pub fn with_tensorboard(mut self, dir: &std::path::Path) -> Self {
        let resumed_at = self.resumed.then_some(self.epoch as u64 + 1);
        match crate::tensorboard::Writer::create(dir, resumed_at) {
            Ok(w) => self.tb = Some(w),
            Err(e) => self.tb_failed(&e),
        }
        self
    }

    /// A TensorBoard write that fails stops the TensorBoard files, not the run.
    fn tb_failed(&mut self, e: &std::io::Error) {
        self.tb = None;
        self.progress.note(&format!(
            "rudder: --tensorboard {}: {e}; no more TensorBoard events for this run",
            self.cfg
                .tensorboard
                .as_deref()
                .map_or(String::new(), |d| d.display().to_string())
        ));
    }

    /// The epoch's scalars to TensorBoard.
    fn tb_epoch(&mut self, r: &EpochRecord) {
        let Some(tb) = &mut self.tb else {
            return;
        };
        let mut v: Vec<(String, f64)> = [
            ("loss/train", Some(r.train_loss)),
            ("loss/val", Some(r.val_loss)),
            ("accuracy/train", r.train_acc),
            ("accuracy/val", r.val_acc),
            ("error/val_rmse", r.val_rmse),
            ("error/val_mae", r.val_mae),
            ("r2/val", r.val_r2),
            ("lr", Some(r.lr)),
            ("batch_size", Some(r.batch_size as f64)),
            ("samples_per_s", Some(r.samples_per_s)),
        ]
        .iter()
        .filter_map(|(k, x)| x.map(|x| (k.to_string(), x)))
        .collect();
        v.extend(r.policy.iter().map(|(k, x)| (format!("policy/{k}"), *x)));
        if let Err(e) = tb.scalars(r.epoch as u64 + 1, &v).and_then(|()| tb.flush()) {
            self.tb_failed(&e);
        }
    }

    /// Reloads policies when their files change, checked at each step boundary.
    /// Picks up a pending reload: one atomic load when there is none.
    /// With many ranks, rank 0 alone watches, and its reload's decision reaches every
    /// rank at this same boundary.
    fn maybe_reload(&mut self, controller: &mut dyn Controller) -> Result<(), TrainError> {
        let mut decided = None;
        if self.is_root() && controller.reload_due() {
            let reply = controller.reload(&self.ctx());
            self.record(reply.events)?;
            decided = Some(reply.decision);
        }
        match self.share(decided)? {
            Some(d) => self.apply(Hook::Reload, d),
            None => Ok(()),
        }
    }

    fn steps_per_epoch(&self) -> usize {
        let batches = self.data.train.len().div_ceil(self.settings.batch_size);
        batches.div_ceil(self.settings.accumulation)
    }

    fn ctx(&self) -> Ctx<'_> {
        let mut ctx = Ctx::new(self.settings, self.data.train.len());
        ctx.epoch = self.epoch;
        ctx.step = self.step;
        ctx.steps_per_epoch = self.steps_per_epoch();
        ctx.base_lr = self.cfg.lr;
        ctx.base_batch_size = self.cfg.batch_size;
        ctx.optimizer = self.cfg.optimizer.name();
        ctx.metrics = self.last_metrics;
        ctx.history = &self.history;
        ctx.best = self.best;
        ctx.resumed = self.resumed;
        ctx
    }

    /// Hands the settings' optimizer hyperparameters to the learner.
    fn sync_hyper(&mut self) {
        let s = self.settings;
        let mut h = self.learner.hyper();
        (h.lr, h.momentum, h.weight_decay) = (s.lr, s.momentum, s.weight_decay);
        self.learner.set_hyper(h);
    }

    /// The one place hooks are called and their decisions applied.
    /// With many ranks, rank 0 calls the policies and broadcasts the validated
    /// decision; every rank applies it here.
    fn hook(&mut self, hook: Hook, controller: &mut dyn Controller) -> Result<(), TrainError> {
        let decided = if self.is_root() {
            self.decide(hook, controller)?
        } else {
            None
        };
        match self.share(decided)? {
            Some(d) => self.apply(hook, d),
            None => Ok(()),
        }
    }

    /// Calls `hook` and validates what it returns (`None` when no policy defines it).
    fn decide(
        &mut self,
        hook: Hook,
        controller: &mut dyn Controller,
    ) -> Result<Option<Decision>, TrainError> {
        if !controller.defines(hook) {
            return Ok(None);
        }
        let ctx = self.ctx();
        let Reply {
            decision, events, ..
        } = controller.call(hook, &ctx);
        // The controller validates; checking again keeps a faulty one from
        // reaching the model.
        let checked = decision
            .validate(&ctx)
            .and_then(|()| self.can_roll_back(&decision))
            .map(|()| decision);
        let decision = match checked {
            Ok(d) => d,
            Err(e) => {
                let mut f = Map::new();
                f.insert("hook".into(), json!(hook));
                f.insert("key".into(), json!(e.key));
                f.insert("message".into(), json!(e.to_string()));
                self.event(self.epoch, self.step, "invalid_decision", f)?;
                Decision::default()
            }
        };
        self.record(events)?;
        Ok(Some(decision))
    }

    /// Appends an event to events.jsonl, and marks it for the report (and
    /// TensorBoard) when it is worth a marker (`report::markers`).
    fn event(
        &mut self,
        epoch: usize,
        step: u64,
        kind: &str,
        fields: Map<String, Value>,
    ) -> Result<(), TrainError> {
        let written = self.log.event(epoch, step, kind, fields)?;
        if let Some(m) = report::markers::from_event(&written, None) {
            if let Some(tb) = &mut self.tb
                && let Err(e) = tb.text(m.epoch as u64 + 1, &format!("events/{}", m.kind), &m.label)
            {
                self.tb_failed(&e);
            }
            self.markers.push(m);
        }
        Ok(())
    }

    /// Writes policy events to events.jsonl and marks them for the report.
    fn record(&mut self, events: Vec<crate::policy::PolicyEvent>) -> Result<(), TrainError> {
        for e in events {
            let fields = match serde_json::to_value(&e) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            self.event(self.epoch, self.step, e.kind.as_str(), fields)?;
        }
        Ok(())
    }

    /// Applies a validated decision between steps.
    fn apply(&mut self, hook: Hook, d: Decision) -> Result<(), TrainError> {
        if d.is_empty() {
            return Ok(());
        }
        // A rollback first: the decision's other values apply to the restored state.
        if let Some(target) = d.rollback {
            self.rollback(hook, target)?;
        }
        if d.save.is_some() {
            self.ckpt.pending = d.save.clone();
        }
        let before = self.settings;
        self.settings = d.apply(before, self.cfg.lr_scaling);
        let s = self.settings;
        if (s.lr, s.momentum, s.weight_decay) != (before.lr, before.momentum, before.weight_decay) {
            self.sync_hyper();
        }
        if let Some(msg) = &d.log {
            self.progress.note(msg);
            let mut f = Map::new();
            f.insert("hook".into(), json!(hook));
            f.insert("message".into(), json!(msg));
            self.event(self.epoch, self.step, "log", f)?;
        }
        self.policy_metrics
            .extend(d.metrics.iter().map(|(k, v)| (k.clone(), *v)));
        if d.stop && self.stop.is_none() {
            let reason = d
                .reason
                .clone()
                .unwrap_or_else(|| "a policy stopped the run".into());
            self.progress.note(&format!("stopping: {reason}"));
            let mut f = Map::new();
            f.insert("hook".into(), json!(hook));
            f.insert("reason".into(), json!(reason));
            self.event(self.epoch, self.step, "stop", f)?;
            self.stop = Some(reason);
        }
        Ok(())
    }

    /// Runs the whole training.
    pub fn run(mut self, controller: &mut dyn Controller) -> Result<Summary, TrainError> {
        let mut f = Map::new();
        match self.resume_note.take() {
            Some((dir, notes)) => {
                if let Some(d) = &dir {
                    f.insert("path".into(), json!(self.relative(d)));
                }
                // Epochs as people count them: the one in progress, or the last done.
                let at = if self.partial.is_some() {
                    format!("resumed in epoch {}, at step {}", self.epoch + 1, self.step)
                } else {
                    format!("resumed after epoch {}, at step {}", self.epoch, self.step)
                };
                let given = &self.cfg.overrides.given;
                let with = (!given.is_empty()).then(|| {
                    let flags: Vec<String> = given
                        .iter()
                        .map(|(k, v)| {
                            format!(
                                "--{} {}",
                                k.replace('_', "-"),
                                crate::runlog::clip(&v.to_string())
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
                self.progress.note(&format!("rudder: {message}"));
                f.insert("message".into(), json!(message));
                self.event(self.epoch, self.step, "resume", f)?;
            }
            None => {
                f.insert(
                    "message".into(),
                    json!(format!("{} parameters", self.param_count)),
                );
                f.insert("kernels".into(), json!(self.learner.kernels()));
                f.insert("world_size".into(), json!(self.world.size()));
                f.insert("rank".into(), json!(self.world.rank()));
                if self.world.size() > 1 {
                    f.insert("collective".into(), json!(self.world.name()));
                }
                self.event(0, 0, "run_start", f)?;
            }
        }
        self.hook(Hook::TrainStart, controller)?;
        let mut last = None;
        let mut interrupted = false;
        while self.stop.is_none() && self.epoch < self.settings.epochs {
            if self.interrupt_agreed() {
                interrupted = true;
                break;
            }
            self.maybe_reload(controller)?;
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
                interrupted = true;
                break;
            };
            last = Some(record);
            self.epoch += 1;
            self.epoch_end_checkpoints(controller)?;
        }
        if interrupted {
            return self.interrupted(controller, last);
        }
        self.hook(Hook::TrainEnd, controller)?;
        if self.epoch > 0
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
        self.event(self.epoch.saturating_sub(1), self.step, "run_end", f)?;
        Ok(Summary {
            epochs_run: self.epoch,
            steps: self.step,
            last,
            best: self.best,
            stop_reason: self.stop,
            diverged: self.diverged,
            interrupted: false,
            last_checkpoint: self.ckpt.last.clone(),
            restored: self
                .restored
                .and_then(|e| self.history.get(e).map(|r| (e, r.clone()))),
        })
    }

    /// The end of a run stopped by a signal at a step boundary: a `step-N`
    /// checkpoint of where it is (mid-epoch or between epochs), then `run_end` with
    /// reason `interrupted`. `on_train_end` is not called: the run is not over.
    fn interrupted(
        mut self,
        controller: &mut dyn Controller,
        last: Option<EpochRecord>,
    ) -> Result<Summary, TrainError> {
        let name = format!("step-{}", self.step);
        self.write_checkpoints(std::slice::from_ref(&name), controller)?;
        self.learner.sync_model()?;
        let mut f = Map::new();
        f.insert("reason".into(), json!("interrupted"));
        let epoch = crate::checkpoint::boundary_epoch(self.epoch, self.partial.is_some());
        self.event(epoch, self.step, "run_end", f)?;
        Ok(Summary {
            epochs_run: self.epoch,
            steps: self.step,
            last,
            best: self.best,
            stop_reason: Some("interrupted".into()),
            diverged: self.diverged,
            interrupted: true,
            last_checkpoint: self.ckpt.last.clone(),
            restored: None,
        })
    }

    /// One epoch: training steps, validation, `on_epoch_end`, the metrics line and
    /// the report. `None` when a signal stopped it between two steps (the epoch stays
    /// in progress, for a checkpoint).
    fn epoch_pass(
        &mut self,
        controller: &mut dyn Controller,
    ) -> Result<Option<EpochRecord>, TrainError> {
        let t0 = Instant::now();
        let before = self.partial.unwrap_or_default();
        self.progress
            .start_epoch(self.epoch, self.settings.epochs, self.data.train.len());
        if !self.train_steps(controller, t0, before)? {
            return Ok(None);
        }
        self.end_epoch(controller, t0, before).map(Some)
    }

    /// The epoch's optimizer steps, each after `on_step` (and a reload, if one is
    /// due): its sums kept in `partial`, a `save` written between two steps. `false`
    /// when a signal stopped it between two steps.
    fn train_steps(
        &mut self,
        controller: &mut dyn Controller,
        t0: Instant,
        before: Partial,
    ) -> Result<bool, TrainError> {
        let train = self.data.train.clone();
        while self.batcher.remaining() > 0 {
            self.maybe_reload(controller)?;
            self.hook(Hook::Step, controller)?;
            if self.stop.is_some() {
                break;
            }
            let (loss, ok, count) = self.optimizer_step(&train)?;
            let elapsed = t0.elapsed().as_secs_f64();
            let p = self.partial.get_or_insert_default();
            p.loss_sum += loss;
            p.correct += ok;
            p.seen += count;
            p.train_time_s = before.train_time_s + elapsed;
            self.progress.advance(
                count,
                self.step,
                loss / count as f64,
                self.settings.lr,
                elapsed,
            );
            self.log.step(
                self.step,
                self.epoch,
                self.settings.lr,
                self.settings.batch_size,
                loss / count as f64,
            )?;
            if crate::dist::ranklog::on() {
                crate::dist::ranklog::write(&json!({
                    "step": self.step,
                    "lr": self.settings.lr,
                    "batch_size": self.settings.batch_size,
                    "loss": loss / count as f64,
                }));
            }
            crate::fault::step(self.step);
            if self.interrupt_agreed() {
                self.progress.clear();
                return Ok(false);
            }
            if self.cfg.stop_on_divergence && self.check_divergence(loss / count as f64)? {
                break;
            }
            if self.batcher.remaining() > 0
                && let Some(name) = self.take_save()
            {
                self.write_checkpoints(&[name], controller)?;
            }
        }
        Ok(true)
    }

    /// Validation, `on_epoch_end`, the metrics line, TensorBoard and the report.
    fn end_epoch(
        &mut self,
        controller: &mut dyn Controller,
        t0: Instant,
        before: Partial,
    ) -> Result<EpochRecord, TrainError> {
        let Partial {
            loss_sum,
            correct,
            seen,
            train_time_s: train_time,
        } = self.partial.take().unwrap_or(before);
        let v = self.validate()?;
        let val_loss = v.val_loss.unwrap_or(f64::NAN);
        let seen_f = seen.max(1) as f64;
        let classify = self.data.targets.is_none();
        let train_acc = classify.then_some(correct / seen_f);
        let m = &mut self.last_metrics;
        m.train_loss = Some(loss_sum / seen_f);
        m.train_acc = train_acc;
        (m.val_loss, m.val_acc, m.val_rmse, m.val_mae, m.val_r2) =
            (v.val_loss, v.val_acc, v.val_rmse, v.val_mae, v.val_r2);
        self.best = self.best.update(self.epoch, &self.last_metrics);
        let lr_used = self.settings.lr;
        let batch_used = self.settings.batch_size;
        let acc_used = self.settings.accumulation;
        self.progress.hold();
        self.hook(Hook::EpochEnd, controller)?;
        let record = EpochRecord {
            epoch: self.epoch,
            step: self.step,
            epochs: self.settings.epochs,
            lr: lr_used,
            batch_size: batch_used,
            accumulation: acc_used,
            train_loss: loss_sum / seen_f,
            train_acc,
            val_loss,
            val_acc: v.val_acc,
            val_rmse: v.val_rmse,
            val_mae: v.val_mae,
            val_r2: v.val_r2,
            epoch_time_s: before.train_time_s + t0.elapsed().as_secs_f64(),
            samples_per_s: seen as f64 / train_time.max(1e-9),
            policy: std::mem::take(&mut self.policy_metrics),
        };
        let m = &mut self.ckpt.monitored;
        let value = record.metric(&m.metric);
        self.ckpt.improved = crate::runlog::improves(&m.metric, value, m.value);
        if self.ckpt.improved {
            (m.value, m.epoch) = (Some(value), Some(self.epoch));
        }
        self.log.flush_steps()?;
        self.log.epoch(&record)?;
        self.tb_epoch(&record);
        self.history.push(record.to_value());
        self.progress.end_epoch(&record);
        if self.is_root() {
            report::write(
                self.log.dir(),
                &self.cfg.headline(),
                &self.history,
                &self.markers,
            )?;
        }
        if crate::dist::ranklog::on() {
            self.learner.sync_model()?;
            let mut values = Vec::new();
            for (_, v) in self.learner.model().params() {
                values.extend(v.flatten_all()?.to_vec1::<f32>()?);
            }
            crate::dist::ranklog::write(&json!({
                "epoch": self.epoch,
                "weights": crate::dist::ranklog::digest(values),
            }));
        }
        Ok(record)
    }

    /// The validation metrics: each rank evaluates its shard, and the sums are
    /// reduced. Classification has the accuracy; regression RMSE and MAE over all
    /// targets and R^2 averaged over the targets, in the targets' units.
    fn validate(&mut self) -> Result<EpochMetrics, TrainError> {
        let n = self.data.val.len();
        let (lo, hi) = crate::dist::shard(n, self.world.rank(), self.world.size());
        let mut sums = self.learner.evaluate(&self.data.val, lo..hi)?;
        let k = self.data.targets.as_ref().map_or(0, |t| t.val_sst.len());
        sums.sq_err.resize(k, 0.0);
        let mut flat = sums.to_vec();
        self.world.allreduce_f64(&mut flat);
        let s = crate::train::Sums::from_slice(&flat);
        let nf = n.max(1) as f64;
        let mut m = EpochMetrics::default();
        m.val_loss = Some(s.loss / nf);
        match &self.data.targets {
            None => m.val_acc = Some(s.correct / nf),
            Some(t) => {
                let cells = nf * k.max(1) as f64;
                m.val_rmse = Some((s.sq_err.iter().sum::<f64>() / cells).sqrt());
                m.val_mae = Some(s.abs_err / cells);
                let r2: f64 = s
                    .sq_err
                    .iter()
                    .zip(&t.val_sst)
                    .map(|(se, sst)| if *sst > 0.0 { 1.0 - se / sst } else { 0.0 })
                    .sum();
                m.val_r2 = Some(r2 / k.max(1) as f64);
            }
        }
        Ok(m)
    }

    /// The sweep's guard: a step loss that is not finite or above
    /// `DIVERGENCE_FACTOR` x the first step's stops the run as diverged.
    fn check_divergence(&mut self, loss: f64) -> Result<bool, TrainError> {
        let first = *self.first_loss.get_or_insert(loss);
        if loss.is_finite() && loss <= DIVERGENCE_FACTOR * first {
            return Ok(false);
        }
        self.diverged = true;
        let stop = Decision {
            stop: true,
            reason: Some(format!(
                "diverged: step {} loss {loss:.4e} (first step {first:.4})",
                self.step
            )),
            ..Decision::default()
        };
        self.apply(Hook::Step, stop)?;
        Ok(true)
    }

    /// One optimizer step over `accumulation` micro-batches. Returns the summed loss
    /// over examples, the number classified right, and the examples used.
    ///
    /// With many ranks each takes its slice of every (global) micro-batch; its
    /// gradient is weighted by its share of the rows, so the sum across ranks is the
    /// gradient of the global batch's mean loss, and every rank takes the same update.
    fn optimizer_step(&mut self, train: &Split) -> Result<(f64, f64, usize), TrainError> {
        let (bs, acc) = (self.settings.batch_size, self.settings.accumulation);
        let (rank, size) = (self.world.rank(), self.world.size());
        let (mut loss_sum, mut correct, mut count) = (0f64, 0f64, 0usize);
        for k in 0..acc {
            let Some(rows) = self.batcher.next_rows(bs) else {
                break;
            };
            let (lo, hi) = crate::dist::shard(rows.len(), rank, size);
            let mine = &rows[lo..hi];
            count += rows.len();
            if mine.is_empty() {
                if k == 0 {
                    self.learner.zero_grad()?;
                }
                continue;
            }
            let share = mine.len() as f64 / rows.len() as f64;
            let (loss, ok) = self
                .learner
                .accumulate(train, mine, k == 0, share / acc as f64)?;
            loss_sum += loss * mine.len() as f64;
            correct += ok;
        }
        if size > 1 {
            let t = Instant::now();
            self.learner.reduce_grads(self.world)?;
            let mut sums = [loss_sum, correct];
            self.world.allreduce_f64(&mut sums);
            [loss_sum, correct] = sums;
            self.comm_s += t.elapsed().as_secs_f64();
        }
        self.learner.step()?;
        self.step += 1;
        Ok((loss_sum, correct, count))
    }
}
