//! [`TrainOptions`]: every option of a run, each set or not, from the command line
//! or a `--config` file, and how two sources merge (the command line wins).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ModelKind;
use crate::{Kernels, Loss, OptimizerKind, Rescale, Task, WatchMode};

/// Options of `rudder train`, each also a key of the `--config` file. Every field is
/// optional here; defaults are filled in by [`TrainOptions::resolve`]. The
/// command line has a flag for each (`batch_size` is `--batch-size`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// JSON file with any of these options (keys with `_`); the command line wins.
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// digits | mnist | fashion-mnist | PATH.csv [default: digits]
    pub data: Option<String>,
    /// Folder of the IDX files [default: $RUDDER_DATA/NAME, else ./data/NAME]
    pub data_dir: Option<PathBuf>,
    /// Validation split for sets without one [default: 0.1]
    pub val_fraction: Option<f64>,
    /// mlp, cnn or a model file FILE.json [default: mlp]
    pub model: Option<ModelKind>,
    /// Dropout after each hidden ReLU of the built-in MLP [default: 0]
    pub dropout: Option<f64>,
    /// Hidden layer widths of the MLP [default: 256,128]
    pub hidden: Option<Vec<usize>>,
    /// Channels per convolution block of the CNN [default: 32,64]
    pub channels: Option<Vec<usize>>,
    /// classification or regression [default: regression for diabetes, else classification]
    pub task: Option<Task>,
    /// Regression: the last N CSV columns are the targets [default: 1]
    pub targets: Option<usize>,
    /// The loss [default: cross_entropy; mse for regression]
    pub loss: Option<Loss>,
    /// The Huber loss's delta, torch HuberLoss(delta) [default: 1.0]
    pub huber_delta: Option<f64>,
    /// The optimizer [default: sgd]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate [default: 0.1]
    pub lr: Option<f64>,
    /// SGD momentum [default: 0]; for AdamW the first beta
    pub momentum: Option<f64>,
    /// Nesterov momentum (SGD)
    pub nesterov: Option<bool>,
    /// Weight decay [default: 0 for sgd, 0.01 for adamw]
    pub weight_decay: Option<f64>,
    /// AdamW betas [default: 0.9,0.999]
    pub betas: Option<Vec<f64>>,
    /// AdamW epsilon [default: 1e-8]
    pub eps: Option<f64>,
    /// Examples per batch [default: 64]
    pub batch_size: Option<usize>,
    /// Epochs planned [default: 20]
    pub epochs: Option<usize>,
    /// Gradient accumulation steps per optimizer step [default: 1]
    pub accumulation: Option<usize>,
    /// Rule when a policy changes the batch size without setting lr [default: linear for sgd, sqrt for adamw]
    pub lr_scaling: Option<Rescale>,
    /// Policy name or path, repeatable; run in the order given [default: default]
    pub policy: Option<Vec<String>>,
    /// [POLICY.]KEY=VALUE, VALUE as JSON, repeatable
    pub param: Option<Vec<String>>,
    /// Hot reload of policies: auto (native file events, polling where they fail), poll, off [default: auto]
    pub watch: Option<WatchMode>,
    /// Run directory [default: runs/<time>]
    pub out: Option<PathBuf>,
    /// Seed of the split, the shuffle and the initialisation [default: 0]
    pub seed: Option<u64>,
    /// cpu | cuda[:N] [default: cpu]
    pub device: Option<String>,
    /// CPU threads for the tensor kernels [default: 2; 1 under mpirun]
    pub threads: Option<usize>,
    /// Whose CPU kernels train: rudder's own or candle's autograd [default: rudder]
    pub kernels: Option<Kernels>,
    /// Epochs between checkpoints, 0 for none but `best` [default: 1]
    pub checkpoint_every: Option<usize>,
    /// Periodic checkpoints kept, 0 for all [default: 3]
    pub keep_last: Option<usize>,
    /// Checkpoints a policy's `save` tags kept, the newest; 0 for all [default: 10]
    pub keep_tagged: Option<usize>,
    /// Metric that picks the `best` checkpoint: train_loss, train_acc, val_loss, val_acc; for a regression val_rmse, val_mae, val_r2 (min for losses and errors, max for accuracies and R^2) [default: val_loss]
    pub monitor: Option<String>,
    /// Continue the run in DIR from its last checkpoint, with its config.json (options given here override it)
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Also write steps.jsonl
    pub log_steps: Option<bool>,
    /// Also write TensorBoard event files, in DIR/<run folder name> (a sweep: DIR/<sweep folder>/<trial>)
    pub tensorboard: Option<PathBuf>,
    /// No progress bars or per-epoch lines on stderr
    pub quiet: Option<bool>,
    /// `rudder sweep` alone: where its trials run, `local` or `slurm` (its
    /// `--launcher`); `rudder train` refuses it.
    #[serde(default, skip_serializing)]
    pub launcher: Option<crate::SweepLauncher>,
    /// A run's own record of its resumes (config.json); not an option.
    #[serde(skip_serializing)]
    pub resumes: Option<Vec<serde_json::Value>>,
    /// A run's own record of the data it trains on (config.json); not an option.
    #[serde(skip_serializing)]
    pub data_sha256: Option<String>,
    /// A run's own record of its model file's SHA-256 (config.json); not an option.
    #[serde(skip_serializing)]
    pub model_sha256: Option<String>,
    /// A run's own record of what steered it (config.json); not an option.
    #[serde(skip_serializing)]
    pub provenance: Option<Vec<serde_json::Value>>,
}

impl TrainOptions {
    /// The options that are set, as a JSON map (`config`, `resume` and the run's
    /// own records left out).
    pub fn given(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.retain(|k, v| !v.is_null() && k != "config" && k != "resume");
                m
            }
            _ => serde_json::Map::new(),
        }
    }

    /// Fills each unset option from `file`.
    pub fn or(self, file: TrainOptions) -> TrainOptions {
        macro_rules! pick {
            ($($f:ident),*) => { TrainOptions { config: self.config, resume: self.resume, resumes: file.resumes, data_sha256: file.data_sha256, model_sha256: file.model_sha256, provenance: file.provenance, $( $f: self.$f.or(file.$f), )* } };
        }
        pick!(
            data,
            data_dir,
            val_fraction,
            model,
            dropout,
            hidden,
            channels,
            task,
            targets,
            loss,
            huber_delta,
            optimizer,
            lr,
            momentum,
            nesterov,
            weight_decay,
            betas,
            eps,
            batch_size,
            epochs,
            accumulation,
            lr_scaling,
            policy,
            param,
            watch,
            out,
            seed,
            device,
            threads,
            kernels,
            log_steps,
            tensorboard,
            checkpoint_every,
            keep_last,
            keep_tagged,
            monitor,
            quiet,
            launcher
        )
    }
}
