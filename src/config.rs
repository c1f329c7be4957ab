//! The configuration of a run: options from the command line and a JSON `--config`
//! file (the command line wins), validated into a resolved [`TrainConfig`] that is
//! written to `config.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::Source;
use crate::loss::Loss;
use crate::model::Arch;
use crate::optim::{self, Hyper};
use rudder_policy::{Rescale, WatchMode};

/// The largest `--config` file read.
pub const MAX_CONFIG: u64 = 1 << 20;
/// The largest `config.json` of a run read back on `--resume` (its `resumes` grow).
pub const MAX_RUN_CONFIG: u64 = 64 << 20;
/// The most bytes of one `--param`.
pub const MAX_PARAM: usize = 64 << 10;

pub use rudder_policy::limits::{MAX_ACCUMULATION, MAX_EPOCHS};

/// A bad option or config file; the message names the flag, or the file, line and
/// column. Exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// `--model`: a built-in model, or a model file (`*.json`, see `model::spec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    Mlp,
    Cnn,
    File(PathBuf),
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ModelKind, String> {
        match s {
            "mlp" => Ok(ModelKind::Mlp),
            "cnn" => Ok(ModelKind::Cnn),
            path if path.ends_with(".json") => Ok(ModelKind::File(PathBuf::from(path))),
            other => Err(format!(
                "expected mlp, cnn or a model file FILE.json, got {:?}",
                crate::runlog::clip(other)
            )),
        }
    }
}

impl ModelKind {
    /// As the command line writes it.
    pub fn name(&self) -> String {
        match self {
            ModelKind::Mlp => "mlp".into(),
            ModelKind::Cnn => "cnn".into(),
            ModelKind::File(p) => p.display().to_string(),
        }
    }
}

impl Serialize for ModelKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ModelKind, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `--model`'s parser (clap lists mlp and cnn; a path ending in .json is a file).
fn model_parser(s: &str) -> Result<ModelKind, String> {
    s.parse()
}

/// `--task`: what the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// A class per example (the label column holds class numbers).
    Classification,
    /// One or more real numbers per example (the last `--targets` columns).
    Regression,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

/// `--kernels`: whose arithmetic trains on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    /// Our own layer kernels (the CPU engine) where the model allows, else candle.
    Rudder,
    /// candle's autograd and tensor ops (the reference path; always used on CUDA).
    Candle,
}

