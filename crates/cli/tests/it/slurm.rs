//! `rudder sweep --launcher slurm` against a real Slurm (the book's "Sweeps on a
//! cluster" page, docs/src/guide/cluster.md): the one-node cluster of
//! `tools/slurm-local.sh start`. A sweep as a job array trains the same trials as a
//! local one; ASHA stops trials through their control channels; a cancelled task is
//! resubmitted and a requeued or signalled one requeued, each trial resuming to the
//! numbers of an uninterrupted one; a killed coordinator resumes without rerunning a
//! trial; a trial that always fails is failed after its retries; a folder the tasks
//! cannot see is a clear exit 2. Without Slurm these skip with a line (under CI they
//! fail). The tests take the cluster one at a time; waits poll with a generous
//! deadline, nothing asserts on time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Reaped, bin, jsonl, lines_so_far, rudder, stderr};

/// The cluster, this test's alone; `None` (a skip line) when there is none.
fn cluster() -> Option<MutexGuard<'static, ()>> {
    static ONE: Mutex<()> = Mutex::new(());
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).lines().any(|l| {
                    ["idle", "mixed", "allocated"]
                        .iter()
                        .any(|s| l.starts_with(s))
                })
        });
    if !up {
        if std::env::var_os("CI").is_some() {
            panic!("no Slurm cluster is up: .ci/run starts one with tools/slurm-local.sh start");
        }
        super::skip("no Slurm cluster is up (tools/slurm-local.sh start makes one here)");
        return None;
    }
    Some(ONE.lock().unwrap_or_else(|e| e.into_inner()))
}

fn json_file(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A trial's epochs, without what depends on the machine's speed.
fn curve(run: &Path) -> Vec<Value> {
    jsonl(&run.join("metrics.jsonl"))
        .into_iter()
        .map(|mut l| {
            let m = l.as_object_mut().unwrap();
            m.remove("epoch_time_s");
            m.remove("samples_per_s");
            l
        })
        .collect()
}

fn trial<'a>(s: &'a Value, dir: &str) -> &'a Value {
    s["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["dir"] == dir)
        .unwrap_or_else(|| panic!("no trial {dir} in {s}"))
}

