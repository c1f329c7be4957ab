//! Checkpoint size and write/read time for the MNIST CNN (channels 32,64; 28x28
//! inputs; SGD with momentum, so one buffer per parameter; AdamW doubles that part).
//! The write is the trainer's: three files each fsynced, the folder renamed into
//! place, the parent fsynced. Run: `cargo bench --bench checkpoint`.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use rudder_nn::model::{self, Arch, Io};
use rudder_policy::Settings;
use rudder_run::checkpoint::{self, Monitored, Shuffle, Snapshot, State};

fn checkpoints(c: &mut Criterion) {
    let io = Io {
        features: 784,
        image: Some((1, 28, 28)),
        classes: 10,
    };
    let m = model::build(
        &Arch::Cnn {
            channels: vec![32, 64],
        },
        io,
        0,
        &Device::Cpu,
    )
    .unwrap();
    let tensors: Vec<(String, Tensor)> = m
        .params()
        .into_iter()
        .chain(m.buffers())
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let momentum: Vec<(String, Tensor)> = m
        .params()
        .into_iter()
        .map(|(n, v)| {
            (
                format!("{n}.momentum_buffer"),
                v.as_tensor().ones_like().unwrap(),
            )
        })
        .collect();
    let state = State {
        format: checkpoint::FORMAT.into(),
        epoch: 1,
        step: 938,
        partial: None,
        settings: {
            let mut s = Settings::new(0.1, 64);
            s.epochs = 10;
            s.momentum = 0.9;
            s
        },
        optimizer_steps: 938,
        rng: Shuffle {
            seed: 0,
            shuffles: 1,
            cursor: 60_000,
        },
        best: Default::default(),
        monitored: Monitored {
            metric: rudder_core::metric::Metric::ValLoss,
            value: None,
            epoch: None,
        },
        policies: Vec::new(),
        logs: Default::default(),
        policy_metrics: BTreeMap::new(),
        checksums: BTreeMap::new(),
    };
    let snap = Snapshot {
        state: &state,
        model: &tensors,
        optimizer: &momentum,
    };
    // Under target/, on the disk the runs use (not a tmpfs).
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-checkpoints");
    let _ = std::fs::remove_dir_all(&root);
    let bytes = checkpoint::write(&root, "epoch-0", &snap).unwrap();
    let params: usize = m.param_count();
    eprintln!(
        "MNIST CNN checkpoint: {params} parameters, {bytes} bytes ({:.2} MB) with SGD momentum",
        bytes as f64 / 1e6
    );
    c.bench_function("checkpoint write, MNIST CNN (fsync + rename)", |b| {
        b.iter(|| checkpoint::write(&root, "epoch-0", &snap).unwrap())
    });
    c.bench_function("checkpoint read, MNIST CNN", |b| {
        b.iter(|| checkpoint::read(&root.join("epoch-0")).unwrap())
    });
}

// In a module: `criterion_group!` makes a `pub fn` and takes no doc comment for it.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(30);
        targets = checkpoints
    }
}
criterion_main!(group::benches);
