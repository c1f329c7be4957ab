//! The hooks of a run and the read-only context a hook sees. Built by the training
//! loop; nothing here knows a script engine.

use rudder_core::metric::Metric;
use serde::Serialize;

/// The hook a sweep policy defines (`on_report(sweep)`), apart from a training
/// policy's six.
pub const ON_REPORT: &str = "on_report";

/// When a hook is called; serialised as its function name (`on_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hook {
    /// Once, before the first epoch, and again after a resume.
    TrainStart,
    /// Before each epoch; `ctx.epoch` is the epoch about to run.
    EpochStart,
    /// Before each optimizer step; `ctx.step` is the steps done so far.
    Step,
    /// After each epoch's validation, with that epoch's metrics.
    EpochEnd,
    /// Once, at the end.
    TrainEnd,
    /// Right after a new version of a policy was swapped in.
    Reload,
}

impl Serialize for Hook {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.function())
    }
}

impl Hook {
    /// Every hook, in the order a run first calls them.
    pub const ALL: [Hook; 6] = [
        Hook::TrainStart,
        Hook::EpochStart,
        Hook::Step,
        Hook::EpochEnd,
        Hook::TrainEnd,
        Hook::Reload,
    ];

    /// The script function that implements this hook.
    pub fn function(self) -> &'static str {
        match self {
            Hook::TrainStart => "on_train_start",
            Hook::EpochStart => "on_epoch_start",
            Hook::Step => "on_step",
            Hook::EpochEnd => "on_epoch_end",
            Hook::TrainEnd => "on_train_end",
            Hook::Reload => "on_reload",
        }
    }

    /// The hook whose script function is `name` (`"on_step"`).
    pub fn from_function(name: &str) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| h.function() == name)
    }
}

/// The values a decision can change, as the training loop holds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Settings {
    /// The learning rate.
    pub lr: f64,
    /// Examples per batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accumulation: usize,
    /// The planned number of epochs.
    pub epochs: usize,
    /// The optimizer's momentum (beta1 for AdamW).
    pub momentum: f64,
    /// The optimizer's weight decay.
    pub weight_decay: f64,
}