fn attempts(t: &Value) -> Vec<Value> {
    t["slurm"]["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `rudder sweep` over digits in `dir/out`, to its end.
fn sweep(dir: &Path, out: &str, extra: &[&str]) -> Value {
    let mut args = vec!["sweep", "-q", "--out", out];
    args.extend_from_slice(extra);
    let o = rudder(dir, &args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json_file(&dir.join(out).join("sweep.json"))
}

/// `rudder sweep` started in `dir` with each step slowed by `pace_ms` (the fault
/// hook, which the tasks inherit through sbatch's environment).
fn spawn(dir: &Path, args: &[&str], pace_ms: u32) -> Reaped {
    Reaped(
        Command::new(bin())
            .arg("sweep")
            .args(args)
            .current_dir(dir)
            .env_remove("RUDDER_DATA")
            .env("RUDDER_FAULT", format!("pace:{pace_ms}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rudder runs"),
    )
}

/// Waits (up to 5 minutes) for `what`.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "waited too long for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The coordinator's exit code once it ends, releasing any task Slurm holds back
/// after a requeue (its `BeginTime` delay) meanwhile, as an admin would.
fn finish(mut c: Reaped) -> (Option<i32>, String) {
    let t0 = Instant::now();
    loop {
        if let Some(s) = c.0.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = c.0.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            return (s.code(), err);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "the sweep did not end"
        );
        release_held();
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn release_held() {
    let Ok(o) = Command::new("squeue")
        .args(["-h", "-r", "-t", "PD", "-O", "JobArrayID:|,Reason:|"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() >= 2 && f[1] == "BeginTime" {
            let _ = Command::new("scontrol")
                .args(["update", &format!("JobId={}", f[0]), "StartTime=now"])
                .output();
        }
    }
}

/// Trial `dir`'s current task in the running sweep `out` of coordinator `c`, once
/// the trial has an epoch.
fn task_after_an_epoch(c: &mut Reaped, sweep_dir: &Path, dir: &str) -> String {
    wait_for(&format!("{dir}'s first epoch"), || {
        if let Some(s) = c.0.try_wait().unwrap() {
            panic!("the sweep ended first ({s})");
        }
        !lines_so_far(&sweep_dir.join(dir).join("metrics.jsonl")).is_empty()
    });
    let s = json_file(&sweep_dir.join("sweep.json"));
    attempts(trial(&s, dir))
        .last()
        .and_then(|a| a["job"].as_str().map(str::to_string))
        .expect("a task")
}

const TRIALS: [&str; 6] = ["x1", "x2", "x4", "x0.5", "x0.25", "x0.125"];

#[test]
fn a_slurm_array_trains_the_same_trials_as_a_local_sweep() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let common = [
        "--epochs",
        "2",
        "--multipliers",
        "1,2,4,0.5,0.25,0.125",
        "--jobs",
        "2",
    ];
    let local = sweep(d.path(), "local", &common);
    let mut args = common.to_vec();
    args.extend(["--launcher", "slurm"]);
    let slurm = sweep(d.path(), "slurm", &args);
    assert_eq!(local["winner"], slurm["winner"]);
    for (i, name) in TRIALS.iter().enumerate() {
        assert_eq!(
            curve(&d.path().join("local").join(name)),
            curve(&d.path().join("slurm").join(name)),
            "{name}'s epochs differ"
        );
        let t = trial(&slurm, name);
        assert_eq!(t["status"], "done");
        assert_eq!(t["slurm"]["task"], i, "{t}");
        let a = attempts(t);
        assert_eq!(a.len(), 1, "{t}");
        assert_eq!(a[0]["state"], "COMPLETED");
        assert_eq!(a[0]["exit"], 0);
        assert!(a[0]["job"].as_str().unwrap().ends_with(&format!("_{i}")));
        assert!(
            a[0]["node"].is_string()
                && a[0]["queued_s"].is_number()
                && a[0]["running_s"].is_number()
        );
    }
    // One array for all six, two at a time.
    let script = std::fs::read_to_string(d.path().join("slurm/slurm/sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-5%2\n"), "{script}");
    let jobs: std::collections::BTreeSet<String> = TRIALS
        .iter()
        .map(|n| {
            attempts(trial(&slurm, n))[0]["job"]
                .as_str()
                .unwrap()
                .split('_')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
}

#[test]
fn asha_on_slurm_stops_its_trials_through_their_control_channels_as_a_local_sweep_does() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    // One at a time, so that the order of reports (and so ASHA's rungs) is the same
    // in both; with more it is the machine's timing, as in Optuna with n_jobs.
    let common = [
        "--epochs",
        "4",
        "--multipliers",
        "4,2,1,0.5,0.1,0.05",
        "--jobs",
        "1",
        "--scheduler",
        "sweep/asha",
    ];
    let local = sweep(d.path(), "local", &common);
    let mut args = vec!["-q", "--out", "s", "--launcher", "slurm"];
    args.extend(common);
    let (code, err) = finish(spawn(d.path(), &args, 5));
    assert_eq!(code, Some(0), "{err}");
    let s = json_file(&d.path().join("s/sweep.json"));
    let stopped: Vec<&Value> = s["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "stopped")
        .collect();
    assert!(stopped.len() >= 3, "{s}");
    for t in s["trials"].as_array().unwrap() {
        let name = t["dir"].as_str().unwrap();
        let l = trial(&local, name);
        assert_eq!(t["status"], l["status"], "{name}");
        assert_eq!(t["epochs_run"], l["epochs_run"], "{name}");
        // Decided at the epoch's end, as a local trial is: no partial epoch.
        assert_eq!(
            curve(&d.path().join("local").join(name)),
            curve(&d.path().join("s").join(name)),
            "{name}"
        );
    }
    for t in stopped {
        let dir = d.path().join("s").join(t["dir"].as_str().unwrap());
        let told: Vec<Value> = jsonl(&dir.join("events.jsonl"))
            .into_iter()
            .filter(|e| e["policy"] == "control" && e["kind"] == "decision")
            .collect();
        assert_eq!(told.len(), 1, "{}", t["dir"]);
        assert_eq!(told[0]["decision"]["reason"], "scheduler");
        assert_eq!(told[0]["id"], "sweep");
        assert_eq!(attempts(t).last().unwrap()["state"], "COMPLETED");
    }
}

#[test]
fn pbt_on_slurm_exploits_land_at_the_epoch_they_were_decided() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let args = [
        "-q",
        "--out",
        "s",
        "--launcher",
        "slurm",
        "--epochs",
        "4",
        "--grid",
        "lr=0.01,0.05,0.2,0.4",
        "--jobs",
        "4",
        "--scheduler",
        "sweep/pbt",
        "--scheduler-param",
        "perturbation_interval=1",
        "--policy",
        "stop/terminate_on_nan",
    ];
    let (code, err) = finish(spawn(d.path(), &args, 5));
    assert_eq!(code, Some(0), "{err}");
    let exploits: Vec<Value> = jsonl(&d.path().join("s/events.jsonl"))
        .into_iter()
        .filter(|e| e["kind"] == "exploit")
        .collect();
    assert!(!exploits.is_empty(), "PBT exploited nothing");
    for e in &exploits {
        let run = d.path().join("s").join(e["trial"].as_str().unwrap());
        let events = jsonl(&run.join("events.jsonl"));
        // Its report of epoch N (counting from 1) answered at that epoch's end: the
        // rollback to the copied checkpoint, then that epoch's own checkpoint.
        let at = e["epoch"].as_u64().unwrap() - 1;
        let rolled = events.iter().position(|x| {
            x["kind"] == "rollback"
                && x["epoch"] == at
                && x["path"] == format!("checkpoints/{}", e["checkpoint"].as_str().unwrap())
        });
        let rolled = rolled.unwrap_or_else(|| panic!("no rollback for {e} in {events:?}"));
        if at + 1 < 4 {
            assert!(
                events[rolled..]
                    .iter()
                    .any(|x| x["kind"] == "checkpoint"
                        && x["path"] == format!("checkpoints/epoch-{at}")),
                "the exploit is not in epoch {at}'s checkpoint"
            );
        }
    }
    // Every epoch whole: a decision waits for the epoch's end.
    for t in ["lr-0.01", "lr-0.05", "lr-0.2", "lr-0.4"] {
        let lines = curve(&d.path().join("s").join(t));
        assert_eq!(lines.len(), 4, "{t}");
        let per = lines[0]["step"].as_u64().unwrap();
        for (k, l) in lines.iter().enumerate() {
            assert_eq!(
                l["step"].as_u64().unwrap(),
                per * (k as u64 + 1),
                "{t}: {l}"
            );
        }
    }
}

/// A sweep of x1 and x2 over 3 epochs, slowed, the fault put to `act` once x2 has
/// trained an epoch; each trial's epochs equal to an uninterrupted sweep's.
fn interrupted(act: impl FnOnce(&str)) -> Value {
    let d = tempfile::tempdir().unwrap();
    let common = ["--epochs", "3", "--multipliers", "1,2", "--jobs", "2"];
    sweep(d.path(), "plain", &common);
    let mut args = vec!["-q", "--out", "s", "--launcher", "slurm"];
    args.extend(common);
    // Slow enough that the fault lands mid-trial on a loaded machine.
    let mut c = spawn(d.path(), &args, 40);
    act(&task_after_an_epoch(&mut c, &d.path().join("s"), "x2"));
    let (code, err) = finish(c);
    assert_eq!(code, Some(0), "{err}");
    for name in ["x1", "x2"] {
        assert_eq!(
            curve(&d.path().join("plain").join(name)),
            curve(&d.path().join("s").join(name)),
            "{name}'s epochs differ from an uninterrupted trial's"
        );
    }
    let s = json_file(&d.path().join("s/sweep.json"));
    // It resumed from the step checkpoint the signal wrote.
    let events = jsonl(&d.path().join("s/x2/events.jsonl"));
    assert!(
        events.iter().any(|e| e["kind"] == "resume"),
        "x2 did not resume: {events:?}"
    );
    s
}

#[test]
fn a_cancelled_task_is_resubmitted_and_its_trial_resumes_to_the_same_numbers() {
    let Some(_c) = cluster() else { return };
    let s = interrupted(|job| {
        assert!(Command::new("scancel").arg(job).status().unwrap().success());
    });
    let a = attempts(trial(&s, "x2"));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0]["state"], "CANCELLED");
    assert_eq!(a[0]["outcome"], "interrupted");
    assert_eq!(a[1]["state"], "COMPLETED");
    assert_ne!(a[0]["job"], a[1]["job"], "a new task");
    assert!(a[1]["job"].as_str().unwrap().ends_with("_1"));
}

#[test]
fn a_signalled_task_checkpoints_requeues_itself_and_resumes() {
    let Some(_c) = cluster() else { return };
    // Slurm's warning before a time limit, to the batch shell as --signal=B: sends it.
    let s = interrupted(|job| {
        let ok = Command::new("scancel")
            .args(["--signal=USR1", "--batch", job])
            .status()
            .unwrap();
        assert!(ok.success());
    });
    let a = attempts(trial(&s, "x2"));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0]["state"], "REQUEUED");
    assert_eq!(a[0]["outcome"], "interrupted");
    assert_eq!(a[1]["state"], "COMPLETED");
    assert_eq!(a[0]["job"], a[1]["job"], "the same task, requeued");
    assert_eq!(a[1]["restart"], 1);
}

#[test]
fn a_task_requeued_by_scontrol_resumes_its_trial() {
    let Some(_c) = cluster() else { return };
    let s = interrupted(|job| {
        let ok = Command::new("scontrol")
            .args(["requeue", job])
            .status()
            .unwrap();
        assert!(ok.success());
    });
    let a = attempts(trial(&s, "x2"));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0]["state"], "REQUEUED");
    assert_eq!(a[1]["restart"], 1);
}

