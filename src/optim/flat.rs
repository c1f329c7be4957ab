//! The optimizers over plain f32 slices, for the CPU engine: one fused in-place pass
//! per parameter (SGD with momentum/Nesterov and weight decay; AdamW), state
//! allocated at the first step and reused after.

use super::kernels::{adamw_step_elem, sgd_momentum_elem};
use super::{Hyper, Kind};
use crate::engine::team::Shared;

pub struct Flat {
    kind: Kind,
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
    pub fn new(kind: Kind, h: Hyper) -> Flat {
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

    pub fn hyper(&self) -> Hyper {
        self.h
    }

    pub fn set_hyper(&mut self, h: Hyper) {
        self.h = h;
    }

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
            Kind::Sgd if c.mu == 0.0 => {}
            Kind::Sgd => grow(&mut self.first),
            Kind::Adamw => {
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
            Kind::Sgd if c.mu == 0.0 => {
                for (p, &g) in p.iter_mut().zip(g) {
                    *p -= c.lr * (g + c.wd * *p);
                }
            }
            Kind::Sgd => {
                for ((p, &g), b) in p.iter_mut().zip(g).zip(a.iter_mut()) {
                    sgd_momentum_elem(p, g, b, c.lr, c.wd, c.mu, c.nesterov);
                }
            }
            Kind::Adamw => {
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

    pub fn kind(&self) -> Kind {
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
    crate::engine::team::run(len.div_ceil(each), &|i| {
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
