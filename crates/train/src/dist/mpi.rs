//! The [`Collective`] over MPI (rsmpi): `MPI_COMM_WORLD`, set up by `main` when the
//! process was started by `mpirun`, `srun` or another MPI launcher.

use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};

use super::Collective;

/// `MPI_COMM_WORLD`. Calls come from one thread at a time (the run's), which
/// `MPI_THREAD_SERIALIZED` allows; the lock makes that so for any caller.
pub struct Mpi {
    comm: Mutex<Comm>,
    rank: usize,
    size: usize,
}

// SAFETY: the communicator is a handle MPI lets any thread use under
// MPI_THREAD_SERIALIZED, and every use is behind the mutex.
unsafe impl Send for Mpi {}
// SAFETY: as above.
unsafe impl Sync for Mpi {}

/// The communicator and the send buffers the reductions reuse (no allocation per
/// step once they have grown).
struct Comm {
    world: SimpleCommunicator,
    f32s: Vec<f32>,
    f64s: Vec<f64>,
}

/// Whether an MPI launcher started this process (OpenMPI, PMIx, Slurm's PMI, MPICH's
/// Hydra). A plain `rudder train` never initialises MPI.
pub fn launched() -> bool {
    super::under_launcher()
}

/// Initialises MPI when a launcher started this process and makes it the world.
/// The returned `Universe` finalises MPI when dropped: `main` keeps it to the end.
pub fn init() -> Result<Option<Universe>, super::DistError> {
    if !launched() {
        return Ok(None);
    }
    let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
        .ok_or_else(|| super::DistError::Start("MPI was initialised already".into()))?;
    if level < mpi::Threading::Serialized {
        return Err(super::DistError::Start(format!(
            "this MPI offers thread level {level:?}; rudder needs Serialized (calls come from its run thread)"
        )));
    }
    let comm = universe.world();
    let (rank, size) = (comm.rank() as usize, comm.size() as usize);
    super::set_world(Box::new(Mpi {
        comm: Mutex::new(Comm {
            world: comm,
            f32s: Vec::new(),
            f64s: Vec::new(),
        }),
        rank,
        size,
    }));
    Ok(Some(universe))
}

impl Mpi {
    fn with<R>(&self, f: impl FnOnce(&mut Comm) -> R) -> R {
        let mut comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut comm)
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn allreduce_f32(&self, buf: &mut [f32]) {
        self.with(|c| {
            c.f32s.clear();
            c.f32s.extend_from_slice(buf);
            c.world
                .all_reduce_into(&c.f32s[..], buf, SystemOperation::sum())
        });
    }

    fn allreduce_f64(&self, buf: &mut [f64]) {
        self.with(|c| {
            c.f64s.clear();
            c.f64s.extend_from_slice(buf);
            c.world
                .all_reduce_into(&c.f64s[..], buf, SystemOperation::sum())
        });
    }

    fn allreduce_tensor(
        &self,
        t: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        #[cfg(feature = "nccl")]
        if t.device().is_cuda()
            && let Some(nccl) = super::nccl::get()
        {
            let t = t.contiguous()?.copy()?;
            nccl.sum(&t)?;
            return Ok(t);
        }
        super::host_allreduce(self, t)
    }

    fn broadcast(&self, bytes: &mut Vec<u8>) {
        self.with(|c| {
            let root = c.world.process_at_rank(0);
            let mut len = [bytes.len() as u64];
            root.broadcast_into(&mut len[..]);
            bytes.resize(len[0] as usize, 0);
            if !bytes.is_empty() {
                root.broadcast_into(&mut bytes[..]);
            }
        })
    }

    fn barrier(&self) {
        self.with(|c| c.world.barrier())
    }

    fn abort(&self, code: i32) {
        let comm = self.comm.lock().unwrap_or_else(|p| p.into_inner());
        comm.world.abort(code)
    }

    fn name(&self) -> &'static str {
        "mpi"
    }
}
