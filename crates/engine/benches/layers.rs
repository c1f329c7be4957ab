//! Forward and backward of each CPU engine layer at the MNIST shapes, batch 64, one
//! thread. `bench/torch_layers.py` times the same layers in PyTorch; both are in
//! BENCHMARKS.md. Run: `cargo bench --bench layers`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rudder_engine::Op;
use rudder_engine::conv::{Conv, Geometry};
use rudder_engine::dense::Dense;
use rudder_engine::norm::BnRelu;
use rudder_engine::pool::Pool;

const N: usize = 64;

fn data(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// Times `op` forward, and backward (with the input gradient when `dx`).
fn bench_op(c: &mut Criterion, name: &str, mut op: impl Op, in_len: usize, dx: bool) {
    let x = data(N * in_len);
    let mut y = vec![0f32; N * op.out_len()];
    let mut dy = data(N * op.out_len());
    let mut gx = vec![0f32; N * in_len];
    for p in op.params().into_iter().flatten() {
        let init = data(p.value.len());
        p.value.copy_from_slice(&init);
    }
    c.bench_function(&format!("{name} forward"), |b| {
        b.iter(|| op.forward(black_box(&x), N, &mut y, true, 1))
    });
    c.bench_function(&format!("{name} backward"), |b| {
        b.iter(|| {
            op.backward(
                black_box(&x),
                &y,
                N,
                &mut dy,
                if dx { Some(&mut gx) } else { None },
                false,
                1,
            )
        })
    });
}

fn layers(c: &mut Criterion) {
    bench_op(
        c,
        "linear 784x256 relu",
        Dense::new(784, 256, true),
        784,
        false,
    );
    bench_op(
        c,
        "linear 256x128 relu",
        Dense::new(256, 128, true),
        256,
        true,
    );
    bench_op(
        c,
        "conv3x3 1->32 28x28",
        Conv::new(Geometry::same3x3(28, 28, 1, 32), false),
        784,
        false,
    );
    bench_op(
        c,
        "conv3x3 32->64 14x14",
        Conv::new(Geometry::same3x3(14, 14, 32, 64), false),
        14 * 14 * 32,
        true,
    );
    bench_op(
        c,
        "batchnorm+relu 32ch 28x28",
        BnRelu::new(28 * 28 * 32, 32),
        28 * 28 * 32,
        true,
    );
    bench_op(
        c,
        "maxpool2 32ch 28x28",
        Pool::new(28, 28, 32, 2, true),
        28 * 28 * 32,
        true,
    );
}

// In a module: `criterion_group!` makes a `pub fn` and takes no doc comment for it.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
        targets = layers
    }
}
criterion_main!(group::benches);
