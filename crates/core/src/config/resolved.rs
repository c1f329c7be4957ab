//! [`TrainConfig`]: every option with its value, defaults filled in and the
//! combination checked, as written to `config.json`.

use std::path::PathBuf;

use serde::Serialize;

use super::{ConfigError, ModelKind, TrainOptions};
use crate::metric::Metric;
use crate::{Hyper, Kernels, Loss, OptimizerKind, Rescale, Task, WatchMode};

/// The resolved configuration, as written to `config.json`. Each field is the
/// option of the same name (see [`TrainOptions`]) with its default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct TrainConfig {
    pub data: String,
    pub data_dir: Option<PathBuf>,
    pub val_fraction: f64,
    pub model: ModelKind,
    #[serde(skip_serializing_if = "is_zero")]
    pub dropout: f64,
    pub hidden: Vec<usize>,
    pub channels: Vec<usize>,
    pub task: Task,
    pub targets: usize,
    pub loss: Loss,
    pub huber_delta: f64,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub accumulation: usize,
    pub lr_scaling: Rescale,
    pub policy: Vec<String>,
    pub param: Vec<String>,
    pub watch: WatchMode,
    pub out: PathBuf,
    pub seed: u64,
    pub device: String,
    pub threads: usize,
    pub kernels: Kernels,
    pub log_steps: bool,
    /// Where TensorBoard event files go (`DIR/<run folder name>`), if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensorboard: Option<PathBuf>,
    pub checkpoint_every: usize,
    pub keep_last: usize,
    /// Tagged checkpoints (a policy's `save`) kept, the newest; 0 for all.
    pub keep_tagged: usize,
    pub monitor: Metric,
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Each resume of the run: when, at which step and epoch, and the options given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resumes: Vec<serde_json::Value>,
    /// SHA-256 of the data the run trains on (the data set's fingerprint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// SHA-256 of the model file the run was built from (`--model FILE.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    /// What steered the run, per policy: its files with their SHA-256 and, for a
    /// locked plugin's policy, the plugin's name, version, source and commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Vec<serde_json::Value>>,
    /// What the resume in progress changes (not written: `resumes` records it).
    #[serde(skip)]
    pub overrides: Overrides,
    #[serde(skip)]
    pub quiet: bool,
    /// A sweep's guard: stop when a step's loss is not finite or above 10x the first
    /// step's (not an option; `rudder sweep` sets it).
    #[serde(skip)]
    pub stop_on_divergence: bool,
}

/// What a `--resume` was given that changes the run from then on: the settings a
/// decision can change too (the rest of the options take effect by the
/// configuration itself).
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(missing_docs)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub lr: Option<f64>,
    pub batch_size: Option<usize>,
    pub accumulation: Option<usize>,
    pub momentum: Option<f64>,
    pub weight_decay: Option<f64>,
    /// Every option given with the resume, as JSON, for `config.json`'s `resumes`
    /// and the `resume` event.
    pub given: serde_json::Map<String, serde_json::Value>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Options a resumed run cannot change: they decide the model's shape, the data or
/// the optimizer's state.
pub const FIXED_ON_RESUME: &[&str] = &[
    "dropout",
    "data",
    "val_fraction",
    "model",
    "hidden",
    "channels",
    "seed",
    "optimizer",
    "task",
    "targets",
];

/// The choices that follow from others: the optimizer's defaults, the task the data
/// implies, the task's loss.
struct Derived {
    optimizer: OptimizerKind,
    momentum: f64,
    betas: [f64; 2],
    task: Task,
    loss: Loss,
}

impl TrainOptions {
    /// The optimizer's, the task's and the loss's values, and whether they go
    /// together.
    fn derive(&self) -> Result<Derived, ConfigError> {
        let optimizer = self.optimizer.unwrap_or(OptimizerKind::Sgd);
        let adamw = optimizer == OptimizerKind::Adamw;
        let betas = self.betas.as_ref().map_or([0.9, 0.999], |b| [b[0], b[1]]);
        let momentum = self.momentum.unwrap_or(if adamw { betas[0] } else { 0.0 });
        if self.nesterov == Some(true) && (adamw || momentum == 0.0) {
            return Err(ConfigError::refused(
                "--nesterov",
                "needs --optimizer sgd and --momentum > 0",
            ));
        }
        let task = self
            .task
            .unwrap_or(if self.data.as_deref() == Some("diabetes") {
                Task::Regression
            } else {
                Task::Classification
            });
        let loss = self.loss.unwrap_or(Loss::default_for(task));
        if !loss.fits(task) {
            return Err(ConfigError::refused(
                format!("--loss {}", loss.name()),
                format!(
                    "not a {} loss (classification: cross_entropy, mse, hinge; regression: mse, mae, huber)",
                    task.name()
                ),
            ));
        }
        if let Some(t) = self
            .targets
            .filter(|&t| t != 1 && task == Task::Classification)
        {
            return Err(ConfigError::refused(
                format!("--targets {t}"),
                "only for --task regression",
            ));
        }
        Ok(Derived {
            optimizer,
            momentum,
            betas: [if adamw { momentum } else { betas[0] }, betas[1]],
            task,
            loss,
        })
    }

