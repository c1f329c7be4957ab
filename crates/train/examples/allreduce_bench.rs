//! The allreduce's cost per byte (feature `mpi`): times `Collective::allreduce_f32`
//! on buffers of the CNN's and the MLP's gradient sizes and larger, after a barrier,
//! median of 200 calls. BENCHMARKS.md's scaling estimate uses its figures.
//!
//! mpirun --allow-run-as-root --oversubscribe -np 2 --mca btl self,vader \
//!     target/release/examples/allreduce_bench

use std::time::Instant;

fn main() {
    let _universe = rudder_train::dist::mpi::init()
        .expect("MPI")
        .expect("start me with mpirun");
    let world = rudder_train::dist::world();
    for floats in [1usize, 50_282, 235_146, 1 << 20, 1 << 22] {
        let mut buf = vec![1f32; floats];
        let mut times = Vec::new();
        for _ in 0..200 {
            world.barrier();
            let t = Instant::now();
            world.allreduce_f32(&mut buf);
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        if world.rank() == 0 {
            let bytes = floats * 4;
            println!(
                "{} ranks, {:>9} bytes: {:>9.1} us, {:>6.2} GB/s, {:.3} ns/byte",
                world.size(),
                bytes,
                med * 1e6,
                bytes as f64 / med / 1e9,
                med * 1e9 / bytes as f64
            );
        }
    }
}
