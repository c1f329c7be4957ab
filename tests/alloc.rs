//! Steady-state training steps of the CPU engine allocate nothing of their own: a
//! counting global allocator around warmed-up steps of the MLP and the CNN (both
//! optimizers). The `gemm` crate allocates its packing buffers inside every product
//! (`gemm-common`'s `did_pack_lhs` flags and, when it packs, a `MemBuffer`); those are
//! the only allocations left, at most two per product.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{Device, Tensor};
use rudder::data::Split;
use rudder::engine::Net;
use rudder::loss::Loss;
use rudder::model::{self, Arch, Io};
use rudder::optim::{Flat, Hyper, Kind};
use rudder::train::{Engine, Learner};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, matrix products) per step.
fn allocations_per_step(arch: Arch, io: Io, kind: Kind, threads: usize) -> (usize, usize) {
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
    let mut learner = Engine::new(model, net, Flat::new(kind, h), Loss::CrossEntropy);
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
    let (before, calls) = (ALLOCS.load(Ordering::Relaxed), rudder::engine::gemm_calls());
    for s in 0..10 {
        step(s);
    }
    (
        (ALLOCS.load(Ordering::Relaxed) - before) / 10,
        (rudder::engine::gemm_calls() - calls) / 10,
    )
}

#[test]
fn steady_state_steps_allocate_only_inside_gemm() {
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
            let (allocs, products) = allocations_per_step(arch.clone(), io, kind, 1);
            eprintln!("{name} {kind:?}: {allocs} allocations per step, {products} matrix products");
            // With two threads rayon's work splitting allocates too; recorded, not bounded.
            let (allocs2, _) = allocations_per_step(arch, io, kind, 2);
            eprintln!("{name} {kind:?}, 2 threads: {allocs2} allocations per step");
            // Two micro-batches: 3 forward + 5 backward products each for the MLP.
            assert!(
                products > 0 && allocs <= 2 * products,
                "{name} {kind:?}: {allocs} allocations for {products} products"
            );
        }
    }
}
