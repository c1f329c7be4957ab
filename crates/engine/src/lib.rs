//! The CPU engine: our own forward and backward passes for the built-in MLP and CNN
//! and every layer of a model file, on preallocated buffers, with gemm (AVX-512
//! where the CPU has it) for every product.
//! It mirrors a candle [`Model`] parameter for parameter (import and export), so the
//! autograd model stays the reference, the CUDA path and the checkpoint format.

pub mod block;
mod build;
pub mod conv;
pub mod dense;
mod flat;
mod gemm;
mod loss;
mod net;
pub mod norm;
pub mod pool;
pub mod team;
pub mod vector;

use candle_core::Tensor;

pub use flat::{Flat, StepConsts};
pub use gemm::{calls as gemm_calls, in_product};
pub use loss::{argmax, loss_and_grad, regress_and_grad};
pub use net::{Net, Unsupported};

/// A trainable array and its gradient.
pub struct Param {
    /// The values.
    pub value: Vec<f32>,
    /// The gradient, one per value.
    pub grad: Vec<f32>,
}

impl Param {
    /// `len` zeros, gradient zero.
    pub fn zeros(len: usize) -> Param {
        Param::filled(len, 0.0)
    }

    /// `len` values of `v`, gradient zero.
    pub fn filled(len: usize, v: f32) -> Param {
        Param {
            value: vec![v; len],
            grad: vec![0.0; len],
        }
    }
}

/// One layer of the engine. Buffers are row-major, examples first, channels last.
pub trait Op: Send {
    /// Output elements per example.
    fn out_len(&self) -> usize;
    /// `y = f(x)` for `n` examples.
    fn forward(&mut self, x: &[f32], n: usize, y: &mut [f32], train: bool, threads: usize);
    /// Parameter gradients from `dy` (written, or added when `acc`); `dx` when asked.
    /// `dy` may be overwritten.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        x: &[f32],
        y: &[f32],
        n: usize,
        dy: &mut [f32],
        dx: Option<&mut [f32]>,
        acc: bool,
        threads: usize,
    );
    /// Its parameters (at most two), in the candle model's order.
    fn params(&mut self) -> [Option<&mut Param>; 2] {
        [None, None]
    }
    /// The batch-norm layer, for its running statistics.
    fn as_norm(&mut self) -> Option<&mut norm::BnRelu> {
        None
    }
    /// Calls `f` on each parameter, in the candle model's order (a block's too).
    fn each_param(&mut self, f: &mut dyn FnMut(&mut Param)) {
        for p in self.params().into_iter().flatten() {
            f(p)
        }
    }
    /// Calls `f` on each batch-norm layer, in the candle model's order.
    fn each_norm(&mut self, f: &mut dyn FnMut(&mut norm::BnRelu)) {
        if let Some(n) = self.as_norm() {
            f(n)
        }
    }
    /// The optimizer step of the next training forward (dropout's masks).
    fn set_step(&mut self, _step: u64) {}
}

/// Runs `f(first_example, chunk)` over the first `n` examples of `data` (`per`
/// elements each), split into `threads` contiguous runs of whole examples on the
/// engine's team of threads; on the calling thread alone when `threads` is 1. Each
/// element is written by exactly one run, so results do not depend on the split.
pub(crate) fn by_example<T: Send>(
    data: &mut [T],
    per: usize,
    n: usize,
    threads: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let data = &mut data[..n * per];
    if threads <= 1 || n < 2 || per == 0 {
        return f(0, data);
    }
    let each = n.div_ceil(threads);
    team::chunks_mut(data, each * per, |i, chunk| f(i * each, chunk));
}

/// [`by_example`] over two buffers split alike (`pa` and `pb` elements per example).
#[allow(clippy::too_many_arguments)]
pub(crate) fn by_example2<A: Send, B: Send>(
    a: &mut [A],
    pa: usize,
    b: &mut [B],
    pb: usize,
    n: usize,
    threads: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    let (a, b) = (&mut a[..n * pa], &mut b[..n * pb]);
    if threads <= 1 || n < 2 {
        return f(0, a, b);
    }
    let each = n.div_ceil(threads);
    let (sa, sb) = (team::Shared::new(a), team::Shared::new(b));
    team::run(n.div_ceil(each), &|i| {
        let (first, count) = (i * each, each.min(n - i * each));
        // SAFETY: part `i` alone takes examples `first..first + count` of each
        // buffer; both outlive `run`.
        let (ca, cb) = unsafe {
            (
                sa.piece(first * pa, count * pa),
                sb.piece(first * pb, count * pb),
            )
        };
        f(first, ca, cb)
    });
}

/// `v` (in the engine's order) in the candle model's order: element `i` goes to
/// `perm[i]`.
pub fn to_candle_order(perm: Option<&[usize]>, v: &[f32]) -> Vec<f32> {
    match perm {
        Some(perm) => {
            let mut out = vec![0f32; v.len()];
            perm.iter().zip(v).for_each(|(&j, &x)| out[j] = x);
            out
        }
        None => v.to_vec(),
    }
}

/// The inverse of [`to_candle_order`], into `dst`: element `i` comes from `perm[i]`.
pub fn from_candle_order(perm: Option<&[usize]>, src: &[f32], dst: &mut [f32]) {
    match perm {
        Some(perm) => dst.iter_mut().zip(perm).for_each(|(v, &j)| *v = src[j]),
        None => dst.copy_from_slice(src),
    }
}

/// Runs `f` on the host data of a contiguous CPU tensor.
pub fn with_host<T: candle_core::WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> R,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        candle_core::bail!("the CPU engine needs CPU tensors");
    };
    let Some((a, b)) = layout.contiguous_offsets() else {
        candle_core::bail!("the CPU engine needs contiguous tensors");
    };
    let all: &[T] = cpu.as_slice()?;
    Ok(f(&all[a..b]))
}

#[cfg(test)]
mod tests;
