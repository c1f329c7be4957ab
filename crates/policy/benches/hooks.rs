//! The cost of one `on_step` call of a cosine policy, through the same `Policies` a
//! run uses (ctx built, hook called, decision converted and validated); and of the
//! same policy reading `ctx.history` (a copy per call) after 5 and 50 epochs.
//! Run: `cargo bench --bench hooks`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rudder_policy::{Controller, Ctx, Hook, Policies, SearchPath, Settings};

fn hooks(c: &mut Criterion) {
    bench(
        c,
        "on_step cosine (ctx built, call, decision checked)",
        "",
        5,
    );
    // A policy whose text mentions `history` gets a copy of it in every call.
    for epochs in [5, 50] {
        bench(
            c,
            &format!("on_step cosine, reading ctx.history of {epochs} epochs"),
            "    let n = ctx.history.len();\n",
            epochs,
        );
    }
}

/// `extra` goes first in the hook's body; `epochs` lines of history, each a
/// metrics.jsonl line of a real run.
fn bench(c: &mut Criterion, name: &str, extra: &str, epochs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cosine.rhai");
    std::fs::write(
        &file,
        format!("fn on_step(ctx) {{\n{extra}    let total = ctx.epochs * ctx.steps_per_epoch;\n    #{{ lr: lr::cosine(ctx.step.to_float() / total, 0.0, ctx.base_lr) }}\n}}\n"),
    )
    .unwrap();
    let spec = file.display().to_string();
    let mut set = Policies::builder()
        .policy(spec)
        .search_path(SearchPath::new(vec![]))
        .build()
        .unwrap();
    let mut settings = Settings::new(0.1, 64);
    settings.epochs = 10;
    let history: Vec<serde_json::Value> = (0..epochs)
        .map(|e| {
            serde_json::json!({"epoch": e, "step": 938 * (e + 1), "epochs": 10, "lr": 0.1,
                "batch_size": 64, "accumulation": 1, "train_loss": 0.31, "train_acc": 0.91,
                "val_loss": 0.5, "val_acc": 0.9, "epoch_time_s": 1.2, "samples_per_s": 5e4,
                "policy": {}})
        })
        .collect();
    let mut step = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            step = (step + 1) % 9380;
            let mut ctx = Ctx::new(settings, 60_000);
            ctx.epoch = (step / 938) as usize;
            ctx.step = step;
            ctx.steps_per_epoch = 938;
            ctx.history = &history;
            black_box(Controller::call(&mut set, Hook::Step, &ctx))
        })
    });
}

// In a module: `criterion_group!` makes a `pub fn` and takes no doc comment for it.
mod group {
    use super::*;

    criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
        targets = hooks
    }
}
criterion_main!(group::benches);
