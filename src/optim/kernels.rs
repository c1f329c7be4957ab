//! In-place update passes over f32 buffers, as candle in-place ops: each walks its
//! parameter once with no temporary tensor.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result};

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
    pub lr: f32,
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

/// `buf = mu * buf + (g + wd * p)`: the momentum buffer of torch's SGD (dampening 0).
pub struct MomentumBuf {
    pub mu: f32,
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

/// `p -= lr * buf`, or with Nesterov `p -= lr * (g + wd * p + mu * buf)`.
pub struct MomentumApply {
    pub lr: f32,
    pub wd: f32,
    pub mu: f32,
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
        if self.nesterov {
            for ((p, &g), &b) in p.iter_mut().zip(g).zip(b) {
                *p -= self.lr * (g + self.wd * *p + self.mu * b);
            }
        } else {
            for (p, &b) in p.iter_mut().zip(b) {
                *p -= self.lr * b;
            }
        }
        Ok(())
    }
}

/// `m = beta * m + (1 - beta) * g` (or `g * g` when `square`): Adam's moments.
pub struct Moment {
    pub beta: f32,
    pub square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, lm: &Layout, g: &CpuStorage, lg: &Layout) -> Result<()> {
        let (m, g) = (slice_mut(m, lm)?, slice(g, lg)?);
        let k = 1.0 - self.beta;
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

/// `p = p * (1 - lr * wd) - step_size * m / (sqrt(v) / bc2_sqrt + eps)`: AdamW's update
/// in torch's order of operations.
pub struct AdamApply {
    pub decay: f32,
    pub step_size: f32,
    pub bc2_sqrt: f32,
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
            *p *= self.decay;
            *p -= self.step_size * m / (v.sqrt() / self.bc2_sqrt + self.eps);
        }
        Ok(())
    }
}
