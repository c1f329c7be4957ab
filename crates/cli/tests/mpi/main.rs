//! Many processes (the book's Many processes page, docs/src/guide/many-processes.md),
//! through real `mpirun` jobs of two ranks on this machine (shared memory only:
//! `--mca btl self,vader`). Built with `--features mpi`; `.ci/run` installs OpenMPI and
//! runs these. Each rank records the LR and batch size it applied at every step, and a
//! digest of its weights after every epoch, in `RUDDER_RANK_LOG`
//! (`src/dist/ranklog.rs`). Waits have generous deadlines so a hang fails instead of
//! blocking; nothing asserts on time.

#![cfg(feature = "mpi")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> PathBuf {
    std::env::var_os("RUDDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rudder")))
}

/// `mpirun -np N rudder ARGS` in `dir`, each rank's record in `dir/ranks`.
fn mpirun(dir: &Path, n: usize, args: &[&str], env: &[(&str, &str)]) -> Command {
    std::fs::create_dir_all(dir.join("ranks")).unwrap();
    let mut c = Command::new("mpirun");
    c.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &n.to_string(),
        "--mca",
        "btl",
        "self,vader",
        "--mca",
        "btl_vader_single_copy_mechanism",
        "none",
    ])
    .arg(bin())
    .args(args)
    .current_dir(dir)
    .env("RUDDER_RANK_LOG", dir.join("ranks"))
    .env_remove("RUDDER_DATA");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs `c` to its end (a deadline of 300 s fails the test instead of hanging it).