    /// Fills defaults and checks the combination.
    pub fn resolve(self) -> Result<TrainConfig, ConfigError> {
        let d = self.derive()?;
        let monitor = match self.monitor.as_deref() {
            None => Metric::ValLoss,
            Some(m) => Metric::from_name(m)
                .and_then(|m| m.check_task(d.task).map(|()| m))
                .map_err(|e| ConfigError::invalid("--monitor", e.to_string()))?,
        };
        let adamw = d.optimizer == OptimizerKind::Adamw;
        Ok(TrainConfig {
            data: self.data.unwrap_or_else(|| "digits".into()),
            data_dir: self.data_dir,
            val_fraction: self.val_fraction.unwrap_or(0.1),
            dropout: self.dropout.unwrap_or(0.0),
            model: self.model.clone().unwrap_or(ModelKind::Mlp),
            hidden: self.hidden.unwrap_or_else(|| vec![256, 128]),
            channels: self.channels.unwrap_or_else(|| vec![32, 64]),
            task: d.task,
            targets: self.targets.unwrap_or(1),
            loss: d.loss,
            huber_delta: self.huber_delta.unwrap_or(1.0),
            optimizer: d.optimizer,
            lr: self.lr.unwrap_or(0.1),
            momentum: d.momentum,
            nesterov: self.nesterov.unwrap_or(false),
            weight_decay: self.weight_decay.unwrap_or(if adamw { 0.01 } else { 0.0 }),
            betas: d.betas,
            eps: self.eps.unwrap_or(1e-8),
            batch_size: self.batch_size.unwrap_or(64),
            epochs: self.epochs.unwrap_or(20),
            accumulation: self.accumulation.unwrap_or(1),
            lr_scaling: self.lr_scaling.unwrap_or(Rescale::default_for(d.optimizer)),
            policy: self.policy.unwrap_or_else(|| vec!["default".into()]),
            param: self.param.unwrap_or_default(),
            watch: self.watch.unwrap_or(WatchMode::Auto),
            out: self.out.unwrap_or_else(crate::time::default_run_dir),
            seed: self.seed.unwrap_or(0),
            device: self.device.unwrap_or_else(|| "cpu".into()),
            // Measured best here (BENCHMARKS.md): 2 for the MLP, the CNN and a model
            // file with a convolution; 1 for each rank under an MPI launcher, whose
            // ranks share the cores.
            threads: self
                .threads
                .unwrap_or(if crate::launcher::under_launcher() {
                    1
                } else {
                    2
                }),
            kernels: self.kernels.unwrap_or(Kernels::Rudder),
            log_steps: self.log_steps.unwrap_or(false),
            tensorboard: self.tensorboard,
            checkpoint_every: self.checkpoint_every.unwrap_or(1),
            keep_last: self.keep_last.unwrap_or(3),
            keep_tagged: self.keep_tagged.unwrap_or(10),
            monitor,
            resume: self.resume,
            resumes: self.resumes.unwrap_or_default(),
            data_sha256: self.data_sha256,
            model_sha256: self.model_sha256,
            provenance: self.provenance,
            overrides: Overrides::default(),
            stop_on_divergence: false,
            quiet: self.quiet.unwrap_or(false),
        })
    }
}

impl TrainConfig {
    /// One line describing the setup, for the report.
    pub fn headline(&self) -> String {
        let model = match &self.model {
            ModelKind::Mlp => format!("mlp {:?}", self.hidden),
            ModelKind::Cnn => format!("cnn {:?}", self.channels),
            ModelKind::File(p) => format!("model {}", p.display()),
        };
        // The LR is not here: the report's header shows the LR the run trained at
        // beside the configured one, which a schedule may never use.
        let batch = match self.accumulation {
            1 => self.batch_size.to_string(),
            a => format!("{} x {a}", self.batch_size),
        };
        format!(
            "{model} on {} · {} loss · {} · batch {batch} · seed {}",
            self.data,
            self.loss.name(),
            self.optimizer.name(),
            self.seed
        )
    }

    /// The optimizer's hyperparameters as configured.
    pub fn hyper(&self) -> Hyper {
        Hyper {
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            beta2: self.betas[1],
            eps: self.eps,
        }
    }
}
