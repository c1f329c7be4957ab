//! AdamW as torch.optim.AdamW: decoupled weight decay, bias-corrected moments.

use candle_core::{Result, Tensor, Var};

use super::kernels::{AdamApply, Moment};
use super::{Hyper, Optimizer};

/// AdamW over named parameters, its moments `m` and `v` one tensor per parameter.
pub struct AdamW {
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    h: Hyper,
    steps: u64,
    pub(crate) fused: bool,
}

/// A zero tensor shaped as each parameter.
fn zeros(ps: &[(String, Var)]) -> Result<Vec<Tensor>> {
    ps.iter().map(|(_, p)| p.zeros_like()).collect()
}

impl AdamW {
    /// Fused kernels (the default where the device has them) or tensor expressions
    /// (the reference the fused kernels are tested against).
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused && super::fused_for(&self.params);
    }

    /// AdamW over `params` with hyperparameters `h`, its moments zero.
    pub fn new(params: Vec<(String, Var)>, h: Hyper) -> Result<AdamW> {
        let fused = super::fused_for(&params);
        Ok(AdamW {
            m: zeros(&params)?,
            v: zeros(&params)?,
            params,
            h,
            steps: 0,
            fused,
        })
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &[Tensor]) -> Result<()> {
        self.steps += 1;
        let (lr, b1, b2) = (self.h.lr, self.h.momentum, self.h.beta2);
        let t = self.steps as i32;
        let step_size = lr / (1.0 - b1.powi(t));
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let decay = 1.0 - lr * self.h.weight_decay;
        for (i, ((_, p), g)) in self.params.iter().zip(grads).enumerate() {
            let g = g.contiguous()?;
            #[cfg(feature = "cuda")]
            if self.fused && p.device().is_cuda() {
                let c = super::cuda::AdamConsts {
                    k1: (1.0 - b1) as f32,
                    beta2: b2 as f32,
                    k2: (1.0 - b2) as f32,
                    decay: decay as f32,
                    step_size: step_size as f32,
                    bc2_sqrt: bc2_sqrt as f32,
                    eps: self.h.eps as f32,
                };
                super::cuda::adamw(p, &g, &self.m[i], &self.v[i], c)?;
                continue;
            }
            if self.fused {
                self.m[i].inplace_op2(
                    &g,
                    &Moment {
                        beta: b1 as f32,
                        k: (1.0 - b1) as f32,
                        square: false,
                    },
                )?;
                self.v[i].inplace_op2(
                    &g,
                    &Moment {
                        beta: b2 as f32,
                        k: (1.0 - b2) as f32,
                        square: true,
                    },
                )?;
                let apply = AdamApply {
                    decay: decay as f32,
                    step_size: step_size as f32,
                    bc2_sqrt: bc2_sqrt as f32,
                    eps: self.h.eps as f32,
                };
                p.inplace_op3(&self.m[i], &self.v[i], &apply)?;
            } else {
                // torch's order: m.lerp_(g, 1 - b1); v = b2 v + (1 - b2) g g;
                // p *= decay; p -= step_size m / (sqrt(v) / bc2 + eps).
                self.m[i] = (&self.m[i] + ((&g - &self.m[i])? * (1.0 - b1))?)?;
                self.v[i] = ((&self.v[i] * b2)? + ((&g * (1.0 - b2))? * &g)?)?;
                let denom = ((self.v[i].sqrt()? / bc2_sqrt)? + self.h.eps)?;
                let update = ((&self.m[i] * step_size)? / denom)?;
                p.set(&((p.as_tensor() * decay)? - update)?)?;
            }
        }
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
        let mut found = super::read_state(super::OptimizerKind::Adamw, state, &self.params, steps)?;
        let v = found.pop().flatten();
        let m = found.pop().flatten();
        self.m = m.map_or_else(|| zeros(&self.params), Ok)?;
        self.v = v.map_or_else(|| zeros(&self.params), Ok)?;
        self.steps = steps;
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for (((n, _), m), v) in self.params.iter().zip(&self.m).zip(&self.v) {
            out.push((format!("{n}.exp_avg"), m.clone()));
            out.push((format!("{n}.exp_avg_sq"), v.clone()));
        }
        out
    }
}
