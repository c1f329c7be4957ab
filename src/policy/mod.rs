//! The policy seam: the hooks of a run, the read-only context a hook sees, the
//! decisions it may return, their validation and composition. This module knows no
//! candle and no script engine: the trainer calls a [`Controller`], whatever runs
//! behind it, and applies the [`Settings`] that come back between steps.

mod decision;
pub mod simulate;

pub use decision::{Decision, Invalid, MAX_ACCUMULATION, MAX_EPOCHS, Rescale, Save, Target};

use serde::Serialize;

/// When a hook is called; serialised as its function name (`on_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    TrainStart,
    EpochStart,
    Step,
    EpochEnd,
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
}

/// The values a decision can change, as the trainer holds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Settings {
    pub lr: f64,
    pub batch_size: usize,
    pub accumulation: usize,
    pub epochs: usize,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// Metrics of the last finished epoch, `None` before the first one ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EpochMetrics {
    pub train_loss: Option<f64>,
    pub train_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
}

/// The best epoch so far by validation loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Best {
    pub val_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub epoch: Option<usize>,
}

/// What a hook sees. Built by the trainer; read only for policies.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub epoch: usize,
    pub step: u64,
    pub steps_per_epoch: usize,
    pub settings: Settings,
    pub base_lr: f64,
    pub base_batch_size: usize,
    pub optimizer: &'static str,
    pub dataset_size: usize,
    pub metrics: EpochMetrics,
    /// Earlier `metrics.jsonl` objects, oldest first.
    pub history: &'a [serde_json::Value],
    pub best: Best,
    pub resumed: bool,
}

/// What a set of policies answers to one hook: the merged, validated decision, and the
/// events to record (invalid decisions, script errors).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub decision: Decision,
    pub events: Vec<PolicyEvent>,
}

/// Something a policy did that belongs in `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyEvent {
    /// `decision`, `invalid_decision`, `policy_error`, ...
    pub kind: &'static str,
    pub policy: String,
    pub hook: Hook,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty", flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// A policy's part of a checkpoint: its name, the hash of its sources, and `this`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PolicyState {
    pub name: String,
    pub version: String,
    pub this: serde_json::Value,
}

/// Whatever steers a run: called at each hook, it returns decisions and never fails
/// the run (its errors become events).
pub trait Controller: Send {
    /// Whether any policy defines `hook`; the trainer skips building a ctx otherwise.
    fn defines(&self, hook: Hook) -> bool;
    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply;
    /// Files whose edits should reload this controller (none by default).
    fn watched(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
    /// Reloads what changed on disk: `reload` / `reload_failed` events, and the
    /// decisions of `on_reload`.
    fn reload(&mut self, _ctx: &Ctx) -> Reply {
        Reply::default()
    }
    /// The state a checkpoint keeps (per policy: name, version, `this`).
    fn snapshot(&self) -> Vec<PolicyState> {
        Vec::new()
    }
    /// Gives each policy its `this` from a checkpoint; returns a note for each policy
    /// whose source changed since (it runs in its new version) or that the
    /// checkpoint does not know.
    fn restore(&mut self, _saved: &[PolicyState]) -> Vec<String> {
        Vec::new()
    }
}

/// The LR for a batch-size change from `old` to `new` under `rule`.
pub fn rescale_lr(lr: f64, old: usize, new: usize, rule: Rescale) -> f64 {
    let ratio = new as f64 / old as f64;
    match rule {
        Rescale::Linear => lr * ratio,
        Rescale::Sqrt => lr * ratio.sqrt(),
        Rescale::None => lr,
    }
}
