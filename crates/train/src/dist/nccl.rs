//! The gradient sum over NCCL for `--device cuda` (feature `nccl`): one communicator
//! per rank on its GPU, NCCL's unique id broadcast from rank 0 over the MPI world.
//! The [`Collective`]'s `allreduce_tensor` then sums a CUDA tensor in place on the
//! device, on candle's stream; everything else (decisions, reductions of a few
//! scalars, aborts) stays on MPI.

use std::sync::{Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::nccl::safe::{Comm, Id, ReduceOp};
use candle_core::{CpuStorage, CudaDevice, CudaStorage, InplaceOp1, Layout, Tensor};

use super::Collective;

/// This rank's NCCL communicator.
pub struct Nccl {
    comm: Mutex<Comm>,
}

// SAFETY: the communicator is used by one thread at a time, behind the mutex, and
// always on the stream it was made for.
unsafe impl Send for Nccl {}
// SAFETY: as above.
unsafe impl Sync for Nccl {}

static NCCL: OnceLock<Nccl> = OnceLock::new();

/// The communicator, once [`connect`] made it.
pub fn get() -> Option<&'static Nccl> {
    NCCL.get()
}

/// Makes this rank's communicator on `device`: rank 0 draws NCCL's unique id and
/// `world` broadcasts it. Every rank calls it, in the same place.
pub fn connect(world: &dyn Collective, device: &CudaDevice) -> Result<(), super::DistError> {
    let mut bytes = Vec::new();
    if world.rank() == 0 {
        let id =
            Id::new().map_err(|e| super::DistError::Start(format!("ncclGetUniqueId: {e:?}")))?;
        bytes = id.internal().iter().map(|c| *c as u8).collect();
    }
    world.broadcast(&mut bytes);
    let mut internal = [0 as std::ffi::c_char; 128];
    if bytes.len() != internal.len() {
        return Err(super::DistError::Start(format!(
            "NCCL id of {} bytes from rank 0",
            bytes.len()
        )));
    }
    for (d, s) in internal.iter_mut().zip(&bytes) {
        *d = *s as std::ffi::c_char;
    }
    let comm = Comm::from_rank(
        device.cuda_stream(),
        world.rank(),
        world.size(),
        Id::uninit(internal),
    )
    .map_err(|e| super::DistError::Start(format!("ncclCommInitRank: {e:?}")))?;
    let _ = NCCL.set(Nccl {
        comm: Mutex::new(comm),
    });
    Ok(())
}

impl Nccl {
    /// Sums the contiguous f32 CUDA tensor `t` across ranks, in place.
    pub fn sum(&self, t: &Tensor) -> candle_core::Result<()> {
        let comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        t.inplace_op1(&Sum(&comm))
    }
}

struct Sum<'a>(&'a Comm);

impl InplaceOp1 for Sum<'_> {
    fn name(&self) -> &'static str {
        "nccl-allreduce-sum"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        candle_core::bail!("the NCCL sum needs a CUDA tensor")
    }

    fn cuda_fwd(&self, storage: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        if !layout.is_contiguous() || layout.start_offset() != 0 {
            candle_core::bail!("the NCCL sum needs a whole contiguous tensor");
        }
        let slice = storage.as_cuda_slice_mut::<f32>()?;
        self.0
            .all_reduce_in_place(slice, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("ncclAllReduce: {e:?}")))?;
        Ok(())
    }
}
