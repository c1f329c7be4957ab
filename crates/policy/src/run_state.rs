//! [`RunState`]: what a training loop keeps for its policies between hooks, and the
//! one way it moves on. The trainer, the Python binding, `policy schedule` and
//! `replay`, and a hand-written loop all keep their run in one, so `ctx` means the
//! same thing in each.

use serde_json::Value;

use crate::{Best, Ctx, Decision, EpochMetrics, Rescale, Settings};

/// The settings, counters, last metrics, history and best of a run, as its policies
/// see them through [`RunState::ctx`].
///
/// ```
/// use rudder_policy::{Decision, EpochMetrics, Rescale, RunState, Settings};
/// let mut run = RunState::new(Settings::new(0.1, 64));
/// run.dataset_size = Some(6_400);
/// run.fix_bases();
/// assert_eq!(run.ctx().steps_per_epoch, 100);
/// let mut m = EpochMetrics::default();
/// m.val_loss = Some(0.5);
/// run.end_epoch(m);
/// assert_eq!(run.ctx().best.val_loss, Some(0.5));
/// run.apply(&Decision { batch_size: Some(128), ..Decision::default() }, Rescale::Linear);
/// assert_eq!((run.settings.batch_size, run.settings.lr), (128, 0.2));
/// assert_eq!(run.ctx().base_lr, 0.1);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunState {
    /// The values decisions change.
    pub settings: Settings,
    /// 0-based: the epoch about to run, in progress, or just run.
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps per epoch; `None`: derived from the dataset size, the batch
    /// size and the accumulation, as they change.
    pub steps_per_epoch: Option<usize>,
    /// The LR schedules scale from; `None`: the settings' LR until
    /// [`RunState::fix_bases`].
    pub base_lr: Option<f64>,
    /// The batch size the base LR goes with; `None` as `base_lr`.
    pub base_batch_size: Option<usize>,
    /// `"sgd"`, `"adamw"`, or what the loop calls its optimizer.
    pub optimizer: String,
    /// Training examples per epoch; `None`: steps per epoch x batch size.
    pub dataset_size: Option<usize>,
    /// The last finished epoch's metrics.
    pub metrics: EpochMetrics,
    /// Earlier per-epoch metric objects (`metrics.jsonl` lines), oldest first.
    pub history: Vec<Value>,
    /// The best epoch so far by validation loss.
    pub best: Best,
    /// The run was continued from a checkpoint.
    pub resumed: bool,
    /// A decision stopped the run.
    pub stopped: bool,
}

impl RunState {
    /// A run about to start with `settings`: epoch 0, step 0, no metrics, SGD.
    pub fn new(settings: Settings) -> RunState {
        RunState {
            settings,
            epoch: 0,
            step: 0,
            steps_per_epoch: None,
            base_lr: None,
            base_batch_size: None,
            optimizer: "sgd".into(),
            dataset_size: None,
            metrics: EpochMetrics::default(),
            history: Vec::new(),
            best: Best::default(),
            resumed: false,
            stopped: false,
        }
    }

    /// Optimizer steps per epoch: as set, else `ceil(ceil(dataset / batch) /
    /// accumulation)` (1 with no dataset size).
    pub fn steps_per_epoch(&self) -> usize {
        match (self.steps_per_epoch, self.dataset_size) {
            (Some(n), _) => n,
            (None, Some(n)) => n
                .div_ceil(self.settings.batch_size.max(1))
                .div_ceil(self.settings.accumulation.max(1)),
            (None, None) => 1,
        }
    }

    /// Training examples per epoch: as set, else steps per epoch x batch size.
    pub fn dataset_size(&self) -> usize {
        self.dataset_size
            .unwrap_or_else(|| self.steps_per_epoch() * self.settings.batch_size)
    }

    /// Fixes the base LR and batch size at the settings' current values where they
    /// are not set yet (a loop whose first hook brings the LR calls it there).
    pub fn fix_bases(&mut self) {
        self.base_lr.get_or_insert(self.settings.lr);
        self.base_batch_size.get_or_insert(self.settings.batch_size);
    }

    /// What a hook sees now.
    pub fn ctx(&self) -> Ctx<'_> {
        let mut ctx = Ctx::new(self.settings, self.dataset_size());
        ctx.epoch = self.epoch;
        ctx.step = self.step;
        ctx.steps_per_epoch = self.steps_per_epoch();
        ctx.base_lr = self.base_lr.unwrap_or(self.settings.lr);
        ctx.base_batch_size = self.base_batch_size.unwrap_or(self.settings.batch_size);
        ctx.optimizer = &self.optimizer;
        ctx.metrics = self.metrics;
        ctx.history = &self.history;
        ctx.best = self.best;
        ctx.resumed = self.resumed;
        ctx
    }

    /// The epoch's validation ended with `metrics`: they are `ctx.metrics` from now
    /// on, and the best moves on ([`Best::update`]). Its `metrics.jsonl` line joins
    /// [`RunState::history`] when the loop has written it.
    pub fn end_epoch(&mut self, metrics: EpochMetrics) {
        self.metrics = metrics;
        self.best = self.best.update(self.epoch, &metrics);
    }

    /// Applies a validated decision's settings (`rule` for a batch-size change
    /// without an LR), and its stop.
    pub fn apply(&mut self, d: &Decision, rule: Rescale) {
        self.settings = d.apply(self.settings, rule);
        self.stopped |= d.stop;
    }
}
