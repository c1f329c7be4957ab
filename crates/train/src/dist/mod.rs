//! Many processes: the [`Collective`] seam the trainer knows, the
//! single-process world, and the process's world as `main` set it up (MPI under
//! `mpirun` with feature `mpi`, else one process).
//!
//! The trainer is data-parallel: every rank draws the same permutation, takes its
//! contiguous slice of each global batch ([`shard`]), and the gradients are summed by
//! one allreduce of a flat buffer. Rank 0 alone runs the policies and writes the run
//! directory; it broadcasts each decision, so every rank applies it at the same step
//! boundary.

#[cfg(feature = "mpi")]
pub mod mpi;

pub use rudder_core::launcher::under_launcher;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod ranklog;

use std::sync::OnceLock;

use candle_core::Tensor;

/// What data-parallel training needs from a communication library. Every rank calls
/// the same operations in the same order.
pub trait Collective: Send + Sync {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Sums `buf` element-wise across ranks, in place, on every rank.
    fn allreduce_f32(&self, buf: &mut [f32]);
    /// Sums `buf` element-wise across ranks, in place, on every rank.
    fn allreduce_f64(&self, buf: &mut [f64]);
    /// Sums the flat f32 tensor `t` across ranks; the sum, on `t`'s device. By
    /// default through host memory and `allreduce_f32`; NCCL sums CUDA tensors on
    /// the device.
    fn allreduce_tensor(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        host_allreduce(self, t)
    }
    /// Rank 0's `bytes`, on every rank (any length; the others' input is replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// Returns once every rank has called it.
    fn barrier(&self);
    /// Ends every rank of the job with exit `code` (MPI's abort, which does not
    /// return); in one process there is no other rank, and the caller exits itself.
    fn abort(&self, code: i32);
    /// The name in `run_start` and the README (`"mpi"`, `"single"`).
    fn name(&self) -> &'static str;
}

/// [`Collective::allreduce_tensor`] through host memory.
pub fn host_allreduce<C: Collective + ?Sized>(c: &C, t: &Tensor) -> candle_core::Result<Tensor> {
    let mut v = t.flatten_all()?.to_vec1::<f32>()?;
    c.allreduce_f32(&mut v);
    Tensor::from_vec(v, t.dims(), t.device())
}

/// The GPU of this rank for `--device cuda:N`: N plus the rank's index on its
/// machine (`mpirun` and Slurm say it), so `cuda` gives each rank its own GPU.
pub fn local_gpu(n: usize) -> usize {
    if world().size() == 1 {
        return n;
    }
    rudder_core::launcher::local_rank().map_or(n, |local| n + local)
}

/// One process: every operation is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn allreduce_f32(&self, _buf: &mut [f32]) {}
    fn allreduce_f64(&self, _buf: &mut [f64]) {}
    fn allreduce_tensor(&self, t: &Tensor) -> candle_core::Result<Tensor> {
        Ok(t.clone())
    }
    fn broadcast(&self, _bytes: &mut Vec<u8>) {}
    fn barrier(&self) {}
    fn abort(&self, _code: i32) {}
    fn name(&self) -> &'static str {
        "single"
    }
}

static WORLD: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// Makes `c` this process's world; the first call wins (`main` makes it once, before
/// any run starts).
pub fn set_world(c: Box<dyn Collective>) -> bool {
    WORLD.set(c).is_ok()
}

/// The process's world: one process unless `main` set another.
pub fn world() -> &'static dyn Collective {
    match WORLD.get() {
        Some(w) => w.as_ref(),
        None => &Single,
    }
}

/// The rows `[lo, hi)` of a global batch of `len` that rank `rank` of `size` takes:
/// contiguous slices of `len / size`, the last rank taking the remainder.
pub fn shard(len: usize, rank: usize, size: usize) -> (usize, usize) {
    let per = len / size.max(1);
    let lo = per * rank;
    let hi = if rank + 1 == size { len } else { lo + per };
    (lo.min(len), hi.min(len))
}

/// Whether any rank says `flag` (every rank gets the same answer).
pub fn any(c: &dyn Collective, flag: bool) -> bool {
    if c.size() == 1 {
        return flag;
    }
    let mut v = [if flag { 1.0 } else { 0.0 }];
    c.allreduce_f64(&mut v);
    v[0] > 0.0
}

/// Rank 0's value of `v` on every rank, as JSON (one broadcast of its length and one
/// of its bytes; none of the bytes when it is `None`).
pub fn share<T: serde::Serialize + serde::de::DeserializeOwned>(
    c: &dyn Collective,
    v: Option<T>,
) -> Result<Option<T>, DistError> {
    if c.size() == 1 {
        return Ok(v);
    }
    let mut bytes = match (&v, c.rank()) {
        (Some(v), 0) => serde_json::to_vec(v).map_err(DistError::Encode)?,
        _ => Vec::new(),
    };
    c.broadcast(&mut bytes);
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(DistError::Message)
}

/// A failure of the many-process machinery.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistError {
    /// MPI or NCCL could not start: what it said.
    #[error("{0}")]
    Start(String),
    /// A message rank 0 could not encode.
    #[error("{0}")]
    Encode(serde_json::Error),
    /// A message from rank 0 that does not parse.
    #[error("a message from rank 0 did not parse: {0}")]
    Message(serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_once_and_the_last_rank_takes_the_remainder() {
        for len in 0..40 {
            for size in 1..6 {
                let parts: Vec<_> = (0..size).map(|r| shard(len, r, size)).collect();
                assert_eq!(parts[0].0, 0);
                assert_eq!(parts[size - 1].1, len);
                for w in parts.windows(2) {
                    assert_eq!(w[0].1, w[1].0, "len {len} size {size}");
                }
                for (r, (lo, hi)) in parts.iter().enumerate().take(size - 1) {
                    assert_eq!(hi - lo, len / size, "rank {r}");
                }
            }
        }
        assert_eq!(shard(64, 1, 2), (32, 64));
        assert_eq!(shard(7, 2, 3), (4, 7));
    }

    #[test]
    fn one_process_shares_without_copying() {
        let c = Single;
        assert_eq!(share(&c, Some(vec![1, 2])).unwrap(), Some(vec![1, 2]));
        assert!(!any(&c, false));
        assert!(any(&c, true));
    }
}