/// Options of `rudder train`, each also a key of the `--config` file. Every field is
/// optional here; defaults are filled in by [`TrainOptions::resolve`].
#[derive(Debug, Clone, Default, clap::Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// JSON file with any of these options (keys with `_`); the command line wins.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// digits | mnist | fashion-mnist | PATH.csv [default: digits]
    #[arg(long)]
    pub data: Option<String>,
    /// Folder of the IDX files [default: $RUDDER_DATA/NAME, else ./data/NAME]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Validation split for sets without one [default: 0.1]
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub val_fraction: Option<f64>,
    /// mlp, cnn or a model file FILE.json [default: mlp]
    #[arg(long, value_parser = model_parser, value_name = "mlp|cnn|FILE.json")]
    pub model: Option<ModelKind>,
    /// Dropout after each hidden ReLU of the built-in MLP [default: 0]
    #[arg(long, value_name = "P")]
    pub dropout: Option<f64>,
    /// Hidden layer widths of the MLP [default: 256,128]
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub hidden: Option<Vec<usize>>,
    /// Channels per convolution block of the CNN [default: 32,64]
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub channels: Option<Vec<usize>>,
    /// classification or regression [default: regression for diabetes, else classification]
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Regression: the last N CSV columns are the targets [default: 1]
    #[arg(long, value_name = "N")]
    pub targets: Option<usize>,
    /// [default: cross_entropy; mse for regression]
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// The Huber loss's delta, torch HuberLoss(delta) [default: 1.0]
    #[arg(long, value_name = "X")]
    pub huber_delta: Option<f64>,
    /// [default: sgd]
    #[arg(long, value_enum)]
    pub optimizer: Option<optim::Kind>,
    /// Learning rate [default: 0.1]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// SGD momentum [default: 0]; for AdamW the first beta
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (SGD)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub nesterov: Option<bool>,
    /// [default: 0 for sgd, 0.01 for adamw]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// AdamW betas [default: 0.9,0.999]
    #[arg(long, value_delimiter = ',', value_name = "B1,B2")]
    pub betas: Option<Vec<f64>>,
    /// AdamW epsilon [default: 1e-8]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// [default: 64]
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// [default: 20]
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Gradient accumulation steps per optimizer step [default: 1]
    #[arg(long, value_name = "N")]
    pub accumulation: Option<usize>,
    /// Rule when a policy changes the batch size without setting lr [default: linear for sgd, sqrt for adamw]
    #[arg(long, value_parser = rescale_parser())]
    pub lr_scaling: Option<Rescale>,
    /// Policy name or path, repeatable; run in the order given [default: default]
    #[arg(long = "policy", value_name = "NAME|PATH")]
    pub policy: Option<Vec<String>>,
    /// [POLICY.]KEY=VALUE, VALUE as JSON, repeatable
    #[arg(long = "param", value_name = "[POLICY.]KEY=VALUE")]
    pub param: Option<Vec<String>>,
    /// Hot reload of policies: auto (native file events, polling where they fail), poll, off [default: auto]
    #[arg(long, value_parser = watch_parser())]
    pub watch: Option<WatchMode>,
    /// Run directory [default: runs/<time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the split, the shuffle and the initialisation [default: 0]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// cpu | cuda[:N] [default: cpu]
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for the tensor kernels [default: 2; 1 under mpirun]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Whose CPU kernels train: rudder's own or candle's autograd [default: rudder]
    #[arg(long, value_enum)]
    pub kernels: Option<Kernels>,
    /// Epochs between checkpoints, 0 for none but `best` [default: 1]
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Periodic checkpoints kept, 0 for all [default: 3]
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Metric that picks the `best` checkpoint: train_loss, train_acc, val_loss, val_acc; for a regression val_rmse, val_mae, val_r2 (min for losses and errors, max for accuracies and R^2) [default: val_loss]
    #[arg(long, value_name = "METRIC")]
    pub monitor: Option<String>,
    /// Continue the run in DIR from its last checkpoint, with its config.json (options given here override it)
    #[arg(long, value_name = "DIR")]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Also write steps.jsonl
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub log_steps: Option<bool>,
    /// Also write TensorBoard event files, in DIR/<run folder name> (a sweep: DIR/<sweep folder>/<trial>)
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// No progress bars or per-epoch lines on stderr
    #[arg(long, short, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub quiet: Option<bool>,
    /// A run's own record of its resumes (config.json); not an option.
    #[arg(skip)]
    #[serde(skip_serializing)]
    pub resumes: Option<Vec<serde_json::Value>>,
    /// A run's own record of the data it trains on (config.json); not an option.
    #[arg(skip)]
    #[serde(skip_serializing)]
    pub data_sha256: Option<String>,
}

/// What a `--resume` was given that changes the run from then on: the settings of
/// SPEC section 1 (the rest of the options take effect by the configuration itself).
#[derive(Debug, Clone, Default, PartialEq)]
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

/// Options a resumed run cannot change: they decide the model's shape, the data or
/// the optimizer's state.
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

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

/// `--lr-scaling` and `--rule`: the rule's names, which clap lists in help and errors.
pub fn rescale_parser() -> impl clap::builder::TypedValueParser<Value = Rescale> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["linear", "sqrt", "none"])
        .map(|s| Rescale::from_name(&s).expect("one of the names listed"))
}

/// `--watch`: auto, poll or off.
pub fn watch_parser() -> impl clap::builder::TypedValueParser<Value = WatchMode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["auto", "poll", "off"])
        .map(|s| s.parse::<WatchMode>().expect("one of the names listed"))
}

/// The resolved configuration, as written to `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub optimizer: optim::Kind,
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
    pub monitor: String,
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Each resume of the run: when, at which step and epoch, and the options given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resumes: Vec<serde_json::Value>,
    /// SHA-256 of the data the run trains on (`Data::fingerprint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
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

impl TrainOptions {
    /// Reads a `--config` file; errors name the file, line and column.
    pub fn from_file(path: &Path) -> Result<TrainOptions, ConfigError> {
        Self::read_file(path, "--config", MAX_CONFIG)
    }

    /// Reads a run's own `config.json` (on `--resume`): larger (its `resumes` grow),
    /// and its `resumes` kept.
    pub fn from_run(path: &Path, dir: &Path) -> Result<TrainOptions, ConfigError> {
        Self::read_file(
            path,
            &format!("--resume {}:", dir.display()),
            MAX_RUN_CONFIG,
        )
    }

