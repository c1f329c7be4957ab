//! The flags of the commands that train, parsed by clap and handed to the library as
//! a [`TrainOptions`]; and the parsers of the kinds, names and models they take.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use rudder_core::{
    Kernels, Loss, ModelKind, OptimizerKind, Rescale, Task, TrainOptions, WatchMode,
};

/// The flags of `rudder train` (and of the commands that train): one per key of
/// [`TrainOptions`], named as the key with `-` for `_`, plus `--config` and
/// `--resume`. Their help is the user's reference; [`TrainArgs::options`] hands
/// them to the library.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TrainArgs {
    /// JSON file with any of these options (keys with `_`); the command line wins.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// digits | mnist | fashion-mnist | PATH.csv [default: digits]
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Folder of the IDX files [default: $RUDDER_DATA/NAME, else ./data/NAME]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Validation split for sets without one [default: 0.1]
    #[arg(long, value_name = "F", allow_negative_numbers = true)]
    pub(crate) val_fraction: Option<f64>,
    /// mlp, cnn or a model file FILE.json [default: mlp]
    #[arg(long, value_parser = model_parser, value_name = "mlp|cnn|FILE.json")]
    pub(crate) model: Option<ModelKind>,
    /// Dropout after each hidden ReLU of the built-in MLP [default: 0]
    #[arg(long, value_name = "P")]
    pub(crate) dropout: Option<f64>,
    /// Hidden layer widths of the MLP [default: 256,128]
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub(crate) hidden: Option<Vec<usize>>,
    /// Channels per convolution block of the CNN [default: 32,64]
    #[arg(long, value_delimiter = ',', value_name = "N,N")]
    pub(crate) channels: Option<Vec<usize>>,
    /// classification or regression [default: regression for diabetes, else classification]
    #[arg(long, value_parser = kind(Task::ALL, Task::name, Task::about))]
    pub(crate) task: Option<Task>,
    /// Regression: the last N CSV columns are the targets [default: 1]
    #[arg(long, value_name = "N")]
    pub(crate) targets: Option<usize>,
    /// [default: cross_entropy; mse for regression]
    #[arg(long, value_parser = kind(Loss::ALL, Loss::name, Loss::about))]
    pub(crate) loss: Option<Loss>,
    /// The Huber loss's delta, torch HuberLoss(delta) [default: 1.0]
    #[arg(long, value_name = "X")]
    pub(crate) huber_delta: Option<f64>,
    /// [default: sgd]
    #[arg(long, value_parser = kind(OptimizerKind::ALL, OptimizerKind::name, OptimizerKind::about))]
    pub(crate) optimizer: Option<OptimizerKind>,
    /// Learning rate [default: 0.1]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub(crate) lr: Option<f64>,
    /// SGD momentum [default: 0]; for AdamW the first beta
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub(crate) momentum: Option<f64>,
    /// Nesterov momentum (SGD)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) nesterov: Option<bool>,
    /// [default: 0 for sgd, 0.01 for adamw]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub(crate) weight_decay: Option<f64>,
    /// AdamW betas [default: 0.9,0.999]
    #[arg(long, value_delimiter = ',', value_name = "B1,B2")]
    pub(crate) betas: Option<Vec<f64>>,
    /// AdamW epsilon [default: 1e-8]
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub(crate) eps: Option<f64>,
    /// [default: 64]
    #[arg(long, value_name = "N")]
    pub(crate) batch_size: Option<usize>,
    /// [default: 20]
    #[arg(long, value_name = "N")]
    pub(crate) epochs: Option<usize>,
    /// Gradient accumulation steps per optimizer step [default: 1]
    #[arg(long, value_name = "N")]
    pub(crate) accumulation: Option<usize>,
    /// Rule when a policy changes the batch size without setting lr [default: linear for sgd, sqrt for adamw]
    #[arg(long, value_parser = rescale_parser())]
    pub(crate) lr_scaling: Option<Rescale>,
    /// Policy name or path, repeatable; run in the order given [default: default]
    #[arg(long = "policy", value_name = "NAME|PATH")]
    pub(crate) policy: Option<Vec<String>>,
    /// [POLICY.]KEY=VALUE, VALUE as JSON, repeatable
    #[arg(long = "param", value_name = "[POLICY.]KEY=VALUE")]
    pub(crate) param: Option<Vec<String>>,
    /// Hot reload of policies: auto (native file events, polling where they fail), poll, off [default: auto]
    #[arg(long, value_parser = watch_parser())]
    pub(crate) watch: Option<WatchMode>,
    /// Run directory [default: runs/<time>]
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Seed of the split, the shuffle and the initialisation [default: 0]
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// cpu | cuda[:N] [default: cpu]
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// CPU threads for the tensor kernels [default: 2; 1 under mpirun]
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// Whose CPU kernels train: rudder's own or candle's autograd [default: rudder]
    #[arg(long, value_parser = kind(Kernels::ALL, Kernels::name, Kernels::about))]
    pub(crate) kernels: Option<Kernels>,
    /// Epochs between checkpoints, 0 for none but `best` [default: 1]
    #[arg(long, value_name = "N")]
    pub(crate) checkpoint_every: Option<usize>,
    /// Periodic checkpoints kept, 0 for all [default: 3]
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<usize>,
    /// Checkpoints a policy's `save` tags kept, the newest; 0 for all [default: 10]
    #[arg(long, value_name = "N")]
    pub(crate) keep_tagged: Option<usize>,
    /// Metric that picks the `best` checkpoint: train_loss, train_acc, val_loss, val_acc; for a regression val_rmse, val_mae, val_r2 (min for losses and errors, max for accuracies and R^2) [default: val_loss]
    #[arg(long, value_name = "METRIC")]
    pub(crate) monitor: Option<String>,
    /// Continue the run in DIR from its last checkpoint, with its config.json (options given here override it)
    #[arg(long, value_name = "DIR")]
    pub(crate) resume: Option<PathBuf>,
    /// Also write steps.jsonl
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) log_steps: Option<bool>,
    /// Also write TensorBoard event files, in DIR/<run folder name> (a sweep: DIR/<sweep folder>/<trial>)
    #[arg(long, value_name = "DIR")]
    pub(crate) tensorboard: Option<PathBuf>,
    /// No progress bars or per-epoch lines on stderr
    #[arg(long, short, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) quiet: Option<bool>,
}

