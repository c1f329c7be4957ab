//! The optimizers over plain f32 slices, for the CPU engine: one fused in-place pass
//! per parameter (SGD with momentum/Nesterov and weight decay; AdamW), state
//! allocated at the first step and reused after.

use rudder_nn::optim::kernels::{adamw_step_elem, sgd_momentum_elem};
use rudder_nn::optim::{Hyper, OptimizerKind};

use crate::team::Shared;

/// SGD or AdamW over plain slices, with its state and step count.
pub struct Flat {
    kind: OptimizerKind,
    h: Hyper,
    steps: u64,
    /// SGD momentum buffers, or AdamW first moments, one per parameter.
    first: Vec<Vec<f32>>,
    /// AdamW second moments.
    second: Vec<Vec<f32>>,
    /// Threads an update may use (each element's arithmetic is its own, so the
    /// split does not change the numbers).
    threads: usize,
}

/// The per-step constants of one update.
#[derive(Clone, Copy)]
pub struct StepConsts {
    lr: f32,
    wd: f32,
    mu: f32,
    nesterov: bool,
    beta2: f32,
    /// 1 - momentum and 1 - beta2, computed in f64.
    k1: f32,
    k2: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

impl Flat {
    /// An optimizer of `kind` with hyperparameters `h`, on one thread, its state
    /// unallocated.
    pub fn new(kind: OptimizerKind, h: Hyper) -> Flat {
        Flat {
            kind,
            h,
            steps: 0,
            first: Vec::new(),
            second: Vec::new(),
            threads: 1,
        }
    }

    /// Lets a big parameter's update run on `threads` threads of the engine's team.
    pub fn with_threads(mut self, threads: usize) -> Flat {
        self.threads = threads.max(1);
        self
    }

    /// The hyperparameters the next step uses.
    pub fn hyper(&self) -> Hyper {
        self.h
    }

    /// Sets the hyperparameters from the next step on.
    pub fn set_hyper(&mut self, h: Hyper) {
        self.h = h;
    }

    /// Updates done so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Starts an update: counts the step and fixes its constants.
    pub fn begin(&mut self) -> StepConsts {
        self.steps += 1;
        let h = self.h;
        let t = self.steps as i32;
        StepConsts {
            lr: h.lr as f32,
            wd: h.weight_decay as f32,
            mu: h.momentum as f32,
            nesterov: h.nesterov,
            beta2: h.beta2 as f32,
            k1: (1.0 - h.momentum) as f32,
            k2: (1.0 - h.beta2) as f32,
            decay: (1.0 - h.lr * h.weight_decay) as f32,
            step_size: (h.lr / (1.0 - h.momentum.powi(t))) as f32,
            bc2_sqrt: (1.0 - h.beta2.powi(t)).sqrt() as f32,
            eps: h.eps as f32,
        }
    }

    /// Updates parameter `i` in place from its gradient.
    pub fn update(&mut self, c: &StepConsts, i: usize, p: &mut [f32], g: &[f32]) {
        let grow = |v: &mut Vec<Vec<f32>>| {
            while v.len() <= i {
                v.push(Vec::new());
            }
            if v[i].len() != p.len() {
                v[i] = vec![0.0; p.len()];
            }
        };
        let kind = self.kind;
        match kind {
            OptimizerKind::Sgd if c.mu == 0.0 => {}
            OptimizerKind::Sgd => grow(&mut self.first),
            OptimizerKind::Adamw => {
                grow(&mut self.first);
                grow(&mut self.second);
            }
        }
        let (mut none_a, mut none_b): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
        let a = self
            .first
            .get_mut(i)
            .map_or(&mut none_a[..], |v| &mut v[..]);
        let b = self
            .second
            .get_mut(i)
            .map_or(&mut none_b[..], |v| &mut v[..]);
        let c = *c;
        split(p, g, a, b, self.threads, &|p, g, a, b| match kind {
            OptimizerKind::Sgd if c.mu == 0.0 => {
                for (p, &g) in p.iter_mut().zip(g) {
                    *p -= c.lr * (g + c.wd * *p);
                }
            }
            OptimizerKind::Sgd => {
                for ((p, &g), b) in p.iter_mut().zip(g).zip(a.iter_mut()) {
                    sgd_momentum_elem(p, g, b, c.lr, c.wd, c.mu, c.nesterov);
                }
            }
            OptimizerKind::Adamw => {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()) {
                    adamw_step_elem(
                        p,
                        g,
                        m,
                        v,
                        c.k1,
                        c.beta2,
                        c.k2,
                        c.decay,
                        c.step_size,
                        c.bc2_sqrt,
                        c.eps,
                    );
                }
            }
        });
    }

    /// Which optimizer it is: SGD or AdamW.
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// The state per parameter: SGD momentum buffers or AdamW first moments, and
    /// AdamW second moments (empty where not allocated).
    pub fn buffers(&self) -> (&[Vec<f32>], &[Vec<f32>]) {
        (&self.first, &self.second)
    }

