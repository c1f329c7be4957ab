//! How the LR follows a batch-size change (the founding rule: batch 1024 at LR 16 is
//! batch 64 at LR 1).

use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// How the LR follows a batch-size change: linear (x new/old, SGD's rule), square
/// root (x sqrt(new/old), Adam-type optimizers' rule) or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rescale {
    /// `lr * new / old`.
    Linear,
    /// `lr * sqrt(new / old)`.
    Sqrt,
    /// The LR stays.
    None,
}

impl Rescale {
    /// Every rule, as scripts and the command line name them.
    pub const NAMES: [&'static str; 3] = ["linear", "sqrt", "none"];

    /// `"linear"`, `"sqrt"` or `"none"`, as scripts and the command line write it.
    pub fn from_name(name: &str) -> Result<Rescale, UnknownName> {
        match name {
            "linear" => Ok(Rescale::Linear),
            "sqrt" => Ok(Rescale::Sqrt),
            "none" => Ok(Rescale::None),
            other => Err(UnknownName::new(
                "must be \"linear\", \"sqrt\" or \"none\"",
                other,
            )),
        }
    }

    /// The rule's name.
    pub fn name(self) -> &'static str {
        match self {
            Rescale::Linear => "linear",
            Rescale::Sqrt => "sqrt",
            Rescale::None => "none",
        }
    }

    /// The LR for a batch-size change from `old` to `new`.
    ///
    /// ```
    /// use rudder_core::Rescale;
    /// // A paper's batch 1024 at LR 16, carried to batch 64:
    /// assert_eq!(Rescale::Linear.lr(16.0, 1024.0, 64.0), 1.0);
    /// assert_eq!(Rescale::Sqrt.lr(16.0, 1024.0, 64.0), 4.0);
    /// ```
    pub fn lr(self, lr: f64, old: f64, new: f64) -> f64 {
        match self {
            Rescale::Linear => lr * new / old,
            Rescale::Sqrt => lr * (new / old).sqrt(),
            Rescale::None => lr,
        }
    }

    /// The rule an optimizer's users expect: linear for SGD, square root for AdamW.
    pub fn default_for(optimizer: crate::OptimizerKind) -> Rescale {
        match optimizer {
            crate::OptimizerKind::Sgd => Rescale::Linear,
            crate::OptimizerKind::Adamw => Rescale::Sqrt,
        }
    }
}
