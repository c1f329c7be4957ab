//! Optimizers: SGD (momentum, Nesterov, weight decay) and AdamW (decoupled weight
//! decay), updating parameters in place. Hyperparameters may change between any two
//! steps; the state (buffers, moments, step count) is reachable for checkpoints.

mod adamw;
mod flat;
mod kernels;
mod sgd;

pub use adamw::AdamW;
pub use flat::{Flat, StepConsts};
pub use sgd::Sgd;

use candle_core::{Result, Tensor, Var};

/// Which optimizer to train with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Sgd,
    Adamw,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sgd => "sgd",
            Kind::Adamw => "adamw",
        }
    }
}

/// Hyperparameters of either optimizer; each is settable between steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyper {
    pub lr: f64,
    /// SGD momentum; for AdamW the first beta (as torch's `OneCycleLR` treats it).
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    pub beta2: f64,
    pub eps: f64,
}

/// An optimizer over a fixed list of parameters.
pub trait Optimizer: Send {
    /// One update from `grads`, aligned with the parameters given at construction.
    fn step(&mut self, grads: &[Tensor]) -> Result<()>;
    fn hyper(&self) -> Hyper;
    fn set_hyper(&mut self, h: Hyper);
    /// Updates done so far.
    fn steps(&self) -> u64;
    /// Named state tensors (momentum buffers, moments), for checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
}

/// Builds the optimizer of `kind` over `params`.
pub fn build(kind: Kind, params: Vec<(String, Var)>, h: Hyper) -> Result<Box<dyn Optimizer>> {
    Ok(match kind {
        Kind::Sgd => Box::new(Sgd::new(params, h)?),
        Kind::Adamw => Box::new(AdamW::new(params, h)?),
    })
}

#[cfg(test)]
mod tests;
