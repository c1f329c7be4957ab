//! The training loop: the only code that mutates the model, the optimizer and the
//! batcher. Hooks are called at one place each; the decisions they return are applied
//! between optimizer steps, never inside a (micro-)batch.

mod checkpointing;
mod control;
mod epoch;
mod hooks;
mod learner;
mod progress;
pub mod range;
mod run;
mod sinks;

use std::path::PathBuf;

use rudder_core::config::TrainConfig;
use rudder_nn::data::{Batcher, Data};
use rudder_policy::{Best, Decision, RunState, Save, Settings};
use rudder_run::checkpoint::{Monitored, Partial};
use rudder_run::log::{EpochRecord, RunLog};
use serde_json::Value;

use crate::dist::Collective;
use sinks::Sinks;

pub use checkpointing::fits;
pub use learner::{CandleLearner, EngineLearner, Learner, Sums};
pub use progress::Progress;

/// A failure during the run (the binary's exit code 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A tensor operation failed (out of memory, a device error).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Writing the run folder failed.
    #[error("writing the run directory: {0}")]
    Io(#[from] std::io::Error),
    /// Ranks that disagree (a message that does not parse, a step that is not theirs).
    #[error("many processes: {0}")]
    Rank(#[from] crate::dist::DistError),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Epochs finished.
    pub epochs_run: usize,
    /// Optimizer steps done.
    pub steps: u64,
    /// The last epoch's metrics line.
    pub last: Option<EpochRecord>,
    /// The best epoch by validation loss.
    pub best: Best,
    /// Why the run stopped before its planned epochs, if it did.
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
    /// The run as its policies see it: settings, counters, metrics, history, best.
    state: RunState,
    /// Scalars policies asked to record for the current epoch.
    policy_metrics: std::collections::BTreeMap<String, f64>,
    stop: Option<String>,
    /// Where events and epochs go: the run log, the progress lines, the report,
    /// TensorBoard.
    sinks: Sinks,
    ckpt: Checkpoints,
    /// The sums of the epoch in progress; `None` between epochs.
    partial: Option<Partial>,
    /// The `resume` event to write when the run starts: the checkpoint and notes.
    resume_note: Option<(Option<PathBuf>, Vec<String>)>,
    /// The first step's mean loss, for the divergence guard.
    first_loss: Option<f64>,
    /// The finished epoch whose weights a rollback since the last epoch brought back.
    restored: Option<usize>,
    diverged: bool,
    /// The ranks training together (one process: `dist::Single`).
    world: &'static dyn Collective,
    /// The checkpoint a rollback decision reads, as rank 0 resolved it (followers).
    rollback_from: Option<PathBuf>,
    /// Time spent in the per-step collectives (the gradient and loss sums, waiting for
    /// the slowest rank included), this session.
    comm_s: f64,
    /// `control.jsonl` as rank 0 reads it (from the run's start on).
    control: Option<control::Control>,
}

/// What rank 0 broadcasts at a hook: the validated decision, the checkpoint its
/// rollback reads, and whether it came (last) from the control channel.
#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rollback_from: Option<PathBuf>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    control: bool,
}

/// Where checkpoints go, when, and what the trainer knows of them.
struct Checkpoints {
    root: PathBuf,
    every: usize,
    keep: usize,
    /// Tagged checkpoints kept (`--keep-tagged`), 0 for all.
    keep_tagged: usize,
    monitored: Monitored,
    /// The monitored metric's value and epoch, when it improved in the epoch just
    /// validated (`best` is written with it at the epoch's end).
    improved: Option<(f64, usize)>,
    /// The newest checkpoint written or resumed from (`rollback: "last"`).
    last: Option<PathBuf>,
    /// A `save` decision waiting for the next boundary.
    pending: Option<Save>,
    /// A rollback came after the epoch's validation (from `on_epoch_end`): the
    /// weights are not the ones the monitored metric was measured on, so they are not
    /// `best`. Set and cleared within one epoch-end boundary, so no checkpoint needs
    /// it.
    rolled_back: bool,
}

