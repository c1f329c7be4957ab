//! The update arithmetic, element by element (shared by both optimizer paths), and the
//! in-place passes that run it on candle tensors (candle's in-place ops give one
//! mutable buffer per pass, so momentum and moments take two or three passes there).

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result};

/// torch SGD with momentum (dampening 0): `d = g + wd p; b = mu b + d;
/// p -= lr (nesterov ? d + mu b : b)`. The CUDA kernel `rudder_sgd_momentum` does
/// the same operations in the same order.
#[inline(always)]
pub fn sgd_momentum_elem(
    p: &mut f32,
    g: f32,
    b: &mut f32,
    lr: f32,
    wd: f32,
    mu: f32,
    nesterov: bool,
) {
    let d = g + wd * *p;
    *b = mu * *b + d;
    *p -= lr * if nesterov { d + mu * *b } else { *b };
}

/// torch AdamW's parameter update from its moments, in torch's order of operations:
/// `p *= decay; p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)`.
#[inline(always)]
pub fn adam_elem(p: &mut f32, m: f32, v: f32, decay: f32, step_size: f32, bc2_sqrt: f32, eps: f32) {
    *p *= decay;
    *p -= step_size * m / (v.sqrt() / bc2_sqrt + eps);
}

/// One whole AdamW step for one element, moments included: the arithmetic of the
/// CUDA kernel `rudder_adamw` (`optim/cuda.rs`), operation for operation, and of the
/// CPU engine's optimizer. `k1 = 1 - beta1` and `k2 = 1 - beta2` come computed in
/// f64 (as the unfused path's scalars are).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn adamw_step_elem(
    p: &mut f32,
    g: f32,
    m: &mut f32,
    v: &mut f32,
    k1: f32,
    beta2: f32,
    k2: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
) {
    *m += k1 * (g - *m);
    *v = beta2 * *v + k2 * g * g;
    adam_elem(p, *m, *v, decay, step_size, bc2_sqrt, eps);
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("optimizer update needs contiguous f32 tensors"),
    }
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("optimizer update needs contiguous f32 tensors"),
    }
}

/// `p -= lr * (g + wd * p)`: SGD without momentum.
pub struct SgdPlain {
    /// The learning rate.
    pub lr: f32,
    /// The weight decay.
    pub wd: f32,
}

impl InplaceOp2 for SgdPlain {
    fn name(&self) -> &'static str {
        "sgd-plain"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, lp: &Layout, g: &CpuStorage, lg: &Layout) -> Result<()> {
        let (p, g) = (slice_mut(p, lp)?, slice(g, lg)?);
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= self.lr * (g + self.wd * *p);
        }
        Ok(())
    }
}

/// The momentum buffer's update alone: `b = mu b + g + wd p`.
pub struct MomentumBuf {
    /// The momentum.
    pub mu: f32,
    /// The weight decay.
    pub wd: f32,
}

impl InplaceOp3 for MomentumBuf {
    fn name(&self) -> &'static str {
        "sgd-momentum-buffer"
    }

    fn cpu_fwd(
        &self,
        b: &mut CpuStorage,
        lb: &Layout,
        g: &CpuStorage,
        lg: &Layout,
        p: &CpuStorage,
        lp: &Layout,
    ) -> Result<()> {
        let (b, g, p) = (slice_mut(b, lb)?, slice(g, lg)?, slice(p, lp)?);
        for ((b, &g), &p) in b.iter_mut().zip(g).zip(p) {
            *b = self.mu * *b + g + self.wd * p;
        }
        Ok(())
    }
}

/// The parameter's update from the already updated buffer `b`.
pub struct MomentumApply {
    /// The learning rate.
    pub lr: f32,
    /// The weight decay.
    pub wd: f32,
    /// The momentum.
    pub mu: f32,
    /// Nesterov momentum: steps by `d + mu b` rather than `b`.
    pub nesterov: bool,
}

impl InplaceOp3 for MomentumApply {
    fn name(&self) -> &'static str {
        "sgd-momentum-apply"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        lp: &Layout,
        g: &CpuStorage,
        lg: &Layout,
        b: &CpuStorage,
        lb: &Layout,
    ) -> Result<()> {
        let (p, g, b) = (slice_mut(p, lp)?, slice(g, lg)?, slice(b, lb)?);
        for ((p, &g), &b) in p.iter_mut().zip(g).zip(b) {
            let d = g + self.wd * *p;
            *p -= self.lr * if self.nesterov { d + self.mu * b } else { b };
        }
        Ok(())
    }
}

/// Adam's moments: `m += k (g - m)`, or `v = beta v + k g^2`, with `k = 1 - beta`
/// (computed in f64 by the caller).
pub struct Moment {
    /// The moment's decay rate (beta1 or beta2).
    pub beta: f32,
    /// `1 - beta`.
    pub k: f32,
    /// The second moment (of `g^2`) rather than the first.
    pub square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, lm: &Layout, g: &CpuStorage, lg: &Layout) -> Result<()> {
        let (m, g) = (slice_mut(m, lm)?, slice(g, lg)?);
        let k = self.k;
        if self.square {
            for (m, &g) in m.iter_mut().zip(g) {
                *m = self.beta * *m + k * g * g;
            }
        } else {
            for (m, &g) in m.iter_mut().zip(g) {
                *m += k * (g - *m);
            }
        }
        Ok(())
    }
}

/// AdamW's parameter update from its moments.
pub struct AdamApply {
    /// `1 - lr * weight_decay`, applied to the parameter first.
    pub decay: f32,
    /// `lr / (1 - beta1^t)`: the first moment's bias correction folded in.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`: the second moment's bias correction.
    pub bc2_sqrt: f32,
    /// Added to the corrected root of `v`.
    pub eps: f32,
}

impl InplaceOp3 for AdamApply {
    fn name(&self) -> &'static str {
        "adamw-apply"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        lp: &Layout,
        m: &CpuStorage,
        lm: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> Result<()> {
        let (p, m, v) = (slice_mut(p, lp)?, slice(m, lm)?, slice(v, lv)?);
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            adam_elem(p, m, v, self.decay, self.step_size, self.bc2_sqrt, self.eps);
        }
        Ok(())
    }
}