#[test]
fn a_killed_coordinator_resumes_without_rerunning_or_losing_a_trial() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let common = ["--epochs", "3", "--multipliers", "1,2,4", "--jobs", "2"];
    sweep(d.path(), "plain", &common);
    let mut args = vec!["-q", "--out", "s", "--launcher", "slurm"];
    args.extend(common);
    let mut c = spawn(d.path(), &args, 20);
    task_after_an_epoch(&mut c, &d.path().join("s"), "x2");
    c.0.kill().unwrap();
    c.0.wait().unwrap();
    let s = json_file(&d.path().join("s/sweep.json"));
    assert_eq!(s["state"], "running");
    let o = rudder(d.path(), &["sweep", "-q", "--resume", "s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = json_file(&d.path().join("s/sweep.json"));
    assert_eq!(s["state"], "done");
    for name in ["x1", "x2", "x4"] {
        let t = trial(&s, name);
        assert_eq!(t["status"], "done");
        assert_eq!(attempts(t).len(), 1, "{name} ran again: {t}");
        assert_eq!(
            curve(&d.path().join("plain").join(name)),
            curve(&d.path().join("s").join(name)),
            "{name}"
        );
    }
}

#[test]
fn a_trial_that_always_fails_is_failed_after_its_retries_and_the_sweep_ends() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    // Task 1 (x2) dies at its fifth step, every time, as on a node that crashes.
    let o = Command::new(bin())
        .args([
            "sweep",
            "-q",
            "--out",
            "s",
            "--launcher",
            "slurm",
            "--epochs",
            "2",
        ])
        .args([
            "--multipliers",
            "1,2,4",
            "--jobs",
            "2",
            "--max-retries",
            "2",
        ])
        .current_dir(d.path())
        .env_remove("RUDDER_DATA")
        .env("RUDDER_FAULT", "die:5")
        .env("RUDDER_FAULT_TASK", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("x2"), "{}", stderr(&o));
    let s = json_file(&d.path().join("s/sweep.json"));
    let t = trial(&s, "x2");
    assert_eq!(t["status"], "failed", "{t}");
    let a = attempts(t);
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(
        a.iter().all(|a| a["state"] == "FAILED" && a["exit"] == 137),
        "{a:?}"
    );
    assert!(
        t["slurm"]["failed"]
            .as_str()
            .unwrap()
            .contains("3 attempts"),
        "{t}"
    );
    assert_eq!(trial(&s, "x1")["status"], "done");
    assert_eq!(trial(&s, "x4")["status"], "done");
    assert_ne!(
        s["trials"][s["winner"].as_u64().unwrap() as usize]["dir"],
        "x2"
    );
}