impl TrainArgs {
    /// The options these flags set, for the library.
    pub(crate) fn options(self) -> TrainOptions {
        TrainOptions {
            config: self.config,
            resume: self.resume,
            data: self.data,
            data_dir: self.data_dir,
            val_fraction: self.val_fraction,
            model: self.model,
            dropout: self.dropout,
            hidden: self.hidden,
            channels: self.channels,
            task: self.task,
            targets: self.targets,
            loss: self.loss,
            huber_delta: self.huber_delta,
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay,
            betas: self.betas,
            eps: self.eps,
            batch_size: self.batch_size,
            epochs: self.epochs,
            accumulation: self.accumulation,
            lr_scaling: self.lr_scaling,
            policy: self.policy,
            param: self.param,
            watch: self.watch,
            out: self.out,
            seed: self.seed,
            device: self.device,
            threads: self.threads,
            kernels: self.kernels,
            checkpoint_every: self.checkpoint_every,
            keep_last: self.keep_last,
            keep_tagged: self.keep_tagged,
            monitor: self.monitor,
            log_steps: self.log_steps,
            tensorboard: self.tensorboard,
            quiet: self.quiet,
            launcher: None,
            resumes: None,
            data_sha256: None,
            model_sha256: None,
            provenance: None,
        }
    }
}

/// A kind's parser: clap lists its names, with a line about each in the long help.
pub(crate) fn kind<T>(
    all: &'static [T],
    name: fn(T) -> &'static str,
    about: fn(T) -> Option<&'static str>,
) -> impl TypedValueParser<Value = T>
where
    T: Copy + Send + Sync + std::str::FromStr + 'static,
{
    let values = all.iter().map(move |&k| {
        let v = PossibleValue::new(name(k));
        match about(k) {
            Some(a) => v.help(a),
            None => v,
        }
    });
    PossibleValuesParser::new(values).map(|s| {
        s.parse::<T>()
            .unwrap_or_else(|_| unreachable!("clap passes only the names listed"))
    })
}

/// `--lr-scaling` and `--rule`: the rule's names, which clap lists in help and errors.
pub(crate) fn rescale_parser() -> impl TypedValueParser<Value = Rescale> {
    PossibleValuesParser::new(Rescale::NAMES).map(|s| {
        Rescale::from_name(&s).unwrap_or_else(|_| unreachable!("clap passes only the names listed"))
    })
}

/// `--watch`: auto, poll or off.
pub(crate) fn watch_parser() -> impl TypedValueParser<Value = WatchMode> {
    PossibleValuesParser::new(WatchMode::NAMES).map(|s| {
        s.parse::<WatchMode>()
            .unwrap_or_else(|_| unreachable!("clap passes only the names listed"))
    })
}

/// `--model`'s parser (clap lists mlp and cnn; a path ending in .json is a file).
fn model_parser(s: &str) -> Result<ModelKind, rudder_core::UnknownName> {
    s.parse()
}

#[cfg(test)]
mod tests;