    fn read_file(path: &Path, flag: &str, limit: u64) -> Result<TrainOptions, ConfigError> {
        let fault = |msg: String| ConfigError(format!("{flag} {}: {msg}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| fault(e.to_string()))?;
        if !meta.is_file() {
            return Err(fault("not a regular file".into()));
        }
        if meta.len() > limit {
            return Err(fault(format!(
                "{} bytes; a config file is at most {} KiB",
                meta.len(),
                limit >> 10
            )));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(
                std::fs::File::open(path).map_err(|e| fault(e.to_string()))?,
                limit + 1,
            ),
            &mut bytes,
        )
        .map_err(|e| fault(e.to_string()))?;
        if bytes.len() as u64 > limit {
            return Err(fault("grew past its size limit while read".into()));
        }
        let text = String::from_utf8(bytes).map_err(|_| fault("not UTF-8 text".into()))?;
        // serde would read an array as the fields in order.
        if let Some(c) = text.trim_start().chars().next()
            && c != '{'
        {
            return Err(fault("must be a JSON object ({\"lr\": 0.1, ...})".into()));
        }
        let mut de = serde_json::Deserializer::from_str(&text);
        let parsed: TrainOptions = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let msg = crate::runlog::clip_quoted(&inner.to_string());
            let msg = msg.split(" at line ").next().unwrap_or(&msg);
            let at = format!("{}:{}:{}", path.display(), inner.line(), inner.column());
            if key == "." || msg.contains(&format!("`{key}`")) {
                ConfigError(format!("{at}: {msg}"))
            } else {
                ConfigError(format!("{at}: {key}: {msg}"))
            }
        })?;
        // Nothing may follow the object.
        de.end().map_err(|e| {
            ConfigError(format!(
                "{}:{}:{}: text after the JSON object",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        Ok(parsed)
    }

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
            ($($f:ident),*) => { TrainOptions { config: self.config, resume: self.resume, resumes: file.resumes, data_sha256: file.data_sha256, $( $f: self.$f.or(file.$f), )* } };
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
            monitor,
            quiet
        )
    }

    /// Checks the values that are set; `name` turns a key into how the user wrote it
    /// (`--batch-size`, or `FILE: batch_size`).
    pub fn check(&self, name: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let fail = |key: &str, msg: String| Err(ConfigError(format!("{}: {msg}", name(key))));
        // The ranges a decision has too (one check for both).
        for (key, v) in [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
        ] {
            if let Some(Err(e)) = v.map(|x| rudder_policy::check_hyper(key, x)) {
                return fail(key, e.message);
            }
        }
        if let Some(p) = self.dropout.filter(|p| !(0.0..1.0).contains(p)) {
            return fail("dropout", format!("must be in [0, 1), got {p}"));
        }
        if self.dropout.is_some_and(|p| p > 0.0)
            && self.model.as_ref().is_some_and(|m| *m != ModelKind::Mlp)
        {
            return fail(
                "dropout",
                "is for the built-in mlp; a model file has its own dropout layers".into(),
            );
        }
        if let Some(d) = self.huber_delta.filter(|&d| !(d.is_finite() && d > 0.0)) {
            return fail(
                "huber_delta",
                format!("must be a finite number > 0, got {d}"),
            );
        }
        match self.targets {
            Some(0) => return fail("targets", "must be at least 1, got 0".into()),
            Some(t) if t > 1024 => {
                return fail("targets", format!("must be at most 1024, got {t}"));
            }
            _ => {}
        }
        if let Some(e) = self.eps.filter(|&e| !(e.is_finite() && e > 0.0)) {
            return fail("eps", format!("must be a finite number > 0, got {e}"));
        }
        if let Some(f) = self.val_fraction.filter(|&f| !(f > 0.0 && f < 1.0)) {
            return fail("val_fraction", format!("must be between 0 and 1, got {f}"));
        }
        for (key, v) in [
            ("batch_size", self.batch_size),
            ("epochs", self.epochs),
            ("accumulation", self.accumulation),
        ] {
            if let Some(Err(e)) = v.map(|n| rudder_policy::check_count(key, n)) {
                return fail(key, e.message);
            }
        }
        match self.threads {
            Some(0) => return fail("threads", "must be at least 1, got 0".into()),
            Some(t) if t > 1024 => {
                return fail("threads", format!("must be at most 1024, got {t}"));
            }
            _ => {}
        }
        for (key, v) in [("hidden", &self.hidden), ("channels", &self.channels)] {
            if let Some(v) = v
                && (v.is_empty() || v.contains(&0))
            {
                return fail(key, format!("needs widths >= 1, got {v:?}"));
            }
        }
        if let Some(b) = &self.betas
            && (b.len() != 2 || b.iter().any(|&x| !(0.0..1.0).contains(&x)))
        {
            return fail("betas", format!("needs two numbers in [0, 1), got {b:?}"));
        }
        for p in self.param.iter().flatten() {
            if p.len() > MAX_PARAM {
                return fail(
                    "param",
                    format!(
                        "{}: {} bytes, more than the {} KiB a --param may have",
                        crate::runlog::clip(p),
                        p.len(),
                        MAX_PARAM >> 10
                    ),
                );
            }
            p.parse::<rudder_policy::Param>().map_err(|m| {
                ConfigError(format!("{}: {}", name("param"), crate::runlog::clip(&m)))
            })?;
        }
        if self.resumes.is_some() || self.data_sha256.is_some() {
            return fail(
                if self.resumes.is_some() {
                    "resumes"
                } else {
                    "data_sha256"
                },
                "is a run's own record in its config.json, not an option".into(),
            );
        }
        if let Some(Err(msg)) = self.monitor.as_deref().map(crate::runlog::check_metric) {
            return fail("monitor", msg);
        }
        if let Some(d) = &self.device {
            parse_device(d).map_err(|m| ConfigError(format!("{}: {m}", name("device"))))?;
        }
        Ok(())
    }

    /// Fills defaults and checks the combination.
    pub fn resolve(self) -> Result<TrainConfig, ConfigError> {
        let optimizer = self.optimizer.unwrap_or(optim::Kind::Sgd);
        let adamw = optimizer == optim::Kind::Adamw;
        let betas = self.betas.map_or([0.9, 0.999], |b| [b[0], b[1]]);
        let momentum = self.momentum.unwrap_or(if adamw { betas[0] } else { 0.0 });
        let nesterov = self.nesterov.unwrap_or(false);
        if nesterov && (adamw || momentum == 0.0) {
            return Err(ConfigError(
                "--nesterov: needs --optimizer sgd and --momentum > 0".into(),
            ));
        }
        let data = self.data.unwrap_or_else(|| "digits".into());
        let task = self.task.unwrap_or(if data == "diabetes" {
            Task::Regression
        } else {
            Task::Classification
        });
        let loss = self.loss.unwrap_or(match task {
            Task::Classification => Loss::CrossEntropy,
            Task::Regression => Loss::Mse,
        });
        if !loss.fits(task) {
            return Err(ConfigError(format!(
                "--loss {}: not a {} loss (classification: cross_entropy, mse, hinge; regression: mse, mae, huber)",
                loss.name(),
                task.name()
            )));
        }
        if let Some(t) = self
            .targets
            .filter(|&t| t != 1 && task == Task::Classification)
        {
            return Err(ConfigError(format!(
                "--targets {t}: only for --task regression"
            )));
        }
        if let Some(m) = self.monitor.as_deref()
            && let Err(msg) = crate::runlog::check_task_metric(m, task)
        {
            return Err(ConfigError(format!("--monitor: {msg}")));
        }
        Ok(TrainConfig {
            data,
            data_dir: self.data_dir,
            val_fraction: self.val_fraction.unwrap_or(0.1),
            dropout: self.dropout.unwrap_or(0.0),
            model: self.model.clone().unwrap_or(ModelKind::Mlp),
            hidden: self.hidden.unwrap_or_else(|| vec![256, 128]),
            channels: self.channels.unwrap_or_else(|| vec![32, 64]),
            task,
            targets: self.targets.unwrap_or(1),
            loss,
            huber_delta: self.huber_delta.unwrap_or(1.0),
            optimizer,
            lr: self.lr.unwrap_or(0.1),
            momentum,
            nesterov,
            weight_decay: self.weight_decay.unwrap_or(if adamw { 0.01 } else { 0.0 }),
            betas: [if adamw { momentum } else { betas[0] }, betas[1]],
            eps: self.eps.unwrap_or(1e-8),
            batch_size: self.batch_size.unwrap_or(64),
            epochs: self.epochs.unwrap_or(20),
            accumulation: self.accumulation.unwrap_or(1),
            lr_scaling: self.lr_scaling.unwrap_or(if adamw {
                Rescale::Sqrt
            } else {
                Rescale::Linear
            }),
            policy: self.policy.unwrap_or_else(|| vec!["default".into()]),
            param: self.param.unwrap_or_default(),
            watch: self.watch.unwrap_or(WatchMode::Auto),
            out: self.out.unwrap_or_else(crate::runlog::default_run_dir),
            seed: self.seed.unwrap_or(0),
            device: self.device.unwrap_or_else(|| "cpu".into()),
            // Measured best here (BENCHMARKS.md): 2 for the MLP, the CNN and a model
            // file with a convolution; 1 for each rank under an MPI launcher, whose
            // ranks share the cores.
            threads: self
                .threads
                .unwrap_or(if crate::dist::under_launcher() { 1 } else { 2 }),
            kernels: self.kernels.unwrap_or(Kernels::Rudder),
            log_steps: self.log_steps.unwrap_or(false),
            tensorboard: self.tensorboard,
            checkpoint_every: self.checkpoint_every.unwrap_or(1),
            keep_last: self.keep_last.unwrap_or(3),
            monitor: self.monitor.unwrap_or_else(|| "val_loss".into()),
            resume: self.resume,
            resumes: self.resumes.unwrap_or_default(),
            data_sha256: self.data_sha256,
            overrides: Overrides::default(),
            stop_on_divergence: false,
            quiet: self.quiet.unwrap_or(false),
        })
    }
}

/// `cpu`, `cuda` or `cuda:N`, as a device ordinal (`None` for the CPU).
pub fn parse_device(s: &str) -> Result<Option<usize>, String> {
    match s {
        "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("expected cpu, cuda or cuda:N, got {s:?}")),
    }
}

impl TrainConfig {
    /// Where the examples come from, with `--data-dir` resolved for IDX sets.
    pub fn source(&self) -> Source {
        let dir = |name: &str| {
            self.data_dir
                .clone()
                .unwrap_or_else(|| match std::env::var_os("RUDDER_DATA") {
                    Some(root) => PathBuf::from(root).join(name),
                    None => PathBuf::from("data").join(name),
                })
        };
        match self.data.as_str() {
            "digits" => Source::Digits,
            "diabetes" => Source::Diabetes,
            "mnist" => Source::Mnist(dir("mnist")),
            "fashion-mnist" => Source::FashionMnist(dir("fashion-mnist")),
            path => Source::Csv(PathBuf::from(path)),
        }
    }

    /// The architecture to build: a built-in one, or a model file's, read here
    /// (a file that spells out the built-in MLP or CNN is that model, so the CPU
    /// engine trains it). `--dropout` makes the MLP a model of its own.
    pub fn arch(&self) -> Result<Arch, ConfigError> {
        Ok(match &self.model {
            ModelKind::Mlp if self.dropout > 0.0 => Arch::File {
                name: format!("mlp {:?} dropout {}", self.hidden, self.dropout),
                spec: crate::model::spec::Spec::mlp(&self.hidden, self.dropout),
            },
            ModelKind::Mlp => Arch::Mlp {
                hidden: self.hidden.clone(),
            },
            ModelKind::Cnn => Arch::Cnn {
                channels: self.channels.clone(),
            },
            ModelKind::File(path) => {
                let spec = crate::model::spec::Spec::read(path).map_err(ConfigError)?;
                if let Some(hidden) = spec.as_mlp() {
                    Arch::Mlp { hidden }
                } else if let Some(channels) = spec.as_cnn() {
                    Arch::Cnn { channels }
                } else {
                    Arch::File {
                        name: path.display().to_string(),
                        spec,
                    }
                }
            }
        })
    }

    /// One line describing the setup, for the report.
    pub fn headline(&self) -> String {
        let model = match &self.model {
            ModelKind::Mlp => format!("mlp {:?}", self.hidden),
            ModelKind::Cnn => format!("cnn {:?}", self.channels),
            ModelKind::File(p) => format!("model {}", p.display()),
        };
        format!(
            "{model} on {} · {} loss · {} lr {} momentum {} weight decay {} · batch {} x {} · seed {}",
            self.data,
            self.loss.name(),
            self.optimizer.name(),
            self.lr,
            self.momentum,
            self.weight_decay,
            self.batch_size,
            self.accumulation,
            self.seed
        )
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_over_the_file() {
        let cli = TrainOptions {
            lr: Some(0.5),
            ..Default::default()
        };
        let file: TrainOptions =
            serde_json::from_str(r#"{"lr": 1, "epochs": 3, "hidden": [8]}"#).unwrap();
        let c = cli.or(file).resolve().unwrap();
        assert_eq!((c.lr, c.epochs, c.hidden.clone()), (0.5, 3, vec![8]));
        assert_eq!(c.batch_size, 64);
    }

    #[test]
    fn adamw_defaults_follow_torch() {
        let c = TrainOptions {
            optimizer: Some(optim::Kind::Adamw),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            (c.momentum, c.betas, c.weight_decay, c.lr_scaling),
            (0.9, [0.9, 0.999], 0.01, Rescale::Sqrt)
        );
    }

    #[test]
    fn bad_values_name_the_flag() {
        let o = TrainOptions {
            batch_size: Some(0),
            ..Default::default()
        };
        let e = o
            .check(&|k| format!("--{}", k.replace('_', "-")))
            .unwrap_err();
        assert_eq!(e.to_string(), "--batch-size: must be at least 1, got 0");
    }
}
