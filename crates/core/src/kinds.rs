//! The kinds a run is made of: what it predicts, the loss and the optimizer it
//! trains with, whose kernels compute it, and the optimizer's hyperparameters. Each
//! kind lists its names (`ALL`, `name`) and a line about each (`about`), which the
//! command line shows as its possible values.

use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// Implements `ALL`, `name`, `about` and `FromStr` for a kind from one table of
/// `Variant => "name", "about"`.
macro_rules! kind {
    ($ty:ident, $expected:literal, $($v:ident => $name:literal, $about:expr;)*) => {
        impl $ty {
            /// Every value, in the order the command line lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$v),*];

            /// The name flags, config files and `config.json` use.
            pub fn name(self) -> &'static str {
                match self { $($ty::$v => $name),* }
            }

            /// One line about it, for the command line's help (`None`: the name says it).
            pub fn about(self) -> Option<&'static str> {
                match self { $($ty::$v => $about),* }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<$ty, UnknownName> {
                match s {
                    $($name => Ok($ty::$v),)*
                    other => Err(UnknownName::new($expected, other)),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// `--task`: what the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// A class per example (the label column holds class numbers).
    Classification,
    /// One or more real numbers per example (the last `--targets` columns).
    Regression,
}

kind!(Task, "must be classification or regression",
    Classification => "classification", Some("A class per example (the label column holds class numbers)");
    Regression => "regression", Some("One or more real numbers per example (the last `--targets` columns)");
);

/// `--loss`: which loss to train with; each is the batch mean, as PyTorch's default
/// `reduction="mean"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy, torch `CrossEntropyLoss`.
    CrossEntropy,
    /// Squared error against one-hot targets, torch `MSELoss` (mean over all elements);
    /// for a regression, against the real targets.
    Mse,
    /// Multi-class margin loss, torch `MultiMarginLoss(p=1, margin=1)`.
    Hinge,
    /// Regression: mean absolute error, torch `L1Loss`.
    Mae,
    /// Regression: torch `HuberLoss(delta)` (`--huber-delta`).
    Huber,
}

kind!(Loss, "must be cross_entropy, mse, hinge, mae or huber",
    CrossEntropy => "cross_entropy", Some("Softmax cross-entropy, torch `CrossEntropyLoss`");
    Mse => "mse", Some("Squared error against one-hot targets, torch `MSELoss` (mean over all elements)");
    Hinge => "hinge", Some("Multi-class margin loss, torch `MultiMarginLoss(p=1, margin=1)`");
    Mae => "mae", Some("Regression: mean absolute error, torch `L1Loss`");
    Huber => "huber", Some("Regression: torch `HuberLoss(delta)` (`--huber-delta`)");
);

impl Loss {
    /// Whether this loss applies to `task` (`mse` to both).
    pub fn fits(self, task: Task) -> bool {
        match self {
            Loss::Mse => true,
            Loss::CrossEntropy | Loss::Hinge => task == Task::Classification,
            Loss::Mae | Loss::Huber => task == Task::Regression,
        }
    }

    /// The loss a task trains with unless told otherwise.
    pub fn default_for(task: Task) -> Loss {
        match task {
            Task::Classification => Loss::CrossEntropy,
            Task::Regression => Loss::Mse,
        }
    }
}

/// `--optimizer`: which optimizer to train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with momentum, Nesterov and weight decay, torch `SGD`.
    Sgd,
    /// AdamW (decoupled weight decay), torch `AdamW`.
    Adamw,
}

kind!(OptimizerKind, "must be sgd or adamw",
    Sgd => "sgd", None;
    Adamw => "adamw", None;
);

impl OptimizerKind {
    /// The names of the state tensors kept per parameter, as torch names them: the
    /// momentum buffer (SGD), or the two moments (AdamW).
    pub fn state_names(self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Sgd => &["momentum_buffer"],
            OptimizerKind::Adamw => &["exp_avg", "exp_avg_sq"],
        }
    }
}

/// `--kernels`: whose arithmetic trains on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    /// Our own layer kernels (the CPU engine) where the model allows, else candle.
    Rudder,
    /// candle's autograd and tensor ops (the reference path; always used on CUDA).
    Candle,
}

kind!(Kernels, "must be rudder or candle",
    Rudder => "rudder", Some("Our own layer kernels (the CPU engine) where the model allows, else candle");
    Candle => "candle", Some("candle's autograd and tensor ops (the reference path; always used on CUDA)");
);

/// Hyperparameters of either optimizer; each is settable between steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    /// The learning rate.
    pub lr: f64,
    /// SGD momentum; for AdamW the first beta (as torch's `OneCycleLR` treats it).
    pub momentum: f64,
    /// L2 penalty (SGD) or decoupled weight decay (AdamW).
    pub weight_decay: f64,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// AdamW's second beta.
    pub beta2: f64,
    /// AdamW's epsilon.
    pub eps: f64,
}

/// Where `rudder sweep` runs its trials (`--launcher`, the config's `launcher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepLauncher {
    /// Here, `--jobs` at a time on threads of this process.
    Local,
    /// As a Slurm job array, this process following it.
    Slurm,
}
