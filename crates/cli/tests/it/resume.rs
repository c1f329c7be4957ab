//! Checkpoints, resume and rollback: a run killed with SIGKILL (mid-epoch, and in the
//! middle of a checkpoint write) and resumed ends with the same metrics, bit for bit,
//! as a run never interrupted; a rollback brings the loss back; faults are exit 2.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{jsonl, rudder, stderr};

/// The lines of a JSONL file without the fields that hold times.
fn timeless(path: &Path) -> Vec<Value> {
    jsonl(path)
        .into_iter()
        .map(|mut v| {
            let m = v.as_object_mut().unwrap();
            for k in ["time", "epoch_time_s", "samples_per_s"] {
                m.remove(k);
            }
            v
        })
        .collect()
}

/// Writes the policy `file` (source `src`) into `d` and trains with it into `d/r`:
/// `--epochs epochs`, quiet, no watching, then `extra`.
fn train_policy(d: &Path, file: &str, src: &str, epochs: &str, extra: &[&str]) {
    std::fs::write(d.join(file), src).unwrap();
    let args = [
        &[
            "train", "--epochs", epochs, "--quiet", "--watch", "off", "--policy", file, "--out",
            "r",
        ],
        extra,
    ]
    .concat();
    let o = rudder(d, &args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The checkpoint folders of `run`, sorted.
fn checkpoints(run: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `state.json` of checkpoint `name` of `run`.
fn state(run: &Path, name: &str) -> Value {
    let path = run.join("checkpoints").join(name).join("state.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Resumes the run in `d/run` to its end.
fn resume(d: &Path, run: &str) {
    let o = rudder(d, &["train", "--resume", run, "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The first event of `kind` in `d/run`.
fn first_event(d: &Path, run: &str, kind: &str) -> Value {
    jsonl(&d.join(run).join("events.jsonl"))
        .into_iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {run}"))
}

/// Starts `rudder train ARGS` with `RUDDER_FAULT=fault`, waits until it reports that
/// it reached the fault point, and kills it with SIGKILL.
fn run_until_killed(dir: &Path, fault: &str, args: &[&str]) {
    let mut child = Command::new(super::bin())
        .args(args)
        .current_dir(dir)
        .env("RUDDER_FAULT", fault)
        .env_remove("RUDDER_DATA")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("rudder starts");
    let mut reached = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        if line
            .unwrap()
            .contains(&format!("fault point {fault} reached"))
        {
            reached = true;
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(reached, "the run never reached {fault}");
}

const COMMON: &[&str] = &[
    "train",
    "--epochs",
    "8",
    "--quiet",
    "--watch",
    "off",
    "--policy",
    "default",
    "--policy",
    "stop/early_stop",
    "--param",
    "stop/early_stop.patience=50",
];

fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    COMMON
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

/// `extra`'s run killed mid-epoch 2 and again while writing a checkpoint, resumed
/// each time, ends as the uninterrupted run does; `per_epoch` is its optimizer
/// steps per epoch (26 at batch 64, 13 with `--accumulation 2`).
fn killed_and_resumed_equals_uninterrupted(extra: &[&str], per_epoch: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = rudder(d, &with(&[&["--out", "whole"], extra].concat()));
    assert!(o.status.success(), "{}", stderr(&o));

    // Killed mid-epoch 2, then during the write of the checkpoint after epoch 5,
    // then resumed to the end.
    let args = with(&[&["--out", "cut"], extra].concat());
    run_until_killed(d, &format!("step:{}", 2 * per_epoch + 8), &args);
    assert_eq!(jsonl(&d.join("cut/metrics.jsonl")).len(), 2);
    run_until_killed(
        d,
        "checkpoint:epoch-5",
        &["train", "--resume", "cut", "--quiet"],
    );
    assert!(d.join("cut/checkpoints/.tmp-epoch-5").exists());
    resume(d, "cut");

    let (whole, cut) = (d.join("whole"), d.join("cut"));
    let metrics = timeless(&whole.join("metrics.jsonl"));
    assert_eq!(metrics.len(), 8);
    assert_eq!(metrics, timeless(&cut.join("metrics.jsonl")));
    // Events too, but for the two `resume` events.
    let mut events = timeless(&cut.join("events.jsonl"));
    let resumes: Vec<Value> = events
        .iter()
        .filter(|e| e["kind"] == "resume")
        .cloned()
        .collect();
    events.retain(|e| e["kind"] != "resume");
    assert_eq!(timeless(&whole.join("events.jsonl")), events);
    assert_eq!(resumes.len(), 2);
    assert_eq!(resumes[0]["path"], "checkpoints/epoch-1");
    assert_eq!(resumes[0]["step"], 2 * per_epoch);
    assert_eq!(resumes[1]["path"], "checkpoints/epoch-4");
    // Checkpoints: the last three epochs and the best, nothing half-written.
    assert_eq!(checkpoints(&cut), ["best", "epoch-5", "epoch-6", "epoch-7"]);
    // Each policy's `this` came back: early stop's count of epochs without
    // improvement is in the last checkpoint as in the uninterrupted run's.
    let last = |run: &Path| state(run, "epoch-7")["policies"].clone();
    assert_eq!(last(&whole), last(&cut));
    assert!(last(&cut)[1]["this"]["best"].as_f64().unwrap() > 0.0);
}

// Every kernels x optimizer pair, with and without accumulation: each keeps its
// own optimizer state (momentum buffers; AdamW's moments and step count).
const SGD: &[&str] = &["--optimizer", "sgd", "--momentum", "0.9"];
const ADAMW: &[&str] = &["--optimizer", "adamw", "--lr", "0.002"];
const CANDLE: &[&str] = &["--kernels", "candle"];
const ACCUMULATE: &[&str] = &["--accumulation", "2"];

#[test]
fn a_killed_run_resumes_to_the_same_metrics_bit_for_bit() {
    killed_and_resumed_equals_uninterrupted(SGD, 26);
}

#[test]
fn the_engine_with_adamw_resumes_bit_for_bit() {
    killed_and_resumed_equals_uninterrupted(ADAMW, 26);
}

#[test]
fn the_candle_path_and_adamw_resume_bit_for_bit_too() {
    killed_and_resumed_equals_uninterrupted(&[ADAMW, CANDLE].concat(), 26);
}

#[test]
fn the_candle_path_with_momentum_resumes_bit_for_bit() {
    killed_and_resumed_equals_uninterrupted(&[SGD, CANDLE].concat(), 26);
}

#[test]
fn accumulated_steps_resume_bit_for_bit_on_both_paths() {
    killed_and_resumed_equals_uninterrupted(&[ADAMW, ACCUMULATE].concat(), 13);
    killed_and_resumed_equals_uninterrupted(&[SGD, CANDLE, ACCUMULATE].concat(), 13);
}

/// A tiny deterministic stream for the kill points.
fn lcg(state: &mut u64, n: u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 33) % n
}

#[test]
fn saves_and_rollbacks_inside_epochs_resume_bit_for_bit_from_any_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Every epoch: a save early in it (a `step-N` checkpoint), a rollback to it a
    // few steps later, and at epoch 2's end a rollback to `best`. With batch 16 an
    // epoch is 102 steps.
    std::fs::write(
        d.join("steer.rhai"),
        r#"
fn on_step(ctx) {
    let s = ctx.step % ctx.steps_per_epoch;
    if s == 10 { return #{ save: true }; }
    if s == 30 && ctx.epoch > 0 { return #{ rollback: "last" }; }
}
fn on_epoch_end(ctx) {
    if ctx.epoch == 2 { return #{ rollback: "best" }; }
}
"#,
    )
    .unwrap();
    let args = |out: &'static str| {
        vec![
            "train",
            "--epochs",
            "4",
            "--batch-size",
            "16",
            "--quiet",
            "--watch",
            "off",
            "--optimizer",
            "adamw",
            "--lr",
            "0.002",
            "--policy",
            "steer.rhai",
            "--out",
            out,
        ]
    };
    let o = rudder(d, &args("whole"));
    assert!(o.status.success(), "{}", stderr(&o));
    let whole = timeless(&d.join("whole/metrics.jsonl"));
    assert_eq!(whole.len(), 4);
    // A mid-epoch rollback leaves the weights the epoch is validated on: `best`
    // is written whenever val_loss improves, and the recorded best is its value.
    let events = jsonl(&d.join("whole/events.jsonl"));
    assert!(events.iter().any(|e| {
        e["kind"] == "rollback"
            && e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("checkpoints/step-"))
    }));
    let best = state(&d.join("whole"), "best");
    let val = |e: u64| whole[e as usize]["val_loss"].as_f64().unwrap();
    let best_epoch = best["monitored"]["epoch"].as_u64().unwrap();
    assert_eq!(
        best["monitored"]["value"].as_f64().unwrap(),
        val(best_epoch)
    );
    // Epoch 2's weights were rolled back after its validation: not a candidate.
    let lowest = [0, 1, 3].map(val).into_iter().fold(f64::INFINITY, f64::min);
    assert_eq!(
        val(best_epoch),
        lowest,
        "best is the lowest of epochs 0, 1 and 3"
    );
    // Killed at random steps, then resumed: the same numbers, the same weights.
    let mut rng = 20261202u64;
    for k in 0..4 {
        let out = ["cut0", "cut1", "cut2", "cut3"][k];
        let step = 103 + lcg(&mut rng, 280);
        run_until_killed(d, &format!("step:{step}"), &args(out));
        resume(d, out);
        assert_eq!(
            timeless(&d.join(out).join("metrics.jsonl")),
            whole,
            "killed at step {step}"
        );
        let weights = |run: &str| {
            std::fs::read(d.join(run).join("checkpoints/epoch-3/model.safetensors")).unwrap()
        };
        assert!(
            weights(out) == weights("whole"),
            "killed at step {step}: weights differ"
        );
    }
}

#[test]
fn a_tagged_save_mid_epoch_resumes_inside_the_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("tag.rhai"),
        "fn on_step(ctx) { if ctx.step == 40 { return #{ save: \"warm\" }; } }\n",
    )
    .unwrap();
    let args = |out: &'static str| {
        vec![
            "train",
            "--epochs",
            "3",
            "--quiet",
            "--watch",
            "off",
            "--checkpoint-every",
            "0",
            "--policy",
            "tag.rhai",
            "--out",
            out,
        ]
    };
    let o = rudder(d, &args("whole"));
    assert!(o.status.success(), "{}", stderr(&o));
    // Killed in the epoch after the save: the newest checkpoint is `warm`, taken after
    // step 41, mid-epoch 1; `best` (epoch 0) is older.
    run_until_killed(d, "step:50", &args("cut"));
    let state = state(&d.join("cut"), "warm");
    assert_eq!(
        (state["step"].as_u64(), state["epoch"].as_u64()),
        (Some(41), Some(1))
    );
    assert!(state["partial"]["seen"].as_u64().unwrap() > 0);
    resume(d, "cut");
    assert_eq!(
        timeless(&d.join("whole/metrics.jsonl")),
        timeless(&d.join("cut/metrics.jsonl"))
    );
    let resume = first_event(d, "cut", "resume");
    assert_eq!(resume["path"], "checkpoints/warm");
    // Inside epoch 2 as people count (epoch index 1).
    assert!(
        resume["message"]
            .as_str()
            .unwrap()
            .starts_with("resumed in epoch 2,"),
        "{resume}"
    );
}

#[test]
fn a_policy_edited_since_the_checkpoint_runs_in_its_new_version() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let src = "fn on_epoch_end(ctx) { this.n = (this.n ?? 0) + 1; #{ metrics: #{ n: this.n } } }\n";
    std::fs::write(d.join("count.rhai"), src).unwrap();
    let args = [
        "train",
        "--epochs",
        "4",
        "--quiet",
        "--watch",
        "off",
        "--policy",
        "count.rhai",
        "--out",
        "r",
    ];
    run_until_killed(d, "step:60", &args);
    std::fs::write(d.join("count.rhai"), src.replace("+ 1", "+ 10")).unwrap();
    resume(d, "r");
    // `this.n` came back (2 after two epochs), then counts in tens.
    let n: Vec<f64> = jsonl(&d.join("r/metrics.jsonl"))
        .iter()
        .map(|m| m["policy"]["n"].as_f64().unwrap())
        .collect();
    assert_eq!(n, [1.0, 2.0, 12.0, 22.0]);
    let resume = first_event(d, "r", "resume");
    assert!(
        resume["message"]
            .as_str()
            .unwrap()
            .contains("count changed since the checkpoint"),
        "{resume}"
    );
}

#[test]
fn on_train_start_sees_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("start.rhai"),
        "fn on_train_start(ctx) { #{ log: `resumed ${ctx.resumed}` } }\n",
    )
    .unwrap();
    let args = [
        "train",
        "--epochs",
        "3",
        "--quiet",
        "--watch",
        "off",
        "--policy",
        "start.rhai",
        "--out",
        "r",
    ];
    run_until_killed(d, "step:30", &args);
    resume(d, "r");
    let logs: Vec<String> = jsonl(&d.join("r/events.jsonl"))
        .iter()
        .filter(|e| e["kind"] == "log")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logs, ["resumed false", "resumed true"]);
}

#[test]
fn rollback_to_best_brings_the_loss_back_after_a_blow_up() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A huge LR for epoch 3 blows the loss up; at its end the policy rolls back to the
    // best checkpoint and puts the LR back.
    train_policy(
        d,
        "blowup.rhai",
        r#"
fn on_epoch_start(ctx) {
    if ctx.epoch == 3 { return #{ lr: 50.0 }; }
}
fn on_epoch_end(ctx) {
    if ctx.epoch == 3 { return #{ rollback: "best", lr: ctx.base_lr }; }
}
"#,
        "5",
        &[],
    );
    let m = jsonl(&d.join("r/metrics.jsonl"));
    let val = |e: usize| m[e]["val_loss"].as_f64().unwrap_or(f64::INFINITY);
    let best = (0..3).map(val).fold(f64::INFINITY, f64::min);
    assert!(
        val(3) > 10.0 * best,
        "epoch 3 blew up: {} vs best {best}",
        val(3)
    );
    // The next epoch starts from the best weights and optimizer state: its loss is
    // back at the best level (one more epoch at the base LR).
    assert!(val(4) < 1.1 * best, "epoch 4: {} vs best {best}", val(4));
    let rb = first_event(d, "r", "rollback");
    assert_eq!(
        (rb["epoch"].as_u64(), rb["path"].as_str()),
        (Some(3), Some("checkpoints/best"))
    );
    // The blown-up epoch never became the best.
    assert!(
        state(&d.join("r"), "best")["monitored"]["value"]
            .as_f64()
            .unwrap()
            <= best
    );
}

#[test]
fn a_rollback_without_a_checkpoint_is_an_invalid_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_policy(
        d,
        "early.rhai",
        "fn on_epoch_start(ctx) { if ctx.epoch == 0 { #{ rollback: \"best\", lr: 0.5 } } }\n",
        "1",
        &[],
    );
    let bad = first_event(d, "r", "invalid_decision");
    assert_eq!(bad["key"], "rollback");
    // Rejected whole: the LR stayed.
    assert_eq!(jsonl(&d.join("r/metrics.jsonl"))[0]["lr"], 0.1);
}

#[test]
fn early_stop_restore_best_weights_ends_on_the_best_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Val loss goes up from epoch 3 on (a constant LR far too high for the MLP's
    // last epochs), so early stop with patience 1 stops and restores the best.
    train_policy(
        d,
        "up.rhai",
        "fn on_epoch_start(ctx) { if ctx.epoch >= 3 { #{ lr: 3.0 } } }\n",
        "10",
        &[
            "--policy",
            "stop/early_stop",
            "--param",
            "patience=1",
            "--param",
            "restore_best_weights=true",
            "--param",
            "check_finite=false",
        ],
    );
    let events = jsonl(&d.join("r/events.jsonl"));
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let rb = kinds
        .iter()
        .position(|k| *k == "rollback")
        .expect("a rollback");
    let stop = kinds.iter().position(|k| *k == "stop").expect("a stop");
    assert!(rb < stop, "{kinds:?}");
    // The run ended on the best weights: the last epoch's checkpoint, written after
    // the rollback, holds the same tensors as `best`.
    let m = jsonl(&d.join("r/metrics.jsonl"));
    assert!(m.len() < 10);
    let last = format!("r/checkpoints/epoch-{}/model.safetensors", m.len() - 1);
    assert_eq!(
        std::fs::read(d.join(last)).unwrap(),
        std::fs::read(d.join("r/checkpoints/best/model.safetensors")).unwrap()
    );
    // (A diverged epoch's val_loss is null.)
    let best_epoch = m
        .iter()
        .filter(|e| e["val_loss"].is_f64())
        .min_by(|a, b| {
            a["val_loss"]
                .as_f64()
                .partial_cmp(&b["val_loss"].as_f64())
                .unwrap()
        })
        .unwrap()["epoch"]
        .clone();
    assert_eq!(
        state(&d.join("r"), "best")["monitored"]["epoch"],
        best_epoch
    );
}

#[test]
fn checkpoint_faults_are_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = rudder(
        d,
        &[
            "train", "--epochs", "2", "--quiet", "--watch", "off", "--out", "r",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cks = ["epoch-0", "epoch-1", "best"].map(|n| d.join("r/checkpoints").join(n));
    let resume_fails = |needles: &[&str], args: &[&str]| {
        let mut all = vec!["train", "--resume", "r", "--quiet", "--epochs", "3"];
        all.extend(args);
        let o = rudder(d, &all);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
        for n in needles {
            assert!(e.contains(n), "{n:?} not in {e}");
        }
        assert!(!e.contains("panicked"), "{e}");
    };
    // Options that change the model are refused before anything is read.
    resume_fails(
        &["--hidden: a resumed run keeps its model"],
        &["--hidden", "32,16"],
    );
    // Checkpoints of another model (its config.json says 32,16).
    let config = std::fs::read_to_string(d.join("r/config.json")).unwrap();
    let other: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(&config).unwrap();
        v["hidden"] = serde_json::json!([32, 16]);
        v
    };
    std::fs::write(d.join("r/config.json"), other.to_string()).unwrap();
    resume_fails(
        &["model.safetensors: tensor fc1.weight has shape [256, 64] where the model has [32, 64]"],
        &[],
    );
    std::fs::write(d.join("r/config.json"), &config).unwrap();
    // Every checkpoint damaged the same way: each is named.
    let damage = |file: &str, how: &dyn Fn(&[u8]) -> Vec<u8>| -> Vec<Vec<u8>> {
        cks.iter()
            .map(|c| {
                let before = std::fs::read(c.join(file)).unwrap();
                std::fs::write(c.join(file), how(&before)).unwrap();
                before
            })
            .collect()
    };
    let restore = |file: &str, saved: Vec<Vec<u8>>| {
        for (c, b) in cks.iter().zip(saved) {
            std::fs::write(c.join(file), b).unwrap();
        }
    };
    // A truncated model file: its checksum no longer matches.
    let saved = damage("model.safetensors", &|b| b[..b.len() / 2].to_vec());
    resume_fails(
        &[
            "no checkpoint in r/checkpoints can be resumed",
            "epoch-1/model.safetensors: its SHA-256 is not the one state.json records",
            "best/model.safetensors",
            "epoch-0/model.safetensors",
        ],
        &[],
    );
    restore("model.safetensors", saved);
    // One flipped byte in the weights: caught by the checksum too.
    let saved = damage("model.safetensors", &|b| {
        let mut b = b.to_vec();
        let n = b.len() - 5;
        b[n] ^= 1;
        b
    });
    resume_fails(&["its SHA-256 is not the one state.json records"], &[]);
    restore("model.safetensors", saved);
    // A foreign state.json.
    let saved = damage("state.json", &|_| b"{\"epoch\": 3}".to_vec());
    resume_fails(&["epoch-1/state.json: not a rudder checkpoint"], &[]);
    restore("state.json", saved);
    // Not a run directory at all.
    let o = rudder(d, &["train", "--resume", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume nowhere: no config.json there"));
}

#[test]
fn monitor_every_and_keep_last_pick_the_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let o = rudder(
        d,
        &[
            "train",
            "--epochs",
            "6",
            "--quiet",
            "--watch",
            "off",
            "--out",
            "r",
            "--checkpoint-every",
            "2",
            "--keep-last",
            "2",
            "--monitor",
            "val_acc",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Epochs 1, 3, 5 (every second), the newest two kept; and the best by val_acc.
    assert_eq!(checkpoints(&d.join("r")), ["best", "epoch-3", "epoch-5"]);
    let m = jsonl(&d.join("r/metrics.jsonl"));
    let (best_epoch, best_acc) = m
        .iter()
        .map(|e| (e["epoch"].as_u64().unwrap(), e["val_acc"].as_f64().unwrap()))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    let state = state(&d.join("r"), "best");
    assert_eq!(state["monitored"]["metric"], "val_acc");
    assert_eq!(state["monitored"]["value"].as_f64(), Some(best_acc));
    assert_eq!(state["monitored"]["epoch"].as_u64(), Some(best_epoch));
    // A bad metric name is exit 2 naming the flag.
    let o = rudder(d, &["train", "--monitor", "accuracy", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--monitor: expected one of"),
        "{}",
        stderr(&o)
    );
}
