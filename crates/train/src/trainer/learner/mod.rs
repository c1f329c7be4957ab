//! How one step's arithmetic is done: candle's autograd over the [`Model`] (any device,
//! the reference), or the CPU engine (our own kernels). The trainer drives either
//! through [`Learner`] and never sees the difference.

mod candle;
mod engine;

use candle_core::Tensor;
use rudder_nn::data::Split;
use rudder_nn::model::Model;
use rudder_nn::optim::{Hyper, State};

use crate::dist::Collective;

pub use candle::CandleLearner;
pub use engine::EngineLearner;

/// Gradient of a step's batches, then one update.
pub trait Learner {
    /// Whose kernels compute the steps: `rudder` (the CPU engine) or `candle`
    /// (autograd), as `--kernels` spells them (in the `run_start` event).
    fn kernels(&self) -> &'static str;
    /// Forward and backward on the examples `rows` of `split`; the gradient is written
    /// (`first`) or added, scaled by `scale`. Returns (mean loss, correct).
    fn accumulate(
        &mut self,
        split: &Split,
        rows: &[u32],
        first: bool,
        scale: f64,
    ) -> candle_core::Result<(f64, f64)>;
    /// Sets the gradient to zero: a step whose batch has no rows on this rank still
    /// takes part in the sum across ranks.
    fn zero_grad(&mut self) -> candle_core::Result<()>;
    /// Sums the accumulated gradient across the ranks of `world` (one flat buffer).
    fn reduce_grads(&mut self, world: &dyn Collective) -> candle_core::Result<()>;
    /// One optimizer update from the accumulated gradient.
    fn step(&mut self) -> candle_core::Result<()>;
    /// The summed loss and the number right over the examples `rows` of `split`, in
    /// evaluation mode (a rank's shard of validation).
    fn evaluate(
        &mut self,
        split: &Split,
        rows: std::ops::Range<usize>,
    ) -> candle_core::Result<Sums>;
    /// The optimizer's hyperparameters.
    fn hyper(&self) -> Hyper;
    /// Sets the optimizer's hyperparameters from the next update on.
    fn set_hyper(&mut self, h: Hyper);
    /// Brings the candle model up to date with the learner's weights.
    fn sync_model(&mut self) -> candle_core::Result<()>;
    /// The candle model; its weights are current after `sync_model`.
    fn model(&self) -> &Model;
    /// Takes the weights from the candle model after they were replaced (a rollback,
    /// a resume).
    fn reload_model(&mut self) -> candle_core::Result<()>;
    /// The optimizer's state tensors, named and shaped as the candle optimizers keep
    /// them (so a checkpoint does not depend on which kernels wrote it).
    fn optimizer_state(&self) -> candle_core::Result<Vec<(String, Tensor)>>;
    /// Replaces the optimizer's state and its count of updates.
    fn load_optimizer_state(&mut self, state: &State, steps: u64) -> candle_core::Result<()>;
    /// Optimizer updates done.
    fn optimizer_steps(&self) -> u64;
}

/// What an evaluation adds up: the loss over examples and, for classification, the
/// examples classified right; for regression the absolute and, per target, the
/// squared errors in the targets' units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    /// The loss summed over the examples.
    pub loss: f64,
    /// Examples classified right (classification).
    pub correct: f64,
    /// The absolute errors summed over examples and targets, in the targets' units
    /// (regression).
    pub abs_err: f64,
    /// Per target, the squared errors summed over the examples, in the targets' units
    /// (regression).
    pub sq_err: Vec<f64>,
}

impl Sums {
    /// As one buffer, for a reduction across ranks.
    pub fn to_vec(&self) -> Vec<f64> {
        let mut v = vec![self.loss, self.correct, self.abs_err];
        v.extend(&self.sq_err);
        v
    }

    /// The inverse of [`Sums::to_vec`].
    pub fn from_slice(v: &[f64]) -> Sums {
        Sums {
            loss: v[0],
            correct: v[1],
            abs_err: v[2],
            sq_err: v[3..].to_vec(),
        }
    }
}

/// Examples per evaluation batch.
pub(super) const EVAL_BATCH: usize = 1000;
/// The engine keeps activations for a whole batch; smaller evaluation batches bound
/// that memory (the CNN's im2col buffer is 113 KB per example).
pub(super) const ENGINE_EVAL_BATCH: usize = 128;
