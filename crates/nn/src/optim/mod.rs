//! Optimizers: SGD (momentum, Nesterov, weight decay) and AdamW (decoupled weight
//! decay), updating parameters in place. Hyperparameters may change between any two
//! steps; the state (buffers, moments, step count) is reachable for checkpoints.

mod adamw;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod kernels;
mod sgd;

pub use adamw::AdamW;
pub use sgd::Sgd;

use candle_core::{Result, Tensor, Var};
pub use rudder_core::{Hyper, OptimizerKind};

/// An optimizer over a fixed list of parameters.
pub trait Optimizer: Send {
    /// One update from `grads`, aligned with the parameters given at construction.
    fn step(&mut self, grads: &[Tensor]) -> Result<()>;
    /// The hyperparameters the next step uses.
    fn hyper(&self) -> Hyper;
    /// Sets the hyperparameters from the next step on.
    fn set_hyper(&mut self, h: Hyper);
    /// Updates done so far.
    fn steps(&self) -> u64;
    /// Named state tensors (momentum buffers, moments), for checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Replaces the state with a checkpoint's: tensors named as `state` names them,
    /// and the number of updates done.
    fn load_state(&mut self, state: &State, steps: u64) -> Result<()>;
}

/// Whether the optimizers have fused kernels for `device`: in-place passes on the
/// CPU, one kernel a parameter on CUDA (with the `cuda` feature).
pub fn fused_on(device: &candle_core::Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}

/// Whether optimizers over `params` have fused kernels (on their device).
fn fused_for(params: &[(String, Var)]) -> bool {
    params.first().is_none_or(|(_, p)| fused_on(p.device()))
}

/// Optimizer state by name, as a checkpoint holds it.
pub type State = std::collections::HashMap<String, Tensor>;

/// `state[name]`, checked to have `like`'s shape and moved to its device; `None` when
/// the checkpoint has no such tensor.
pub(crate) fn state_like(state: &State, name: &str, like: &Tensor) -> Result<Option<Tensor>> {
    let Some(t) = state.get(name) else {
        return Ok(None);
    };
    if t.dims() != like.dims() {
        candle_core::bail!(
            "optimizer state {name} has shape {:?}, its parameter {:?}",
            t.dims(),
            like.dims()
        );
    }
    // A copy of its own: the fused CPU kernels update state tensors in place.
    Ok(Some(t.to_device(like.device())?.copy()?))
}

/// The tensors `name(p)` for every parameter: all of them, or none (state that was
/// never allocated); some but not all is an error.
fn all_or_none(
    state: &State,
    params: &[(String, Var)],
    suffix: &str,
) -> Result<Option<Vec<Tensor>>> {
    let found = params
        .iter()
        .map(|(n, p)| state_like(state, &format!("{n}.{suffix}"), p.as_tensor()))
        .collect::<Result<Vec<_>>>()?;
    match found.iter().filter(|t| t.is_none()).count() {
        0 => Ok(Some(found.into_iter().flatten().collect())),
        n if n == found.len() => Ok(None),
        _ => candle_core::bail!("optimizer state: some {suffix} tensors are missing"),
    }
}

/// A checkpoint's optimizer state for `params`: per name of `kind.state_names()`,
/// a tensor per parameter, or `None` where that state was never allocated. AdamW
/// after a step must have both moments.
pub fn read_state(
    kind: OptimizerKind,
    state: &State,
    params: &[(String, Var)],
    steps: u64,
) -> Result<Vec<Option<Vec<Tensor>>>> {
    let found = kind
        .state_names()
        .iter()
        .map(|suffix| all_or_none(state, params, suffix))
        .collect::<Result<Vec<_>>>()?;
    if kind == OptimizerKind::Adamw && steps > 0 && found.iter().any(Option::is_none) {
        candle_core::bail!(
            "optimizer state: AdamW after {steps} steps needs exp_avg and exp_avg_sq"
        );
    }
    Ok(found)
}

/// Builds the optimizer of `kind` over `params`.
pub fn build(
    kind: OptimizerKind,
    params: Vec<(String, Var)>,
    h: Hyper,
) -> Result<Box<dyn Optimizer>> {
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::new(params, h)?),
        OptimizerKind::Adamw => Box::new(AdamW::new(params, h)?),
    })
}

#[cfg(test)]
mod tests;