impl<'a> Trainer<'a> {
    /// A run of `cfg` on `data` through `learner` (its model has `param_count`
    /// parameters), logging to `log`: at epoch 0, or continued by
    /// [`Trainer::resume_from`].
    pub fn new(
        cfg: &'a TrainConfig,
        data: &'a Data,
        learner: Box<dyn Learner>,
        param_count: usize,
        log: RunLog,
    ) -> Trainer<'a> {
        let h = learner.hyper();
        let mut settings = Settings::new(h.lr, cfg.batch_size.min(data.train.len()));
        settings.accumulation = cfg.accumulation;
        settings.epochs = cfg.epochs;
        settings.momentum = h.momentum;
        settings.weight_decay = h.weight_decay;
        let mut state = RunState::new(settings);
        state.dataset_size = Some(data.train.len());
        state.base_lr = Some(cfg.lr);
        state.base_batch_size = Some(cfg.batch_size);
        state.optimizer = cfg.optimizer.name().into();
        let world = crate::dist::world();
        let root = world.rank() == 0;
        let mut sinks = Sinks::new(log, Progress::new(cfg.quiet || !root));
        if root {
            let policies =
                rudder_run::report::policies_line(cfg.provenance.as_deref().unwrap_or(&[]));
            let headline = if policies.is_empty() {
                cfg.headline()
            } else {
                format!("{}; {policies}", cfg.headline())
            };
            sinks.add(Box::new(rudder_run::report::Live::open(&cfg.out, headline)));
        }
        Trainer {
            cfg,
            data,
            learner,
            param_count,
            batcher: Batcher::new(data.train.len(), cfg.seed ^ SHUFFLE_SALT),
            state,
            policy_metrics: Default::default(),
            stop: None,
            sinks,
            ckpt: Checkpoints {
                root: cfg.out.join("checkpoints"),
                every: cfg.checkpoint_every,
                keep: cfg.keep_last,
                keep_tagged: cfg.keep_tagged,
                monitored: Monitored {
                    metric: cfg.monitor,
                    value: None,
                    epoch: None,
                },
                improved: None,
                last: None,
                pending: None,
                rolled_back: false,
            },
            partial: None,
            resume_note: None,
            first_loss: None,
            restored: None,
            diverged: false,
            world,
            rollback_from: None,
            comm_s: 0.0,
            control: None,
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
            self.sinks.follower();
        }
        self
    }

    /// Writes TensorBoard event files too, into the run's folder under `root`
    /// (`root/NAME`, or `NAME-2`, ... when another run holds that name: see
    /// [`rudder_run::tensorboard::claim`]); a run resumed at epoch `e` tells
    /// TensorBoard to drop what an earlier file holds from there on. The files start
    /// with the configuration, the policies' `sources` and the hyperparameters; with
    /// `--log-steps` the steps go to a `steps` folder beside them.
    pub fn with_tensorboard(
        mut self,
        root: &std::path::Path,
        name: &str,
        sources: &[(String, String)],
    ) -> Self {
        let resumed = self.state.resumed;
        let resumed_at = resumed.then_some(self.state.epoch as u64 + 1);
        let shown = root.display().to_string();
        // The configuration as this start resolved it: a resume's options win.
        let mut config = serde_json::to_value(self.cfg).unwrap_or_default();
        if let Some(c) = config.as_object_mut() {
            c.extend(self.cfg.overrides.given.clone());
        }
        let steps = self.cfg.log_steps.then(|| self.cfg.out.join("steps.jsonl"));
        let made = rudder_run::tensorboard::claim(root, name, &self.cfg.out, resumed)
            .and_then(|dir| rudder_run::tensorboard::Writer::create(&dir, resumed_at))
            .map(|w| match &steps {
                Some(s) => w.with_steps(s, resumed),
                None => w,
            })
            .and_then(|mut w| w.start(&config, sources).map(|()| w));
        match made {
            Ok(w) => self
                .sinks
                .add(Box::new(w.shown_as(format!("--tensorboard {shown}")))),
            Err(e) => self.sinks.failed(
                "tensorboard",
                format!("--tensorboard {shown}: {e}; no TensorBoard events for this run"),
            ),
        }
        self
    }

    /// Rank 0's decision on every rank (`None`: nothing to apply). One process: as is.
    fn share(&mut self, d: Option<Decision>) -> Result<Option<Decision>, TrainError> {
        Ok(self.share_from(d, false)?.map(|(d, _)| d))
    }

    /// [`Trainer::share`], with whether the decision came from the control channel.
    fn share_from(
        &mut self,
        d: Option<Decision>,
        control: bool,
    ) -> Result<Option<(Decision, bool)>, TrainError> {
        if self.world.size() == 1 {
            return Ok(d.map(|d| (d, control)));
        }
        let from = d
            .as_ref()
            .and_then(|d| d.rollback.as_ref())
            .and_then(|t| self.rollback_dir(t));
        let shared = d.map(|decision| Shared {
            decision,
            rollback_from: from,
            control,
        });
        let got = crate::dist::share(self.world, shared).map_err(TrainError::Rank)?;
        Ok(got.map(|s| {
            if !self.is_root() {
                self.rollback_from = s.rollback_from;
            }
            (s.decision, s.control)
        }))
    }

    /// Whether any rank was asked to stop by a signal (the same answer on every rank).
    fn interrupt_agreed(&self) -> bool {
        crate::dist::any(self.world, rudder_core::interrupt::requested())
    }

    /// Hands the settings' optimizer hyperparameters to the learner.
    fn sync_hyper(&mut self) {
        let s = self.state.settings;
        let mut h = self.learner.hyper();
        (h.lr, h.momentum, h.weight_decay) = (s.lr, s.momentum, s.weight_decay);
        self.learner.set_hyper(h);
    }
}
