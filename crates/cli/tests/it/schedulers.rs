//! `rudder sweep --scheduler` (the book's Workflows page, docs/src/guide/workflows.md):
//! a sweep policy deciding over the trials as they report. ASHA's stops carried out
//! as the policy decided them (its decisions equal Optuna's: `policy test --std`),
//! an exploit's weights copied (checked by digest and by the loss they give), the
//! winner's lineage replayed by `best_schedule.rhai`, pauses freeing their slot, an
//! edit taking effect at the next report, and a scheduler that fails recorded while
//! the sweep goes on as with none.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{jsonl, rudder, stderr};

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schedulers")
        .join(name)
}

fn sweep(dir: &Path, out: &str, extra: &[&str]) -> Value {
    let mut args = vec!["sweep", "-q", "--out", out];
    args.extend_from_slice(extra);
    let o = rudder(dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json_file(&dir.join(out).join("sweep.json"))
}

fn trial<'a>(s: &'a Value, dir: &str) -> &'a Value {
    s["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["dir"] == dir)
        .unwrap_or_else(|| panic!("no trial {dir} in {s}"))
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(std::fs::read(p).unwrap());
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[test]
fn asha_stops_the_trials_its_rule_stops_and_no_others() {
    let d = tempfile::tempdir().unwrap();
    // The good LRs first: the later, worse trials meet full rungs.
    let lrs = ["0.3", "0.1", "1", "0.03", "0.01", "0.003", "0.002", "0.001"];
    let grid = format!("lr={}", lrs.join(","));
    let s = sweep(
        d.path(),
        "asha",
        &[
            "--epochs",
            "4",
            "--grid",
            &grid,
            "--scheduler",
            "sweep/asha",
            "--scheduler-param",
            "reduction_factor=2",
            "--jobs",
            "1",
        ],
    );
    // The curves as trained, replayed through the same policy in the same order
    // (one trial after another): it must stop exactly the trials the sweep stopped,
    // at the epochs it stopped them.
    let mut trials = Vec::new();
    let mut stopped = serde_json::Map::new();
    for (i, lr) in lrs.iter().enumerate() {
        let t = trial(&s, &format!("lr-{lr}"));
        let curve: Vec<Value> =
            jsonl(&d.path().join("asha").join(format!("lr-{lr}/metrics.jsonl")))
                .iter()
                .map(|l| l["val_loss"].clone())
                .collect();
        let n = t["epochs_run"].as_u64().unwrap();
        assert_eq!(curve.len() as u64, n);
        match t["status"].as_str().unwrap() {
            "stopped" => {
                assert!(n < 4, "{t}");
                stopped.insert(format!("t{i}"), json!(n));
            }
            "done" => assert!(n == 4 || t["diverged"] == true, "{t}"),
            other => panic!("status {other}"),
        }
        trials.push(json!({"curve": curve}));
    }
    assert!(
        stopped.len() >= 3,
        "ASHA at rf 2 stops at least half: {stopped:?}"
    );
    let winner = &s["trials"][s["winner"].as_u64().unwrap() as usize];
    assert_eq!(winner["status"], "done", "the winner was not stopped");
    let test = json!({"policy": "sweep/asha", "params": {"reduction_factor": 2},
        "sweep": {"trials": trials, "expect": {"stopped": stopped}}});
    let file = d.path().join("asha_replay.json");
    std::fs::write(&file, test.to_string()).unwrap();
    let o = rudder(d.path(), &["policy", "test", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Each stop is a decision in the sweep's events and a stop in the trial's.
    let events = jsonl(&d.path().join("asha/events.jsonl"));
    for id in stopped.keys() {
        let lr = lrs[id[1..].parse::<usize>().unwrap()];
        assert!(
            events
                .iter()
                .any(|e| e["decision"]["stop"] == json!([format!("lr-{lr}")])),
            "{events:?}"
        );
    }
}

/// The sweep `pbt` in `dir`: lr-0.01 then lr-0.3 for 4 epochs, lr-0.3 taking
/// lr-0.01's newest checkpoint after its second and going on at LR `lr`.
fn exploit_once(dir: &Path, lr: &str) -> Value {
    let param = format!("lr={lr}");
    let file = script("exploit_once.rhai");
    sweep(
        dir,
        "pbt",
        &[
            "--epochs",
            "4",
            "--grid",
            "lr=0.01,0.3",
            "--policy",
            "stop/terminate_on_nan",
            "--scheduler",
            file.to_str().unwrap(),
            "--scheduler-param",
            &param,
            "--jobs",
            "1",
        ],
    )
}

#[test]
fn an_exploit_copies_the_other_trials_weights_and_optimizer_state() {
    let d = tempfile::tempdir().unwrap();
    // After the copy the trial trains at LR 1e-30: its weights stay the copied ones,
    // so its next checkpoint is byte for byte the one it copied, and its val_loss
    // is the other trial's at that checkpoint.
    let s = exploit_once(d.path(), "1e-30");
    let t = trial(&s, "lr-0.3");
    let e = &t["lineage"][0];
    assert_eq!(e["from"], "lr-0.01");
    assert_eq!(e["epoch"], 2);
    assert_eq!(
        e["from_epoch"], 4,
        "lr-0.01 had finished: its newest is epoch 4's"
    );
    let root = d.path().join("pbt");
    let copied = sha256(&root.join("lr-0.01/checkpoints/epoch-3/model.safetensors"));
    assert_eq!(e["digest"], copied);
    assert_eq!(
        sha256(&root.join("lr-0.3/checkpoints/exploit-1/model.safetensors")),
        copied
    );
    assert_eq!(
        sha256(&root.join("lr-0.3/checkpoints/epoch-3/model.safetensors")),
        copied,
        "trained on from the copied weights"
    );
    let from = jsonl(&root.join("lr-0.01/metrics.jsonl"));
    let to = jsonl(&root.join("lr-0.3/metrics.jsonl"));
    assert_eq!(to[2]["val_loss"], from[3]["val_loss"]);
    assert_eq!(to[2]["lr"].as_f64(), Some(1e-30));
    let ev = jsonl(&root.join("lr-0.3/events.jsonl"));
    assert!(
        ev.iter()
            .any(|x| x["kind"] == "rollback" && x["path"] == "checkpoints/exploit-1"),
        "{ev:?}"
    );
}

#[test]
fn best_schedule_replays_the_winners_lineage_from_scratch() {
    let d = tempfile::tempdir().unwrap();
    let s = exploit_once(d.path(), "0.05");
    assert_eq!(
        s["trials"][s["winner"].as_u64().unwrap() as usize]["dir"],
        "lr-0.3"
    );
    let policy = d.path().join("pbt/best_schedule.rhai");
    // lr-0.3 took lr-0.01's weights after its 4 epochs, then trained 2 at 0.05.
    let o = rudder(
        d.path(),
        &[
            "train",
            "-q",
            "--out",
            "replay",
            "--epochs",
            "6",
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lrs: Vec<f64> = jsonl(&d.path().join("replay/metrics.jsonl"))
        .iter()
        .map(|l| l["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs, [0.01, 0.01, 0.01, 0.01, 0.05, 0.05]);
    let from: Vec<f64> = jsonl(&d.path().join("pbt/lr-0.01/metrics.jsonl"))
        .iter()
        .map(|l| l["lr"].as_f64().unwrap())
        .collect();
    let to: Vec<f64> = jsonl(&d.path().join("pbt/lr-0.3/metrics.jsonl"))
        .iter()
        .map(|l| l["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(&lrs[..4], &from[..], "the copied trial's sequence");
    assert_eq!(&lrs[4..], &to[2..], "then the winner's after its exploit");
}

#[test]
fn a_paused_trial_frees_its_slot_and_resumes_when_one_is_free() {
    let d = tempfile::tempdir().unwrap();
    let s = sweep(
        d.path(),
        "p",
        &[
            "--epochs",
            "3",
            "--grid",
            "lr=0.01,0.3,1",
            "--scheduler",
            script("pause_first.rhai").to_str().unwrap(),
            "--jobs",
            "1",
        ],
    );
    let root = d.path().join("p");
    let paused = trial(&s, "lr-0.01");
    assert_eq!(
        paused["status"], "done",
        "resumed when the slot was free: {paused}"
    );
    assert_eq!(paused["epochs_run"], 3);
    let ev = jsonl(&root.join("lr-0.01/events.jsonl"));
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "stop").count(),
        1,
        "paused once: {kinds:?}"
    );
    let resumed = ev
        .iter()
        .find(|e| e["kind"] == "resume")
        .expect("resumed once");
    assert_eq!(
        resumed["path"], "checkpoints/epoch-0",
        "from its checkpoint"
    );
    // It resumed after lr-0.3 had finished: its slot was lr-0.3's meanwhile.
    let other = jsonl(&root.join("lr-0.3/events.jsonl"));
    let end = other.iter().find(|e| e["kind"] == "run_end").unwrap()["time"]
        .as_str()
        .unwrap();
    assert!(
        resumed["time"].as_str().unwrap() >= end,
        "{resumed} before {end}"
    );
    assert_eq!(trial(&s, "lr-0.3")["epochs_run"], 3);
    let never = trial(&s, "lr-1");
    assert_eq!(never["status"], "stopped");
    assert_eq!(never["epochs_run"], 0);
    assert!(
        !root.join("lr-1").exists(),
        "a trial stopped before it started trains nothing"
    );
}

#[test]
fn an_edited_scheduler_decides_from_the_next_report() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("sched.rhai");
    std::fs::copy(script("versions.rhai"), &file).unwrap();
    let child = std::process::Command::new(super::bin())
        .current_dir(d.path())
        .args([
            "sweep",
            "-q",
            "--out",
            "e",
            "--epochs",
            "60",
            "--grid",
            "lr=0.1,0.2",
            "--jobs",
            "1",
            "--scheduler",
            file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reap = super::Reaped(child);
    let events = d.path().join("e/events.jsonl");
    while super::lines_so_far(&events).is_empty() {
        assert!(
            reap.0.try_wait().unwrap().is_none(),
            "the sweep ended before its first report"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::write(
        &file,
        "// Version 2: stops whoever reports.\nfn on_report(sweep) { #{ stop: [sweep.trial.id], metrics: #{ version: 2 } } }\n",
    )
    .unwrap();
    let status = reap.0.wait().unwrap();
    assert!(status.success());
    let ev = jsonl(&events);
    let reload = ev
        .iter()
        .position(|e| e["kind"] == "reload")
        .expect("a reload event");
    let version = |e: &Value| e["decision"]["metrics"]["version"].as_f64();
    assert!(
        reload > 0 && ev[..reload].iter().all(|e| version(e) == Some(1.0)),
        "{ev:?}"
    );
    assert!(
        ev[reload + 1..].iter().all(|e| version(e) == Some(2.0)),
        "{ev:?}"
    );
    assert_eq!(version(&ev[reload + 1]), Some(2.0), "{ev:?}");
    let s = json_file(&d.path().join("e/sweep.json"));
    assert_eq!(
        trial(&s, "lr-0.2")["epochs_run"],
        1,
        "stopped at its first report"
    );
}

#[test]
fn a_scheduler_that_throws_or_never_returns_is_recorded_and_the_sweep_goes_on() {
    let d = tempfile::tempdir().unwrap();
    for how in ["throw", "loop"] {
        let out = format!("f-{how}");
        let s = sweep(
            d.path(),
            &out,
            &[
                "--epochs",
                "3",
                "--grid",
                "lr=0.1,0.3",
                "--scheduler",
                script("throws.rhai").to_str().unwrap(),
                "--scheduler-param",
                &format!("how={how}"),
            ],
        );
        for t in s["trials"].as_array().unwrap() {
            assert_eq!(t["status"], "done", "as with no scheduler: {t}");
            assert_eq!(t["epochs_run"], 3);
        }
        let errors: Vec<Value> = jsonl(&d.path().join(&out).join("events.jsonl"))
            .into_iter()
            .filter(|e| e["kind"] == "policy_error")
            .collect();
        assert_eq!(errors.len(), 2, "one per trial's second report: {errors:?}");
        let m = errors[0]["message"].as_str().unwrap();
        if how == "throw" {
            assert!(m.contains("scheduler bug"), "{m}");
            assert_eq!(errors[0]["line"], 6);
        } else {
            assert!(
                m.contains("budget") || m.contains("operations") || m.contains("time"),
                "{m}"
            );
        }
    }
    // A decision naming no trial is an error of that report alone.
    let s = sweep(
        d.path(),
        "u",
        &[
            "--epochs",
            "2",
            "--grid",
            "lr=0.03,0.3",
            "--scheduler",
            script("unknown_trial.rhai").to_str().unwrap(),
        ],
    );
    assert!(
        s["trials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "done")
    );
    let errors: Vec<Value> = jsonl(&d.path().join("u/events.jsonl"));
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("no trial \"lr-0.O3\"; did you mean lr-0.03?"),
        "{errors:?}"
    );
}

#[test]
fn bad_schedulers_are_refused_before_any_trial_trains() {
    let d = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec!["--scheduler", "sweep/nosuch"],
            "--scheduler sweep/nosuch",
        ),
        (
            vec!["--scheduler", "lr/cosine"],
            "defines fn on_report(sweep)",
        ),
        (
            vec!["--scheduler-param", "grace_period=2"],
            "needs a --scheduler",
        ),
        (
            vec![
                "--scheduler",
                "sweep/asha",
                "--scheduler-param",
                "grace_perod=2",
            ],
            "did you mean grace_period",
        ),
        (vec!["--policy", "sweep/asha"], "is a sweep policy"),
    ] {
        let mut a = vec!["sweep", "-q", "--out", "x", "--epochs", "1"];
        a.extend(args);
        let o = rudder(d.path(), &a);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(needle), "{a:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!d.path().join("x").exists(), "nothing trained");
    }
}

/// `rudder sweep ARGS` in `dir`, killed with SIGKILL once its trials have written
/// `lines` metrics lines in all (or when it ends first).
fn kill_after(dir: &Path, args: &[&str], lines: usize) {
    let child = std::process::Command::new(super::bin())
        .current_dir(dir)
        .arg("sweep")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = super::Reaped(child);
    let out = dir.join(args[args.iter().position(|a| *a == "--out").unwrap() + 1]);
    loop {
        let written: usize = std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| super::lines_so_far(&e.path().join("metrics.jsonl")).len())
            .sum();
        if written >= lines || child.0.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let _ = child.0.kill();
    let _ = child.0.wait();
}

#[test]
fn a_sweep_killed_at_any_point_resumes_to_the_uninterrupted_results() {
    let d = tempfile::tempdir().unwrap();
    let args = |out: &str| -> Vec<String> {
        [
            "-q",
            "--out",
            out,
            "--epochs",
            "8",
            "--grid",
            "lr=0.03,0.1,0.3",
            "--jobs",
            "1",
        ]
        .map(String::from)
        .to_vec()
    };
    let a = args("ref");
    let reference = sweep(
        d.path(),
        "ref",
        &a[3..].iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // Three points, one of them drawn anew each time: none may matter.
    let drawn = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize)
        % 23
        + 1;
    for (k, at) in [3, 11, drawn].into_iter().enumerate() {
        let out = format!("k{k}");
        let a = args(&out);
        kill_after(
            d.path(),
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            at,
        );
        let o = rudder(d.path(), &["sweep", "--resume", &out]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "killed after {at} lines: {}",
            stderr(&o)
        );
        let s = json_file(&d.path().join(&out).join("sweep.json"));
        assert_eq!(s["state"], "done");
        for (x, y) in reference["trials"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s["trials"].as_array().unwrap())
        {
            assert_eq!(x["dir"], y["dir"]);
            assert_eq!(y["epochs_run"], 8, "killed after {at}: {y}");
            assert_eq!(
                x["final"]["val_loss"], y["final"]["val_loss"],
                "killed after {at}: {}",
                x["dir"]
            );
            let epochs: Vec<u64> = jsonl(
                &d.path()
                    .join(&out)
                    .join(y["dir"].as_str().unwrap())
                    .join("metrics.jsonl"),
            )
            .iter()
            .map(|l| l["epoch"].as_u64().unwrap())
            .collect();
            assert_eq!(epochs, (0..8).collect::<Vec<u64>>(), "every epoch once");
        }
        // A finished sweep is not resumed again.
        let o = rudder(d.path(), &["sweep", "--resume", &out]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("this sweep finished"), "{}", stderr(&o));
    }
}

#[test]
fn a_scheduled_sweep_killed_mid_run_keeps_its_finished_trials_and_its_scheduler() {
    let d = tempfile::tempdir().unwrap();
    let a = [
        "-q",
        "--out",
        "s",
        "--epochs",
        "30",
        "--grid",
        "lr=0.3,0.1,0.03,0.01,0.003",
        "--jobs",
        "1",
        "--policy",
        "stop/terminate_on_nan",
        "--scheduler",
        "sweep/median",
        "--scheduler-param",
        "n_startup_trials=1",
    ];
    // The first trial has run its 30 epochs (nothing stops it: no trial had
    // finished), the second has begun.
    kill_after(d.path(), &a, 32);
    let before = json_file(&d.path().join("s/sweep.json"));
    assert_eq!(before["state"], "running");
    let done_before: Vec<String> = before["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "done" || t["status"] == "stopped")
        .map(|t| t["dir"].as_str().unwrap().to_string())
        .collect();
    assert!(!done_before.is_empty(), "{before}");
    let metrics_before: Vec<String> = done_before
        .iter()
        .map(|t| std::fs::read_to_string(d.path().join("s").join(t).join("metrics.jsonl")).unwrap())
        .collect();
    let o = rudder(d.path(), &["sweep", "--resume", "s", "--lr", "9"]);
    assert_eq!(o.status.code(), Some(2), "only --resume: {}", stderr(&o));
    let o = rudder(d.path(), &["sweep", "--resume", "s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = json_file(&d.path().join("s/sweep.json"));
    for (t, m) in done_before.iter().zip(&metrics_before) {
        let dir = d.path().join("s").join(t);
        assert_eq!(
            &std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap(),
            m,
            "{t} not rerun"
        );
    }
    for t in s["trials"].as_array().unwrap() {
        assert!(t["status"] == "done" || t["status"] == "stopped", "{t}");
    }
    // The scheduler's state went on: its report count grew from where it was.
    let events = jsonl(&d.path().join("s/events.jsonl"));
    assert!(
        events.iter().all(|e| e["kind"] != "policy_error"),
        "{events:?}"
    );
    assert!(s["scheduler"]["this"].is_object());
}

#[test]
fn a_resumed_trial_is_held_to_its_first_epochs_loss_not_its_resumed_steps() {
    let d = tempfile::tempdir().unwrap();
    // At batch 8, lr-0.3's step losses after 3 epochs swing over ten times the
    // first step after its resume; the divergence guard must not read that as
    // diverging.
    let s = sweep(
        d.path(),
        "g",
        &[
            "--epochs",
            "8",
            "--batch-size",
            "8",
            "--grid",
            "lr=0.3,0.01",
            "--jobs",
            "1",
            "--scheduler",
            script("pause_good.rhai").to_str().unwrap(),
        ],
    );
    let t = trial(&s, "lr-0.3");
    assert_eq!(t["diverged"], false, "{t}");
    assert_eq!(t["epochs_run"], 8, "{t}");
    // Paused at its last epoch, lr-0.01 is done, not resumed into an error.
    let last = trial(&s, "lr-0.01");
    assert_eq!(last["status"], "done", "{last}");
    assert_eq!(last["epochs_run"], 8);
    assert_eq!(last["stop_reason"], Value::Null, "it ended nothing early");
}

#[test]
fn a_scheduler_starts_trials_and_resumes_a_paused_one_first() {
    let d = tempfile::tempdir().unwrap();
    let s = sweep(
        d.path(),
        "n",
        &[
            "--epochs",
            "2",
            "--grid",
            "lr=0.1,0.3,1",
            "--jobs",
            "1",
            "--scheduler",
            script("start_resume.rhai").to_str().unwrap(),
        ],
    );
    let started = trial(&s, "new000");
    assert_eq!(started["lr"], 0.05);
    assert_eq!(started["epochs_run"], 2);
    assert_eq!(started["status"], "done");
    let events = jsonl(&d.path().join("n/events.jsonl"));
    let refused = events
        .iter()
        .find(|e| e["kind"] == "invalid_decision")
        .expect("refused");
    assert!(
        refused["message"].as_str().unwrap().contains("data"),
        "{refused}"
    );
    assert_eq!(
        s["trials"].as_array().unwrap().len(),
        4,
        "the refused one is not a trial"
    );
    // lr-0.1 resumed right after lr-0.3, before lr-1 and new000 began.
    let at = |dir: &str, kind: &str| -> String {
        jsonl(&d.path().join("n").join(dir).join("events.jsonl"))
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("{dir}: no {kind}"))["time"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let resumed = at("lr-0.1", "resume");
    assert!(resumed >= at("lr-0.3", "run_end"));
    assert!(resumed <= at("lr-1", "run_start"), "resumed first");
    assert!(resumed <= at("new000", "run_start"), "resumed first");
    assert_eq!(trial(&s, "lr-0.1")["epochs_run"], 2);
}

#[test]
fn the_schedulers_test_cases_are_what_optuna_decides() {
    // tools/optuna_refs.py, run now against the installed Optuna, writes the same
    // expectations the committed sweep_*.json cases hold.
    let py = std::env::var_os("RUDDER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo().join(".venv/bin/python"));
    let has = std::process::Command::new(&py)
        .args(["-c", "import optuna"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        assert!(
            std::env::var_os("CI").is_none(),
            "{}: no optuna (.ci/run installs it)",
            py.display()
        );
        super::skip("the Optuna cross-check: no .venv with optuna (.venv/bin/pip install optuna)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(&py)
        .current_dir(super::repo())
        .args(["tools/optuna_refs.py", d.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let committed = super::repo().join("crates/policy/scripts/tests");
    let mut n = 0;
    for e in std::fs::read_dir(d.path()).unwrap().flatten() {
        let name = e.file_name();
        let now = json_file(&e.path());
        let kept = json_file(&committed.join(&name));
        assert_eq!(now, kept, "{name:?} differs from what Optuna decides now");
        n += 1;
    }
    assert!(n >= 21, "{n} files");
}
