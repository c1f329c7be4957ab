//! The cost of one `on_step` call of a cosine policy, through the same `PolicySet` a
//! run uses (ctx built, hook called, decision converted and validated).
//! Run: `cargo bench --bench hooks`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rudder::policy::{Best, Controller, Ctx, EpochMetrics, Hook, Rescale, Settings};
use rudder::script::{PolicySet, SearchPath};

fn hooks(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cosine.rhai");
    std::fs::write(
        &file,
        "fn on_step(ctx) {\n    let total = ctx.epochs * ctx.steps_per_epoch;\n    #{ lr: lr::cosine(ctx.step.to_float() / total, 0.0, ctx.base_lr) }\n}\n",
    )
    .unwrap();
    let spec = file.display().to_string();
    let mut set = PolicySet::load(&[spec], &[], &SearchPath::new(vec![]), Rescale::Linear).unwrap();
    let history: Vec<serde_json::Value> = (0..5)
        .map(|e| serde_json::json!({"epoch": e, "val_loss": 0.5}))
        .collect();
    let mut step = 0u64;
    c.bench_function("on_step cosine (ctx built, call, decision checked)", |b| {
        b.iter(|| {
            step = (step + 1) % 9380;
            let ctx = Ctx {
                epoch: (step / 938) as usize,
                step,
                steps_per_epoch: 938,
                settings: Settings {
                    lr: 0.1,
                    batch_size: 64,
                    accumulation: 1,
                    epochs: 10,
                    momentum: 0.0,
                    weight_decay: 0.0,
                },
                base_lr: 0.1,
                base_batch_size: 64,
                optimizer: "sgd",
                dataset_size: 60_000,
                metrics: EpochMetrics::default(),
                history: &history,
                best: Best::default(),
                resumed: false,
            };
            black_box(set.call(Hook::Step, &ctx))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = hooks
}
criterion_main!(benches);