#[test]
fn a_sweep_folder_the_tasks_cannot_see_is_a_clear_exit_2() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    // The task is held while the marker is made another sweep's, as a node whose
    // folder of that name is not this one would see it.
    let c = Reaped(
        Command::new(bin())
            .args([
                "sweep",
                "-q",
                "--out",
                "s",
                "--launcher",
                "slurm",
                "--epochs",
                "1",
            ])
            .args(["--multipliers", "1", "--slurm-arg=--hold"])
            .current_dir(d.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let file = d.path().join("s/sweep.json");
    let mut job = String::new();
    let mut c = c;
    wait_for("the submission", || {
        if let Some(s) = c.0.try_wait().unwrap() {
            panic!("the sweep ended first ({s})");
        }
        job = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|s| {
                s["trials"][0]["slurm"]["attempts"][0]["job"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default();
        !job.is_empty()
    });
    std::fs::write(d.path().join("s/slurm/marker"), "another sweep's\n").unwrap();
    assert!(
        Command::new("scontrol")
            .args(["release", &job])
            .status()
            .unwrap()
            .success()
    );
    let (code, err) = finish(c);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("file system every node shares"), "{err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn a_detached_sweep_is_followed_by_resume() {
    let Some(_c) = cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let args = [
        "-q",
        "--out",
        "s",
        "--launcher",
        "slurm",
        "--epochs",
        "2",
        "--multipliers",
        "1,2",
        "--detach",
    ];
    let o = rudder(d.path(), &[&["sweep"][..], &args].concat());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = json_file(&d.path().join("s/sweep.json"));
    assert_eq!(s["state"], "running");
    assert!(attempts(trial(&s, "x1"))[0]["job"].is_string());
    let o = rudder(d.path(), &["sweep", "-q", "--resume", "s"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = json_file(&d.path().join("s/sweep.json"));
    assert_eq!(s["state"], "done");
    for name in ["x1", "x2"] {
        assert_eq!(trial(&s, name)["status"], "done");
        assert_eq!(attempts(trial(&s, name)).len(), 1);
    }
}

#[test]
fn dry_run_prints_the_batch_script_and_submits_nothing() {
    let d = tempfile::tempdir().unwrap();
    let o = rudder(
        d.path(),
        &[
            "sweep",
            "--out",
            "s",
            "--launcher",
            "slurm",
            "--multipliers",
            "1,2,4",
            "--jobs",
            "2",
            "--dry-run",
            "--slurm-arg",
            "--partition=gpu",
            "--slurm-arg=--time=2:00:00",
            "--slurm-signal",
            "USR1@300",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    for line in [
        "#SBATCH --array=0-2%2",
        "#SBATCH --signal=B:USR1@300",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=2:00:00",
        "sweep-task \"$sweep\" --task \"$SLURM_ARRAY_TASK_ID\"",
        "trap 'forward USR1' USR1",
        "scontrol requeue",
    ] {
        assert!(script.contains(line), "no {line:?} in\n{script}");
    }
    let out = d.path().join("s").display().to_string();
    assert!(
        script.contains(&format!("#SBATCH --output={out}/slurm/logs/%A_%a.out")),
        "{script}"
    );
    assert!(!d.path().join("s").exists(), "a dry run writes nothing");
}

#[test]
fn slurm_options_without_their_launcher_or_sbatch_are_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let o = rudder(d.path(), &["sweep", "--out", "s", "--detach"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--detach: is for --launcher slurm"),
        "{}",
        stderr(&o)
    );
    let o = rudder(
        d.path(),
        &[
            "sweep",
            "--out",
            "s",
            "--launcher",
            "slurm",
            "--slurm-signal",
            "KILL@5",
            "--dry-run",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--slurm-signal"), "{}", stderr(&o));
    // No sbatch on PATH.
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["sweep", "--out", "s", "--launcher", "slurm"])
        .current_dir(d.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--launcher slurm: sbatch is not on PATH"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!d.path().join("s").exists());
    // The config file's key, refused by rudder train.
    std::fs::write(
        d.path().join("c.json"),
        r#"{"launcher": "slurm", "epochs": 1}"#,
    )
    .unwrap();
    let o = rudder(d.path(), &["train", "--config", "c.json", "--out", "t"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("launcher"), "{}", stderr(&o));
    let o = Command::new(bin())
        .args(["sweep", "--config", "c.json", "--out", "s"])
        .current_dir(d.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("sbatch is not on PATH"),
        "{}",
        stderr(&o)
    );
}