impl Settings {
    /// `lr` and `batch_size`; no accumulation, one epoch, no momentum, no weight decay
    /// (set the fields for others).
    pub fn new(lr: f64, batch_size: usize) -> Settings {
        Settings {
            lr,
            batch_size,
            accumulation: 1,
            epochs: 1,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

pub use rudder_core::metric::METRIC_NAMES;

/// Metrics of the last finished epoch, `None` before the first one ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EpochMetrics {
    /// Mean training loss over the epoch's examples.
    pub train_loss: Option<f64>,
    /// Training accuracy over the epoch's examples, 0 to 1.
    pub train_acc: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Validation accuracy, 0 to 1.
    pub val_acc: Option<f64>,
    /// Regression (rudder's `--task regression`): validation RMSE, MAE and R^2 in
    /// the targets' units; `None` for classification.
    pub val_rmse: Option<f64>,
    /// Validation mean absolute error (regression).
    pub val_mae: Option<f64>,
    /// Validation R^2 (regression).
    pub val_r2: Option<f64>,
}

impl EpochMetrics {
    /// The metrics of a `metrics.jsonl` object (or a test case's `ctx`); `null` reads
    /// as NaN (a non-finite number is written as `null`), a missing key as `None`.
    pub fn from_json(record: &serde_json::Map<String, serde_json::Value>) -> EpochMetrics {
        let mut m = EpochMetrics::default();
        for name in METRIC_NAMES {
            m.set(name, metric(record, name));
        }
        m
    }

    /// The metric `name`; `None` when it has no value or is not one of
    /// [`METRIC_NAMES`].
    pub fn get(&self, name: &str) -> Option<f64> {
        let mut m = *self;
        m.slot(name).and_then(|v| *v)
    }

    /// Sets the metric `name`; false when it is not one of [`METRIC_NAMES`].
    pub fn set(&mut self, name: &str, value: Option<f64>) -> bool {
        self.slot(name).map(|v| *v = value).is_some()
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<f64>> {
        Some(match name {
            "train_loss" => &mut self.train_loss,
            "train_acc" => &mut self.train_acc,
            "val_loss" => &mut self.val_loss,
            "val_acc" => &mut self.val_acc,
            "val_rmse" => &mut self.val_rmse,
            "val_mae" => &mut self.val_mae,
            "val_r2" => &mut self.val_r2,
            _ => return None,
        })
    }
}

/// A metric of a JSON object: `null` is NaN, a missing key `None`.
pub(crate) fn metric(m: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<f64> {
    match m.get(key) {
        Some(serde_json::Value::Null) => Some(f64::NAN),
        Some(v) => v.as_f64(),
        None => None,
    }
}

/// The best epoch so far by validation loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Best {
    /// The best epoch's validation loss.
    pub val_loss: Option<f64>,
    /// The best epoch's validation accuracy.
    pub val_acc: Option<f64>,
    /// 0-based.
    pub epoch: Option<usize>,
}

impl Best {
    /// `self` with epoch `epoch`'s metrics if its finite `val_loss` is lower (the
    /// first finite one always is); how a run, a replay and a report keep the best.
    pub fn update(self, epoch: usize, m: &EpochMetrics) -> Best {
        match m.val_loss {
            Some(v) if Metric::ValLoss.improves(v, self.val_loss) => Best {
                val_loss: Some(v),
                val_acc: m.val_acc,
                epoch: Some(epoch),
            },
            _ => self,
        }
    }
}

/// What a hook sees: `ctx` in a script. Built by the training loop, read only for
/// policies.
///
/// ```
/// use rudder_policy::{Ctx, Settings};
/// let history = vec![serde_json::json!({"epoch": 0, "val_loss": 0.5})];
/// let mut ctx = Ctx::new(Settings::new(0.1, 64), 60_000);
/// ctx.epoch = 1;
/// ctx.steps_per_epoch = 938;
/// ctx.metrics.val_loss = Some(0.5);
/// ctx.history = &history;
/// assert_eq!(ctx.base_lr, 0.1);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Ctx<'a> {
    /// 0-based: the epoch about to run (`on_epoch_start`, `on_step`) or just run
    /// (`on_epoch_end`).
    pub epoch: usize,
    /// Optimizer steps done so far.
    pub step: u64,
    /// Optimizer steps in one epoch.
    pub steps_per_epoch: usize,
    /// The values decisions change, as they stand now.
    pub settings: Settings,
    /// The run's LR and batch size as configured (schedules scale from them).
    pub base_lr: f64,
    /// The run's batch size as configured.
    pub base_batch_size: usize,
    /// `"sgd"`, `"adamw"`, or what the training loop calls its optimizer.
    pub optimizer: &'a str,
    /// Training examples per epoch.
    pub dataset_size: usize,
    /// The last finished epoch's metrics.
    pub metrics: EpochMetrics,
    /// Earlier per-epoch metric objects (`metrics.jsonl`), oldest first.
    pub history: &'a [serde_json::Value],
    /// The best epoch so far by validation loss.
    pub best: Best,
    /// A run continued from a checkpoint.
    pub resumed: bool,
}

impl<'a> Ctx<'a> {
    /// The start of a run: epoch 0, step 0, one step per epoch, base LR and batch
    /// size from `settings`, optimizer `"sgd"`, no metrics, no history.
    pub fn new(settings: Settings, dataset_size: usize) -> Ctx<'a> {
        Ctx {
            epoch: 0,
            step: 0,
            steps_per_epoch: 1,
            settings,
            base_lr: settings.lr,
            base_batch_size: settings.batch_size,
            optimizer: "sgd",
            dataset_size,
            metrics: EpochMetrics::default(),
            history: &[],
            best: Best::default(),
            resumed: false,
        }
    }
}
