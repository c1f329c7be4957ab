//! rudder's policy runtime steering a hand-written candle training loop: a softmax
//! regression on the embedded digits, its learning rate and early stop decided by the
//! `default` policy (or any given on the command line).
//!
//! Run: `cargo run --release --example own_loop [POLICY...]`

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use rudder::policy::{Best, Controller, Ctx, EpochMetrics, Hook, Rescale, Settings};
use rudder::script::{PolicySet, SearchPath};

fn main() -> anyhow::Result<()> {
    let specs: Vec<String> = std::env::args().skip(1).collect();
    let specs = if specs.is_empty() {
        vec!["default".to_string()]
    } else {
        specs
    };
    let mut policies = PolicySet::load(&specs, &[], &SearchPath::from_env(), Rescale::Linear)?;

    // Data: the digits rudder embeds, 64 features scaled to [0, 1], labels last.
    let table =
        rudder::data::csv::parse(&rudder::data::digits_csv(), std::path::Path::new("digits"))?;
    let dev = Device::Cpu;
    let n = table.rows;
    let x = (Tensor::from_vec(table.features, (n, 64), &dev)? / 16.0)?;
    let y = Tensor::from_vec(table.labels, n, &dev)?;
    let w = Var::zeros((64, 10), DType::F32, &dev)?;
    let b = Var::zeros(10, DType::F32, &dev)?;
    let mut settings = Settings {
        lr: 0.5,
        batch_size: 128,
        accumulation: 1,
        epochs: 30,
        momentum: 0.0,
        weight_decay: 0.0,
    };
    let mut opt = SGD::new(vec![w.clone(), b.clone()], settings.lr)?;
    let (base_lr, steps_per_epoch) = (settings.lr, n.div_ceil(settings.batch_size));
    let (mut history, mut metrics, mut best) =
        (Vec::new(), EpochMetrics::default(), Best::default());
    let mut step = 0u64;

    // One place asks the policies and applies what they decide.
    let mut hook = |hook: Hook,
                    epoch: usize,
                    step: u64,
                    s: &mut Settings,
                    m: EpochMetrics,
                    best: Best,
                    h: &[serde_json::Value]| {
        if !policies.defines(hook) {
            return false;
        }
        let ctx = Ctx {
            epoch,
            step,
            steps_per_epoch,
            settings: *s,
            base_lr,
            base_batch_size: 128,
            optimizer: "sgd",
            dataset_size: n,
            metrics: m,
            history: h,
            best,
            resumed: false,
        };
        let reply = policies.call(hook, &ctx);
        for e in &reply.events {
            eprintln!(
                "policy event: {}",
                serde_json::to_string(e).unwrap_or_default()
            );
        }
        *s = reply.decision.apply(*s, Rescale::Linear);
        reply.decision.stop
    };

    let mut stop = hook(
        Hook::TrainStart,
        0,
        0,
        &mut settings,
        metrics,
        best,
        &history,
    );
    let mut epoch = 0;
    while !stop && epoch < settings.epochs {
        stop |= hook(
            Hook::EpochStart,
            epoch,
            step,
            &mut settings,
            metrics,
            best,
            &history,
        );
        for start in (0..n).step_by(settings.batch_size) {
            stop |= hook(
                Hook::Step,
                epoch,
                step,
                &mut settings,
                metrics,
                best,
                &history,
            );
            opt.set_learning_rate(settings.lr);
            let len = settings.batch_size.min(n - start);
            let logits = x
                .narrow(0, start, len)?
                .matmul(w.as_tensor())?
                .broadcast_add(b.as_tensor())?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y.narrow(0, start, len)?)?;
            opt.backward_step(&loss)?;
            step += 1;
        }
        let logits = x.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64;
        let acc = logits
            .argmax(D::Minus1)?
            .eq(&y)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        metrics = EpochMetrics {
            train_loss: Some(loss),
            train_acc: Some(acc),
            val_loss: Some(loss),
            val_acc: Some(acc),
        };
        if best.val_loss.is_none_or(|v| loss < v) {
            best = Best {
                val_loss: Some(loss),
                val_acc: Some(acc),
                epoch: Some(epoch),
            };
        }
        stop |= hook(
            Hook::EpochEnd,
            epoch,
            step,
            &mut settings,
            metrics,
            best,
            &history,
        );
        println!(
            "epoch {epoch}: loss {loss:.4} acc {acc:.4} lr {:.5}",
            settings.lr
        );
        history.push(serde_json::json!({"epoch": epoch, "val_loss": loss, "val_acc": acc, "lr": settings.lr}));
        epoch += 1;
    }
    hook(
        Hook::TrainEnd,
        epoch,
        step,
        &mut settings,
        metrics,
        best,
        &history,
    );
    Ok(())
}
