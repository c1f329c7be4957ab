//! SGD as torch.optim.SGD (dampening 0): weight decay added to the gradient, an
//! optional momentum buffer, optional Nesterov.

use candle_core::{Result, Tensor, Var};

use super::kernels::{MomentumApply, MomentumBuf, SgdPlain};
use super::{Hyper, Optimizer};

/// SGD over named parameters.
pub struct Sgd {
    params: Vec<(String, Var)>,
    /// One buffer per parameter, allocated at the first step with momentum.
    buffers: Vec<Tensor>,
    h: Hyper,
    steps: u64,
    /// Fused kernels (CPU in-place passes, or one CUDA kernel a parameter) rather
    /// than tensor expressions.
    pub(crate) fused: bool,
}

impl Sgd {
    /// Fused kernels (the default where the device has them) or tensor expressions
    /// (the reference the fused kernels are tested against).
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused && super::fused_for(&self.params);
    }

    /// SGD over `params` with hyperparameters `h`, no momentum buffer yet.
    pub fn new(params: Vec<(String, Var)>, h: Hyper) -> Result<Sgd> {
        let fused = super::fused_for(&params);
        Ok(Sgd {
            params,
            buffers: Vec::new(),
            h,
            steps: 0,
            fused,
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &[Tensor]) -> Result<()> {
        let (lr, wd, mu) = (self.h.lr, self.h.weight_decay, self.h.momentum);
        if mu != 0.0 && self.buffers.is_empty() {
            self.buffers = self
                .params
                .iter()
                .map(|(_, p)| p.zeros_like())
                .collect::<Result<_>>()?;
        }
        for (i, ((_, p), g)) in self.params.iter().zip(grads).enumerate() {
            let g = g.contiguous()?;
            #[cfg(feature = "cuda")]
            if self.fused && p.device().is_cuda() {
                let (lr, wd) = (lr as f32, wd as f32);
                match self.buffers.get(i) {
                    Some(b) if mu != 0.0 => {
                        super::cuda::sgd_momentum(p, &g, b, lr, wd, mu as f32, self.h.nesterov)?
                    }
                    _ => super::cuda::sgd_plain(p, &g, lr, wd)?,
                }
                continue;
            }
            if mu == 0.0 {
                if self.fused {
                    p.inplace_op2(
                        &g,
                        &SgdPlain {
                            lr: lr as f32,
                            wd: wd as f32,
                        },
                    )?;
                } else {
                    let d = (&g + (p.as_tensor() * wd)?)?;
                    p.set(&(p.as_tensor() - (d * lr)?)?)?;
                }
                continue;
            }
            let b = &self.buffers[i];
            if self.fused {
                b.inplace_op3(
                    &g,
                    p,
                    &MomentumBuf {
                        mu: mu as f32,
                        wd: wd as f32,
                    },
                )?;
                let apply = MomentumApply {
                    lr: lr as f32,
                    wd: wd as f32,
                    mu: mu as f32,
                    nesterov: self.h.nesterov,
                };
                p.inplace_op3(&g, b, &apply)?;
            } else {
                let d = (&g + (p.as_tensor() * wd)?)?;
                let nb = ((b * mu)? + &d)?;
                let step = if self.h.nesterov {
                    (d + (&nb * mu)?)?
                } else {
                    nb.clone()
                };
                p.set(&(p.as_tensor() - (step * lr)?)?)?;
                self.buffers[i] = nb;
            }
        }
        self.steps += 1;
        Ok(())
    }

    fn hyper(&self) -> Hyper {
        self.h
    }

    fn set_hyper(&mut self, h: Hyper) {
        self.h = h;
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn load_state(&mut self, state: &super::State, steps: u64) -> Result<()> {
        let mut found = super::read_state(super::OptimizerKind::Sgd, state, &self.params, steps)?;
        self.buffers = found.pop().flatten().unwrap_or_default();
        self.steps = steps;
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.buffers)
            .map(|((n, _), b)| (format!("{n}.momentum_buffer"), b.clone()))
            .collect()
    }
}