fn finish(mut c: Command) -> Output {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts (OpenMPI installed?)");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("the job hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One process: the same binary without mpirun.
fn single(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUDDER_DATA")
        .output()
        .unwrap();
    ok(&o);
    o
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn rank_log(dir: &Path, rank: usize) -> Vec<Value> {
    jsonl(&dir.join(format!("ranks/rank-{rank}.jsonl")))
}

/// A 2-rank run that would go on for 100,000 epochs (batch 8) with `policy`, into
/// `out`, once each rank has recorded 50 steps.
fn endless(dir: &Path, policy: &str, out: &str) -> (std::process::Child, Instant) {
    let args = [
        "train",
        "--quiet",
        "--epochs",
        "100000",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--policy",
        policy,
        "--out",
        out,
    ];
    let child = mpirun(dir, 2, &args, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let recorded = |r: usize| {
        std::fs::read_to_string(dir.join(format!("ranks/rank-{r}.jsonl")))
            .unwrap_or_default()
            .lines()
            .count()
    };
    while recorded(0) < 50 || recorded(1) < 50 {
        assert!(t.elapsed() < Duration::from_secs(120), "the job never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, t)
}

/// Waits for `child` to end (300 s from `t`, else it is killed and `what` fails).
fn wait_end(mut child: std::process::Child, t: Instant, what: &str) -> Output {
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("{what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn weights(path: &Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    rudder_run::checkpoint::parse_tensors(&bytes, path)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

const METRICS: [&str; 5] = ["lr", "train_loss", "train_acc", "val_loss", "val_acc"];

/// Every metric of every epoch within `rel` (relative), and the same epochs.
fn same_metrics(a: &[Value], b: &[Value], rel: f64) {
    assert_eq!(a.len(), b.len(), "epochs");
    for (x, y) in a.iter().zip(b) {
        for k in METRICS {
            let (x, y) = (x[k].as_f64().unwrap(), y[k].as_f64().unwrap());
            let d = (x - y).abs() / x.abs().max(1e-12);
            assert!(d <= rel, "{k}: {x} vs {y} (relative {d:e})");
        }
    }
}

fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--quiet",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

/// Two ranks against one process on the global batch, for `optimizer` at `lr` with
/// `kernels` (our engine, or candle's autograd).
fn equivalence(optimizer: &str, lr: &str, kernels: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let extra = ["--optimizer", optimizer, "--lr", lr, "--kernels", kernels];
    single(d, &train_args("one", &extra));
    let o = finish(mpirun(d, 2, &train_args("two", &extra), &[]));
    ok(&o);
    same_metrics(
        &jsonl(&d.join("one/metrics.jsonl")),
        &jsonl(&d.join("two/metrics.jsonl")),
        1e-5,
    );
    let (a, b) = (
        weights(&d.join("one/checkpoints/epoch-2/model.safetensors")),
        weights(&d.join("two/checkpoints/epoch-2/model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for (name, x) in &a {
        let worst = x
            .iter()
            .zip(&b[name])
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{name}: weights differ by {worst:e}");
    }
    // The world is in run_start; rank 0 alone wrote the run folder.
    let start = &jsonl(&d.join("two/events.jsonl"))[0];
    assert_eq!(start["kind"], "run_start");
    assert_eq!(start["world_size"], 2);
    assert_eq!(start["rank"], 0);
    // The ranks applied the same steps with the same (reduced) losses.
    let (r0, r1) = (rank_log(d, 0), rank_log(d, 1));
    assert!(r0.len() > 3);
    assert_eq!(r0, r1);
}

#[test]
fn two_ranks_equal_one_process_with_sgd() {
    equivalence("sgd", "0.1", "rudder");
}

#[test]
fn two_ranks_equal_one_process_with_adamw() {
    // Adam's usual LR. At 0.1 AdamW amplifies the last bits of gradients that
    // nearly cancel (its update is about lr x sign(g) there): the runs drift apart
    // by 1e-4 in three epochs, a difference of summation order, not of arithmetic.
    equivalence("adamw", "0.001", "rudder");
}

#[test]
fn two_ranks_equal_one_process_on_candles_autograd() {
    equivalence("sgd", "0.1", "candle");
}

#[test]
fn the_cnn_learns_on_two_ranks_whose_weights_stay_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let args = [
        "train",
        "--quiet",
        "--model",
        "cnn",
        "--epochs",
        "4",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--policy",
        "lr/cosine",
        "--out",
        "cnn",
    ];
    ok(&finish(mpirun(d, 2, &args, &[])));
    let m = jsonl(&d.join("cnn/metrics.jsonl"));
    let acc = m.last().unwrap()["val_acc"].as_f64().unwrap();
    assert!(acc >= 0.95, "val_acc {acc}");
    let digests = |r| -> Vec<Value> {
        rank_log(d, r)
            .into_iter()
            .filter(|l| l.get("weights").is_some())
            .collect()
    };
    let (a, b) = (digests(0), digests(1));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "the ranks' weights after each epoch");
}

#[test]
fn a_policy_changes_lr_and_batch_size_on_every_rank_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("steer.rhai"),
        r#"
fn on_step(ctx) {
    if ctx.step == 7 { return #{ lr: 0.05 }; }
    if ctx.step == 20 { return #{ batch_size: 32, rescale: "none" }; }
    if ctx.step == 45 { return #{ batch_size: 96, lr: 0.2, rescale: "none" }; }
    #{}
}
"#,
    )
    .unwrap();
    let args = train_args("steer", &["--policy", "./steer.rhai", "--lr", "0.1"]);
    ok(&finish(mpirun(d, 2, &args, &[])));
    let (r0, r1) = (rank_log(d, 0), rank_log(d, 1));
    assert_eq!(
        r0, r1,
        "both ranks applied the same values at the same steps"
    );
    let at = |step: u64| {
        r0.iter()
            .find(|l| l["step"] == step)
            .unwrap_or_else(|| panic!("step {step}"))
    };
    // The log line of step S is written after S's update: the decision before
    // step 8's update shows at step 8.
    assert_eq!(at(7)["lr"], 0.1);
    assert_eq!(at(8)["lr"], 0.05);
    assert_eq!(at(20)["batch_size"], 64);
    assert_eq!(at(21)["batch_size"], 32);
    assert_eq!(at(46)["batch_size"], 96);
    assert_eq!(at(46)["lr"], 0.2);
}

#[test]
fn an_edit_reaches_both_ranks_at_the_same_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let policy = d.join("steer.rhai");
    std::fs::write(&policy, "fn on_step(ctx) { #{ lr: 0.01 } }\n").unwrap();
    let (child, t) = endless(d, "./steer.rhai", "hot");
    // The new version: another LR, and a stop at the end of its epoch.
    std::fs::write(
        &policy,
        "fn on_step(ctx) { #{ lr: 0.02 } }\nfn on_epoch_end(ctx) { #{ stop: true } }\n",
    )
    .unwrap();
    let out = wait_end(child, t, "the edited policy never stopped the job");
    assert!(out.status.success());
    let (r0, r1) = (rank_log(d, 0), rank_log(d, 1));
    assert_eq!(r0, r1);
    let lrs: Vec<f64> = r0.iter().filter_map(|l| l["lr"].as_f64()).collect();
    let switch = lrs
        .iter()
        .position(|&lr| lr == 0.02)
        .expect("the edit applied");
    assert!(switch > 0 && lrs[..switch].iter().all(|&lr| lr == 0.01));
    assert!(lrs[switch..].iter().all(|&lr| lr == 0.02));
    let events = jsonl(&d.join("hot/events.jsonl"));
    let reloads: Vec<&Value> = events.iter().filter(|e| e["kind"] == "reload").collect();
    assert_eq!(reloads.len(), 1, "one reload, on rank 0");
}

#[test]
fn ctl_reaches_both_ranks_at_the_same_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("idle.rhai"), "fn on_epoch_end(ctx) { () }\n").unwrap();
    let (child, t) = endless(d, "./idle.rhai", "steered");
    let ctl = |args: &[&str]| {
        let o = Command::new(bin())
            .arg("ctl")
            .arg("steered")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        ok(&o);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(ctl(&["set", "lr=0.0234"]).contains("lr 0.0234 applied"));
    assert!(ctl(&["stop", "two ranks"]).contains("stop (two ranks) applied"));
    let out = wait_end(child, t, "rudder ctl stop never ended the job");
    assert!(out.status.success());
    let (r0, r1) = (rank_log(d, 0), rank_log(d, 1));
    assert_eq!(r0, r1, "both ranks applied the line at the same step");
    let lrs: Vec<f64> = r0.iter().filter_map(|l| l["lr"].as_f64()).collect();
    let switch = lrs.iter().position(|&lr| lr == 0.0234).expect("applied");
    assert!(switch > 0 && lrs[switch..].iter().all(|&lr| lr == 0.0234));
    let events = jsonl(&d.join("steered/events.jsonl"));
    let control: Vec<&Value> = events.iter().filter(|e| e["policy"] == "control").collect();
    assert_eq!(control.len(), 2, "recorded once, by rank 0: {control:?}");
    let end = events.iter().find(|e| e["kind"] == "run_end").unwrap();
    assert_eq!(end["reason"], "two ranks");
}

#[test]
fn a_killed_rank_ends_the_job_and_its_run_resumes_on_two_ranks_or_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let args = train_args("whole", &[]);
    ok(&finish(mpirun(d, 2, &args, &[])));
    // Rank 1 dies by SIGKILL at step 40, in the second epoch.
    let args = train_args("cut", &[]);
    let o = finish(mpirun(
        d,
        2,
        &args,
        &[("RUDDER_FAULT", "die:40"), ("RUDDER_FAULT_RANK", "1")],
    ));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rank 1"), "the dead rank is named: {err}");
    assert_eq!(jsonl(&d.join("cut/metrics.jsonl")).len(), 1);
    copy_dir(&d.join("cut"), &d.join("cut1"));
    ok(&finish(mpirun(
        d,
        2,
        &["train", "--quiet", "--resume", "cut"],
        &[],
    )));
    single(d, &["train", "--quiet", "--resume", "cut1"]);
    let whole = jsonl(&d.join("whole/metrics.jsonl"));
    // Two ranks again: the same arithmetic as the uninterrupted run.
    same_metrics(&whole, &jsonl(&d.join("cut/metrics.jsonl")), 0.0);
    // One process: the same steps, summed in another order.
    same_metrics(&whole, &jsonl(&d.join("cut1/metrics.jsonl")), 1e-5);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn sweep_and_lr_find_refuse_to_run_once_per_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for cmd in [
        &["sweep", "--epochs", "1", "--out", "s"][..],
        &["lr-find", "--out", "f"][..],
    ] {
        let o = finish(mpirun(d, 2, cmd, &[]));
        assert_eq!(o.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{}: runs in one process", cmd[0])),
            "{err}"
        );
        assert!(!d.join("s").exists() && !d.join("f").exists());
    }
}

#[test]
fn ctrl_c_to_mpirun_ends_every_rank_as_one_interrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (child, t) = endless(d, "lr/cosine", "int");
    // SAFETY: kill(2) on the child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = wait_end(child, t, "the interrupted job hung");
    assert!(!out.status.success());
    let events = jsonl(&d.join("int/events.jsonl"));
    let end = events.last().unwrap();
    assert_eq!(end["kind"], "run_end");
    assert_eq!(end["reason"], "interrupted");
    let step = end["step"].as_u64().unwrap();
    assert!(d.join(format!("int/checkpoints/step-{step}")).is_dir());
    // Both ranks stopped after the same step.
    let last = |r| {
        rank_log(d, r)
            .iter()
            .filter_map(|l| l["step"].as_u64())
            .max()
    };
    assert_eq!(last(0), Some(step));
    assert_eq!(last(1), Some(step));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("interrupted at epoch").count(), 1, "{err}");
}

mod slurm;