    /// Replaces the state, as a checkpoint restores it.
    pub fn set_buffers(&mut self, first: Vec<Vec<f32>>, second: Vec<Vec<f32>>, steps: u64) {
        (self.first, self.second, self.steps) = (first, second, steps);
    }
}

/// The fewest elements worth a second thread in an update.
const MIN_SPLIT: usize = 1 << 15;

/// An update over matching pieces of a parameter, its gradient and its state.
type Piece<'a> = dyn Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + 'a;

/// Runs `f` on matching pieces of `p`, `g` and the state slices `a` and `b` (empty
/// when the optimizer keeps none), one per thread of the engine's team.
fn split(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], threads: usize, f: &Piece<'_>) {
    if threads <= 1 || p.len() < MIN_SPLIT {
        return f(p, g, a, b);
    }
    let (len, each) = (p.len(), p.len().div_ceil(threads));
    let (a_len, b_len) = (a.len(), b.len());
    let (sp, sa, sb) = (Shared::new(p), Shared::new(a), Shared::new(b));
    crate::team::run(len.div_ceil(each), &|i| {
        let (start, n) = (i * each, each.min(len - i * each));
        // A state slice is the parameter's length or empty.
        let (at, an) = if a_len == 0 { (0, 0) } else { (start, n) };
        let (bt, bn) = if b_len == 0 { (0, 0) } else { (start, n) };
        // SAFETY: part `i` alone takes elements `start..start + n` of each slice
        // (nothing of an empty one); they outlive `run`.
        let (pp, pa, pb) = unsafe { (sp.piece(start, n), sa.piece(at, an), sb.piece(bt, bn)) };
        f(pp, &g[start..start + n], pa, pb)
    });
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};
    use rudder_nn::optim::{AdamW, Hyper, Optimizer, OptimizerKind, Sgd};

    use super::Flat;

    fn hyper(lr: f64, momentum: f64, nesterov: bool) -> Hyper {
        Hyper {
            lr,
            momentum,
            weight_decay: 0.01,
            nesterov,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// The fused kernels' arithmetic (`kernels::sgd_momentum_elem` and
    /// `kernels::adamw_step_elem`, which the CUDA kernels in `optim/cuda.rs` transcribe
    /// operation for operation, run here by `Flat`) against the unfused optimizers'
    /// tensor expressions: 100 steps with the LR changed at step 50, 1000 parameters,
    /// within 1e-6 relative. Needs no GPU.
    #[test]
    fn the_fused_kernels_math_matches_the_unfused_optimizer_over_100_steps() {
        let n = 1000;
        let init: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.7).sin() * 0.5).collect();
        let grad = |t: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i as f32) * 0.37 + (t as f32) * 0.11).sin() * 0.2)
                .collect()
        };
        let cases = [
            (OptimizerKind::Adamw, hyper(1e-2, 0.9, false)),
            (OptimizerKind::Sgd, hyper(0.05, 0.9, true)),
            (OptimizerKind::Sgd, hyper(0.05, 0.9, false)),
            (OptimizerKind::Sgd, hyper(0.05, 0.0, false)),
        ];
        for (kind, h) in cases {
            let p = Var::from_tensor(&Tensor::new(init.as_slice(), &Device::Cpu).unwrap()).unwrap();
            let params = vec![("p".to_string(), p.clone())];
            let mut unfused: Box<dyn Optimizer> = match kind {
                OptimizerKind::Sgd => {
                    let mut o = Sgd::new(params, h).unwrap();
                    o.set_fused(false);
                    Box::new(o)
                }
                OptimizerKind::Adamw => {
                    let mut o = AdamW::new(params, h).unwrap();
                    o.set_fused(false);
                    Box::new(o)
                }
            };
            let mut flat = Flat::new(kind, h);
            let mut q = init.clone();
            for t in 0..100 {
                if t == 50 {
                    let mut h2 = h;
                    h2.lr *= 0.3;
                    unfused.set_hyper(h2);
                    flat.set_hyper(h2);
                }
                let g = grad(t);
                unfused
                    .step(&[Tensor::new(g.as_slice(), &Device::Cpu).unwrap()])
                    .unwrap();
                let c = flat.begin();
                flat.update(&c, 0, &mut q, &g);
            }
            let want: Vec<f32> = p.as_tensor().to_vec1().unwrap();
            // Relative to the parameters' scale (elements near zero would make an
            // element-wise ratio meaningless).
            let scale = want.iter().fold(0f32, |a, b| a.max(b.abs()));
            let worst = q
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs() / scale)
                .fold(0f32, f32::max);
            eprintln!(
                "{kind:?} momentum {}: worst difference {worst:.2e} of the largest parameter",
                h.momentum
            );
            assert!(
                worst <= 1e-6,
                "{kind:?} {h:?}: worst relative difference {worst}"
            );
        }
    }
}
