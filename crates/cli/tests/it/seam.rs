//! The trainer's policy seam, driven by a Rust controller: decisions are applied
//! between steps, a batch-size change rescales the LR, epochs extend, stop stops, and
//! an invalid decision is dropped whole with an event.

use rudder_core::TrainOptions;
use rudder_policy::{Controller, Ctx, Decision, Hook, Reply};
use rudder_train::train_with;

use super::jsonl;

#[derive(Default)]
struct Script {
    /// (hook, epoch, step, lr, batch_size) at each call.
    seen: Vec<(Hook, usize, u64, f64, usize)>,
}

impl Controller for Script {
    fn defines(&self, hook: Hook) -> bool {
        matches!(hook, Hook::Step | Hook::EpochEnd)
    }

    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply {
        self.seen.push((
            hook,
            ctx.epoch,
            ctx.step,
            ctx.settings.lr,
            ctx.settings.batch_size,
        ));
        let mut d = Decision::default();
        match (hook, ctx.epoch, ctx.step) {
            (Hook::Step, 0, 10) => {
                d.batch_size = Some(128);
                d.log = Some("bigger batches".into());
            }
            (Hook::Step, 1, 20) => d.momentum = Some(2.0), // invalid: dropped whole
            (Hook::EpochEnd, 0, _) => {
                d.epochs = Some(4);
                d.metrics.insert("seen".into(), 1.0);
                assert!(ctx.metrics.val_acc.is_some());
                assert!(ctx.history.is_empty());
            }
            (Hook::EpochEnd, 2, _) => {
                assert_eq!(ctx.history.len(), 2);
                d.stop = true;
                d.reason = Some("enough".into());
            }
            _ => {}
        }
        Reply::new(d)
    }
}

#[test]
fn decisions_apply_between_steps() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = TrainOptions {
        epochs: Some(3),
        quiet: Some(true),
        out: Some(out.clone()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let mut script = Script::default();
    let summary = train_with(&cfg, &mut script).unwrap();
    assert_eq!(summary.stop_reason.as_deref(), Some("enough"));

    // The step after the decision runs with batch 128 and the LR scaled linearly.
    let steps: Vec<_> = script.seen.iter().filter(|s| s.0 == Hook::Step).collect();
    assert_eq!((steps[10].2, steps[10].3, steps[10].4), (10, 0.1, 64));
    assert_eq!((steps[11].2, steps[11].3, steps[11].4), (11, 0.2, 128));

    let m = jsonl(&out.join("metrics.jsonl"));
    assert_eq!(m.len(), 3, "stopped after epoch 2 although 4 were planned");
    // Epoch 0: 10 steps of 64 (640 examples), then 977 in batches of 128: 8 steps.
    let steps_at_end: Vec<u64> = m.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps_at_end, [18, 31, 44]);
    assert_eq!(
        (
            m[0]["lr"].as_f64(),
            m[0]["batch_size"].as_u64(),
            m[0]["epochs"].as_u64()
        ),
        (Some(0.2), Some(128), Some(4))
    );
    assert_eq!(m[0]["policy"]["seen"], 1.0);
    assert_eq!(m[1]["policy"], serde_json::json!({}));
    assert_eq!(summary.steps, 44);

    let ev: Vec<serde_json::Value> = jsonl(&out.join("events.jsonl"))
        .into_iter()
        .filter(|e| e["kind"] != "checkpoint")
        .collect();
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["run_start", "log", "invalid_decision", "stop", "run_end"]
    );
    assert_eq!(ev[1]["message"], "bigger batches");
    assert_eq!(
        (ev[2]["step"].as_u64(), ev[2]["key"].as_str()),
        (Some(20), Some("momentum"))
    );
    assert_eq!(
        (ev[3]["reason"].as_str(), ev[3]["epoch"].as_u64()),
        (Some("enough"), Some(2))
    );
}

/// `examples/own_loop.rs` (built by `cargo test` with the other examples): a
/// hand-written candle loop steered by `rudder-policy`, applying every decision key
/// of `examples/every_key.rhai`.
#[test]
fn a_hand_written_loop_applies_every_key() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/own_loop");
    let root = super::repo();
    let o = std::process::Command::new(&example)
        .arg(root.join("crates/train/examples/every_key.rhai"))
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for line in [
        "applied: momentum 0 -> 0.9, weight_decay 0 -> 0.0001",
        "applied: lr 0.5 -> 0.25, batch_size 64 -> 32",
        "applied: accumulation 1 -> 2",
        "saved checkpoint before-5 (after 114 steps)",
        "recorded: saved_at = 114",
        "applied: lr 0.25 -> 50",
        "applied: lr 50 -> 0.25",
        "applied: epochs 12 -> 10",
        "policy log: momentum 0.9 and weight decay 1e-4",
        "stop: stopped after epoch 9 by every_key.rhai",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    // The rollback undid LR 50: epoch 7 is as good as before it, not blown up.
    let loss = |epoch: usize| -> f64 {
        let l = out
            .lines()
            .find(|l| l.starts_with(&format!("epoch {epoch}: ")))
            .unwrap();
        l.split("val_loss ").nth(1).unwrap()[..6].parse().unwrap()
    };
    assert!(loss(6) > 1.0 && loss(7) < 0.25, "{out}");
    assert!(out.contains("rolled back to") && out.contains("finished after 9 epochs"));
}

/// `examples/own_model.rs`: a candle-nn model of the user's (next-character
/// prediction on the policy library's sources) trained through `rudder_train::fit`, with rudder's run
/// folder, policies and checkpoints.
#[test]
fn an_own_candle_model_trains_through_fit() {
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples/own_model");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = std::process::Command::new(&example)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("own_model: "), "{stdout}");
    let metrics = super::jsonl(&out.join("metrics.jsonl"));
    assert!(!metrics.is_empty());
    // The policies steered it (cosine's decisions), and its weights are checkpointed
    // under the model's own names.
    let events = super::jsonl(&out.join("events.jsonl"));
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "decision" && e["policy"] == "lr/cosine")
    );
    let st = std::fs::read(out.join("checkpoints/best/model.safetensors")).unwrap();
    let names = rudder_run::checkpoint::parse_tensors(&st, &out.join("model.safetensors")).unwrap();
    assert!(
        names.contains_key("model.embed.weight"),
        "{:?}",
        names.keys()
    );
    assert!(out.join("report.html").is_file());
}
