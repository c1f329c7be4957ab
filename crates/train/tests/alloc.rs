//! Steady-state training steps of the CPU engine allocate nothing of their own: a
//! counting global allocator around warmed-up steps of the MLP and the CNN (both
//! optimizers, 1, 2 and 3 threads) counts apart the allocations made inside a
//! `gemm` call (`rudder_engine::in_product`) and every other. The `gemm` crate
//! allocates its packing buffers inside every product (`gemm-common`'s
//! `did_pack_lhs` flags and, when it packs, a `MemBuffer`): at most two per product.
//! Everything else (our layers, the optimizer, the thread splits) must be zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Tensor};
use rudder_engine::Flat;
use rudder_engine::Net;
use rudder_nn::data::Split;
use rudder_nn::loss::Loss;
use rudder_nn::model::{self, Arch, Io};
use rudder_nn::optim::{Hyper, OptimizerKind as Kind};
use rudder_train::trainer::{EngineLearner, Learner};

struct Counting;

/// Allocations outside any `gemm` call, and inside one.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static GEMM_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn count() {
    if rudder_engine::in_product() {
        GEMM_ALLOCS.fetch_add(1, Ordering::Relaxed);
    } else {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Per step: allocations outside `gemm`, inside it, and matrix products, the steps
/// run on a rayon pool of `threads` (as a run's). The pool is kept to the end of the
/// process: a dropped pool's threads exit (and free and allocate) whenever they get
/// to it, which would count in the next measurement.
fn allocations_per_step(arch: Arch, io: Io, kind: Kind, threads: usize) -> (f64, f64, usize) {
    let pool: &'static rayon::ThreadPool = Box::leak(Box::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap(),
    ));
    pool.install(|| steps(arch, io, kind, threads))
}

fn steps(arch: Arch, io: Io, kind: Kind, threads: usize) -> (f64, f64, usize) {
    let n = 256;
    let x: Vec<f32> = (0..n * io.features)
        .map(|i| ((i * 7919) % 255) as f32 / 255.0)
        .collect();
    let y: Vec<u32> = (0..n as u32).map(|i| i % io.classes as u32).collect();
    let shape: Vec<usize> = match io.image {
        Some((c, h, w)) => vec![n, c, h, w],
        None => vec![n, io.features],
    };
    let split = Split {
        x: Tensor::from_vec(x, shape, &Device::Cpu).unwrap(),
        y: Tensor::from_vec(y, n, &Device::Cpu).unwrap(),
    };
    let model = model::build(&arch, io, 0, &Device::Cpu).unwrap();
    let net = Net::from_model(&arch, io, &model, threads).unwrap();
    let h = Hyper {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
        nesterov: false,
        beta2: 0.999,
        eps: 1e-8,
    };
    let opt = Flat::new(kind, h).with_threads(threads);
    let mut learner = EngineLearner::new(model, net, opt, Loss::CrossEntropy);
    let rows: Vec<Vec<u32>> = (0..4)
        .map(|s| ((s * 64) as u32..(s * 64 + 64) as u32).rev().collect())
        .collect();
    let mut step = |s: usize| {
        learner.accumulate(&split, &rows[s % 4], true, 0.5).unwrap();
        learner
            .accumulate(&split, &rows[(s + 1) % 4], false, 0.5)
            .unwrap();
        learner.step().unwrap();
    };
    for s in 0..3 {
        step(s);
    }
    let (before, in_gemm, calls) = (
        ALLOCS.load(Ordering::Relaxed),
        GEMM_ALLOCS.load(Ordering::Relaxed),
        rudder_engine::gemm_calls(),
    );
    for s in 0..10 {
        step(s);
    }
    (
        (ALLOCS.load(Ordering::Relaxed) - before) as f64 / 10.0,
        (GEMM_ALLOCS.load(Ordering::Relaxed) - in_gemm) as f64 / 10.0,
        (rudder_engine::gemm_calls() - calls) / 10,
    )
}

#[test]
fn steady_state_steps_allocate_nothing_outside_gemm() {
    let mlp = Io {
        features: 784,
        image: None,
        classes: 10,
    };
    let cnn = Io {
        features: 784,
        image: Some((1, 28, 28)),
        classes: 10,
    };
    for kind in [Kind::Sgd, Kind::Adamw] {
        for (name, arch, io) in [
            (
                "mlp",
                Arch::Mlp {
                    hidden: vec![256, 128],
                },
                mlp,
            ),
            (
                "cnn",
                Arch::Cnn {
                    channels: vec![32, 64],
                },
                cnn,
            ),
        ] {
            for threads in [1, 2, 3] {
                let (ours, gemm, products) = allocations_per_step(arch.clone(), io, kind, threads);
                eprintln!(
                    "{name} {kind:?} {threads} threads: {ours} allocations per step outside gemm, {gemm} inside it, {products} gemm calls"
                );
                assert_eq!(
                    ours, 0.0,
                    "{name} {kind:?} {threads} threads: our own code allocates"
                );
                // Two micro-batches: 3 forward + 5 backward products each for the MLP.
                assert!(
                    products > 0 && gemm <= 2.0 * products as f64,
                    "{name} {kind:?}: {gemm} allocations inside gemm for {products} calls"
                );
            }
        }
    }
}
