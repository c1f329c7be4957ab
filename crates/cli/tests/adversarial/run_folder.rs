//! The run folder loses nothing (the book's Command line, Run folder and Limits pages:
//! docs/src/reference/command-line.md, run-folder.md and limits.md): `--resume` with
//! options continues as asked, a kill at any point of a resume leaves the run
//! resumable, one process at a time holds a run, `--out` never takes a folder with
//! files in it, damaged checkpoints are found before anything is cut, a kill while
//! pruning leaves no half checkpoint, a closed stderr or stdout never stops a run, and
//! Ctrl-C ends a run with a checkpoint and the command that continues it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{bin, jsonl, rudder, write};

/// `metrics.jsonl` without the fields that measure time (and `epochs`, the plan at
/// the time, which a resume that extends the run changes for the epochs before it).
fn numbers(run: &Path) -> Vec<Value> {
    jsonl(&run.join("metrics.jsonl"))
        .into_iter()
        .map(|mut r| {
            let m = r.as_object_mut().unwrap();
            for k in ["epoch_time_s", "samples_per_s", "epochs"] {
                m.remove(k);
            }
            r
        })
        .collect()
}

fn train(d: &Path, out: &str, extra: &[&str]) {
    let mut args = vec!["train", "-q", "--watch", "off", "--out", out];
    args.extend(extra);
    rudder(d, &args).ok(out);
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Spawns `rudder ARGS` in `d` with `env`, stderr piped.
fn spawn(d: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rudder starts")
}

/// Reads the child's stderr until a line contains `needle`; returns the rest of it.
fn read_until(child: &mut Child, needle: &str) -> BufReader<std::process::ChildStderr> {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("never saw {needle:?}: {seen:?}");
        }
        if line.contains(needle) {
            return err;
        }
        seen.push(line);
    }
}

fn wait(child: &mut Child) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "no exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn resume_options_take_over_from_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let common = ["--policy", "lr/constant", "--seed", "3"];
    // The plan, uninterrupted.
    train(d, "whole", &[&common[..], &["--epochs", "8"]].concat());
    // 5 epochs, finished; then the same run extended to 8.
    train(d, "r", &[&common[..], &["--epochs", "5"]].concat());
    let ext = rudder(d, &["train", "-q", "--resume", "r", "--epochs", "8"]);
    ext.ok("extend");
    assert_eq!(numbers(&d.join("r")), numbers(&d.join("whole")));
    let m = jsonl(&d.join("r/metrics.jsonl"));
    assert_eq!(m.last().unwrap()["epochs"], 8);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r/config.json")).unwrap()).unwrap();
    assert_eq!(config["epochs"], 8, "config.json describes what runs");
    let resumes = config["resumes"].as_array().unwrap();
    assert_eq!(resumes.len(), 1);
    assert_eq!(resumes[0]["options"]["epochs"], 8);
    assert_eq!(resumes[0]["step"], 5 * 26);
    let ev = jsonl(&d.join("r/events.jsonl"));
    let resume = ev.iter().find(|e| e["kind"] == "resume").unwrap();
    assert_eq!(resume["options"]["epochs"], 8, "{resume}");
    assert!(
        resume["message"]
            .as_str()
            .unwrap()
            .contains("with --epochs 8")
    );

    // Shortened: a resume with fewer epochs than are done is refused (exit 2) and
    // changes nothing.
    rudder(d, &["train", "-q", "--resume", "r", "--epochs", "6"]).refused(
        "shorten",
        &["the run finished all 8 epochs", "--epochs N (N > 8)"],
    );
    assert_eq!(jsonl(&d.join("r/metrics.jsonl")).len(), 8);
    // A new LR: the base and current LR from the resume on (lr/constant's factor
    // applies to the base after its warm period: 0.05 x 1).
    rudder(
        d,
        &[
            "train", "-q", "--resume", "r", "--epochs", "10", "--lr", "0.05",
        ],
    )
    .ok("lr");
    let m = jsonl(&d.join("r/metrics.jsonl"));
    assert_eq!(m.len(), 10);
    assert_eq!(
        (m[8]["lr"].as_f64(), m[9]["lr"].as_f64()),
        (Some(0.05), Some(0.05))
    );
    // A new batch size and accumulation.
    rudder(
        d,
        &[
            "train",
            "-q",
            "--resume",
            "r",
            "--epochs",
            "11",
            "--batch-size",
            "32",
            "--accumulation",
            "2",
        ],
    )
    .ok("batch");
    let last = jsonl(&d.join("r/metrics.jsonl")).pop().unwrap();
    assert_eq!(
        (last["batch_size"].as_u64(), last["accumulation"].as_u64()),
        (Some(32), Some(2))
    );
    // What would change the model or the data is refused.
    for (flag, value) in [
        ("--model", "cnn"),
        ("--hidden", "8"),
        ("--data", "mnist"),
        ("--seed", "4"),
        ("--val-fraction", "0.2"),
        ("--optimizer", "adamw"),
    ] {
        rudder(d, &["train", "--resume", "r", flag, value])
            .refused(flag, &[&format!("{flag}: a resumed run keeps its")]);
    }
}

/// A tiny deterministic stream for the kill times.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[test]
fn sixty_kills_at_random_points_of_resumes_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let plan = [
        "--epochs",
        "40",
        "--batch-size",
        "16",
        "--policy",
        "lr/constant",
    ];
    train(d, "whole", &plan);
    train(
        d,
        "r",
        &[
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--policy",
            "lr/constant",
        ],
    );
    // Each resume is killed after 0-250 ms: while it takes the lock, reads and checks
    // the checkpoints, cuts the logs, rewrites config.json, or trains.
    let mut rng = Lcg(20261201);
    for i in 0..60 {
        let mut c = spawn(d, &["train", "-q", "--resume", "r", "--epochs", "40"], &[]);
        std::thread::sleep(Duration::from_millis(rng.next(250)));
        let _ = c.kill();
        let _ = c.wait();
        let config = std::fs::read_to_string(d.join("r/config.json")).unwrap();
        assert!(
            serde_json::from_str::<Value>(&config).is_ok(),
            "kill {i}: config.json is {} bytes and not JSON",
            config.len()
        );
    }
    // Whether any killed resume lived to record `--epochs 40`, or to finish them,
    // depends on the machine's speed: the last one says it again, or that the run
    // is finished.
    let last = rudder(d, &["train", "-q", "--resume", "r", "--epochs", "40"]);
    if last.code != Some(0) {
        last.refused("final resume", &["the run finished all 40 epochs"]);
    }
    assert_eq!(numbers(&d.join("r")), numbers(&d.join("whole")));
}

#[test]
fn one_process_at_a_time_holds_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "r", &["--epochs", "1"]);
    let mut a = spawn(
        d,
        &[
            "train",
            "--resume",
            "r",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
        ],
        &[("RUDDER_FAULT", "step:300")],
    );
    read_until(&mut a, "fault point step:300 reached");
    let pid = a.id().to_string();
    let b = rudder(d, &["train", "--resume", "r", "--epochs", "3"]);
    b.refused(
        "second resume",
        &[&format!(
            "--resume r: another rudder (pid {pid}) is using this run folder"
        )],
    );
    rudder(d, &["train", "--out", "r"]).refused("new run", &["--out r: not empty"]);
    a.kill().unwrap();
    a.wait().unwrap();
    // The lock died with its holder.
    rudder(d, &["train", "-q", "--resume", "r", "--epochs", "2"]).ok("after");
    let m = jsonl(&d.join("r/metrics.jsonl"));
    let epochs: Vec<u64> = m.iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [0, 1]);
}

#[test]
fn out_takes_only_an_absent_or_empty_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "config.json", "{\"mine\": true}\n");
    write(d, "report.html", "<p>my notes</p>\n");
    rudder(d, &["train", "--out", "."]).refused(
        "--out .",
        &["--out .: not empty (holds config.json, report.html)"],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("config.json")).unwrap(),
        "{\"mine\": true}\n"
    );
    std::fs::create_dir(d.join("empty")).unwrap();
    train(d, "empty", &["--epochs", "1"]);
}

/// Trains `r` for 4 epochs (checkpoints epoch-1..3 and best) and returns its
/// `metrics.jsonl` bytes.
fn four_epochs(d: &Path) -> Vec<u8> {
    train(d, "r", &["--epochs", "4", "--policy", "lr/constant"]);
    std::fs::read(d.join("r/metrics.jsonl")).unwrap()
}

#[test]
fn damaged_checkpoints_are_found_before_anything_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let metrics = four_epochs(d);
    let ck = d.join("r/checkpoints");
    // Every state.json gone: refused, naming them; the logs untouched.
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&ck)
        .unwrap()
        .map(|e| e.unwrap().path().join("state.json"))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            std::fs::remove_file(&p).unwrap();
            (p, b)
        })
        .collect();
    rudder(d, &["train", "--resume", "r", "--epochs", "6"]).refused(
        "no state.json",
        &[
            "no checkpoint in r/checkpoints can be resumed",
            "epoch-3/state.json: missing",
        ],
    );
    assert_eq!(std::fs::read(d.join("r/metrics.jsonl")).unwrap(), metrics);
    for (p, b) in saved {
        std::fs::write(p, b).unwrap();
    }
    // The newest state.json edited to cut metrics.jsonl mid-line, the next one's
    // weights overwritten: both skipped, the resume goes on from the one before.
    let edit = ck.join("epoch-3/state.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&edit).unwrap()).unwrap();
    state["logs"]["metrics"] = (state["logs"]["metrics"].as_u64().unwrap() - 7).into();
    std::fs::write(&edit, state.to_string()).unwrap();
    for name in ["epoch-2", "best"] {
        let model = ck.join(name).join("model.safetensors");
        let mut b = std::fs::read(&model).unwrap();
        let n = b.len() - 9;
        b[n] = b[n].wrapping_add(1);
        std::fs::write(&model, b).unwrap();
    }
    let r = rudder(d, &["train", "-q", "--resume", "r", "--epochs", "6"]);
    r.ok("fallback");
    let ev = jsonl(&d.join("r/events.jsonl"));
    let resume = ev.iter().find(|e| e["kind"] == "resume").unwrap();
    assert_eq!(resume["path"], "checkpoints/epoch-1", "{resume}");
    let msg = resume["message"].as_str().unwrap();
    assert!(
        msg.contains("do not end a line") && msg.contains("SHA-256"),
        "{msg}"
    );
    let m = jsonl(&d.join("r/metrics.jsonl"));
    let epochs: Vec<u64> = m.iter().map(|r| r["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_kill_while_pruning_leaves_no_half_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = spawn(
        d,
        &[
            "train",
            "-q",
            "--epochs",
            "4",
            "--keep-last",
            "1",
            "--watch",
            "off",
            "--out",
            "r",
        ],
        &[("RUDDER_FAULT", "checkpoint:prune-epoch-0")],
    );
    read_until(&mut c, "fault point checkpoint:prune-epoch-0 reached");
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(d.join("r/checkpoints/.trash-epoch-0").exists());
    rudder(d, &["train", "-q", "--resume", "r"]).ok("resume");
    let names: Vec<String> = std::fs::read_dir(d.join("r/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
    for n in &names {
        assert!(
            d.join("r/checkpoints").join(n).join("state.json").is_file(),
            "{n}"
        );
    }
    assert_eq!(jsonl(&d.join("r/metrics.jsonl")).len(), 4);
}

#[test]
fn a_closed_stderr_or_stdout_never_stops_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = Command::new(bin())
        .args(["train", "--epochs", "3", "--out", "r"])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both pipes closed before rudder writes a byte.
    drop(c.stdout.take());
    drop(c.stderr.take());
    let status = wait(&mut c);
    assert_eq!(status.code(), Some(0));
    assert_eq!(jsonl(&d.join("r/metrics.jsonl")).len(), 3);
    let ev = jsonl(&d.join("r/events.jsonl"));
    assert_eq!(ev.last().unwrap()["kind"], "run_end");
}

#[test]
fn ctrl_c_checkpoints_the_step_and_says_how_to_go_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let args = [
        "train",
        "--epochs",
        "3",
        "--watch",
        "off",
        "--policy",
        "lr/constant",
        "--out",
        "r",
    ];
    train(d, "whole", &["--epochs", "3", "--policy", "lr/constant"]);
    // Halted after step 40 (mid-epoch 2 of 26-step epochs), then Ctrl-C.
    let mut c = spawn(d, &args, &[("RUDDER_FAULT", "step:40")]);
    let mut err = read_until(&mut c, "fault point step:40 reached");
    signal(&c, libc::SIGINT);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(wait(&mut c).code(), Some(130));
    assert_eq!(
        rest.lines().last().unwrap(),
        "interrupted at epoch 2 step 40; continue with: rudder train --resume r"
    );
    let ev = jsonl(&d.join("r/events.jsonl"));
    let end = ev.last().unwrap();
    assert_eq!(
        (&end["kind"], &end["reason"], &end["step"]),
        (&"run_end".into(), &"interrupted".into(), &40.into())
    );
    assert!(d.join("r/checkpoints/step-40/state.json").is_file());
    rudder(d, &["train", "-q", "--resume", "r"]).ok("continue");
    assert_eq!(numbers(&d.join("r")), numbers(&d.join("whole")));

    // A second Ctrl-C exits at once (and the run is still resumable).
    let mut c = spawn(
        d,
        &["train", "--epochs", "3", "--out", "r2"],
        &[("RUDDER_FAULT", "step:40")],
    );
    read_until(&mut c, "fault point step:40 reached");
    signal(&c, libc::SIGINT);
    signal(&c, libc::SIGINT);
    assert_eq!(wait(&mut c).code(), Some(130));
    rudder(d, &["train", "-q", "--resume", "r2"]).ok("after two");
    assert_eq!(jsonl(&d.join("r2/metrics.jsonl")).len(), 3);
}

#[test]
fn lr_find_and_sweep_stop_at_the_first_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = spawn(
        d,
        &[
            "lr-find",
            "--steps",
            "100000",
            "--hidden",
            "512,512",
            "--batch-size",
            "8",
            "--start-lr",
            "1e-9",
            "--end-lr",
            "1e-8",
            "--out",
            "lf",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_millis(800));
    signal(&c, libc::SIGINT);
    assert_eq!(wait(&mut c).code(), Some(130));
    // A sweep: the trial running stops with a checkpoint, no other starts.
    let mut c = spawn(
        d,
        &[
            "sweep",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
            "--policy",
            "lr/constant",
            "--multipliers",
            "1,2,4",
            "--out",
            "sw",
        ],
        &[],
    );
    std::thread::sleep(Duration::from_millis(1500));
    signal(&c, libc::SIGINT);
    assert_eq!(wait(&mut c).code(), Some(130));
    let trials: Vec<_> = std::fs::read_dir(d.join("sw"))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with('x').then_some(n)
        })
        .collect();
    assert_eq!(trials, ["x1"], "no trial starts after Ctrl-C");
}

#[test]
fn sighup_is_an_interrupt_too() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut c = spawn(
        d,
        &["train", "--epochs", "3", "--out", "r"],
        &[("RUDDER_FAULT", "step:40")],
    );
    let _err = read_until(&mut c, "fault point step:40 reached");
    signal(&c, libc::SIGHUP);
    assert_eq!(wait(&mut c).code(), Some(130));
    assert!(d.join("r/checkpoints/step-40/state.json").is_file());
}

#[test]
fn a_resume_that_is_refused_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows = |n: usize| -> String {
        (0..n)
            .map(|i| format!("{},{},{}\n", i % 7, (i * 3) % 5, i % 2))
            .collect()
    };
    write(d, "d.csv", &rows(3000));
    train(d, "r", &["--epochs", "2", "--data", "d.csv"]);
    // The data shrinks, in a run from before data fingerprints (none in its
    // config.json): the checkpoint's position no longer fits.
    write(d, "d.csv", &rows(100));
    let p = d.join("r/config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    c.as_object_mut().unwrap().remove("data_sha256");
    std::fs::write(&p, serde_json::to_string_pretty(&c).unwrap()).unwrap();
    let before: Vec<Vec<u8>> = ["events.jsonl", "metrics.jsonl", "config.json"]
        .iter()
        .map(|f| std::fs::read(d.join("r").join(f)).unwrap())
        .collect();
    rudder(d, &["train", "--resume", "r", "--epochs", "3"])
        .refused("shrunk", &["does not fit the 90 training examples"]);
    let after: Vec<Vec<u8>> = ["events.jsonl", "metrics.jsonl", "config.json"]
        .iter()
        .map(|f| std::fs::read(d.join("r").join(f)).unwrap())
        .collect();
    assert!(before == after, "a refused resume changed the run folder");
}

#[test]
fn the_data_of_a_run_is_checked_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows = |shift: usize| -> String {
        (0..200)
            .map(|i| format!("{},{},{}\n", i % 7, (i * 3) % 5, (i + shift) % 2))
            .collect()
    };
    write(d, "a/d.csv", &rows(0));
    write(d, "b/d.csv", &rows(1));
    train(d, "r", &["--epochs", "1", "--data", "a/d.csv"]);
    // Same file name, other labels: refused.
    std::fs::copy(d.join("b/d.csv"), d.join("a/d.csv")).unwrap();
    rudder(d, &["train", "--resume", "r", "--epochs", "2"]).refused(
        "swapped data",
        &["is not the data this run trained on (its SHA-256 differs)"],
    );
}

#[test]
fn the_lock_is_the_folders_and_its_file_is_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "victim.txt", "precious\n");
    // A symlinked and a hard-linked .lock in an otherwise empty folder.
    std::fs::create_dir(d.join("s")).unwrap();
    std::os::unix::fs::symlink(d.join("victim.txt"), d.join("s/.lock")).unwrap();
    train(d, "s", &["--epochs", "1"]);
    std::fs::create_dir(d.join("h")).unwrap();
    std::fs::hard_link(d.join("victim.txt"), d.join("h/.lock")).unwrap();
    train(d, "h", &["--epochs", "1"]);
    assert_eq!(
        std::fs::read_to_string(d.join("victim.txt")).unwrap(),
        "precious\n"
    );
    // Deleting .lock does not let a second process in.
    let mut a = spawn(
        d,
        &[
            "train",
            "--resume",
            "s",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
        ],
        &[("RUDDER_FAULT", "step:300")],
    );
    let _err = read_until(&mut a, "fault point step:300 reached");
    std::fs::remove_file(d.join("s/.lock")).unwrap();
    rudder(d, &["train", "--resume", "s", "--epochs", "3"])
        .refused("lock file deleted", &["is using this run folder"]);
    // A huge .lock file is not read whole for the message.
    let big = std::fs::File::create(d.join("s/.lock")).unwrap();
    big.set_len(3 << 30).unwrap();
    let r = rudder(d, &["train", "--resume", "s", "--epochs", "3"]);
    r.refused(
        "huge lock file",
        &["another process is using this run folder"],
    );
    assert!(r.max_rss_kb < 128 << 10, "peak RSS {} KiB", r.max_rss_kb);
    a.kill().unwrap();
    a.wait().unwrap();
}

#[test]
fn forged_and_outsized_checkpoints_are_skipped_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "r", &["--epochs", "3", "--policy", "lr/constant"]);
    let ck = d.join("r/checkpoints");
    // The newest weights grown to 4 GiB (sparse): refused by their size.
    std::fs::OpenOptions::new()
        .write(true)
        .open(ck.join("epoch-2/model.safetensors"))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    // best: a step no run reaches.
    let p = ck.join("best/state.json");
    let mut s: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    s["step"] = serde_json::json!(u64::MAX);
    std::fs::write(&p, s.to_string()).unwrap();
    let r = rudder(d, &["train", "-q", "--resume", "r", "--epochs", "4"]);
    r.ok("fallback");
    assert!(r.max_rss_kb < 512 << 10, "peak RSS {} KiB", r.max_rss_kb);
    let ev = jsonl(&d.join("r/events.jsonl"));
    let resume = ev.iter().find(|e| e["kind"] == "resume").unwrap();
    assert_eq!(resume["path"], "checkpoints/epoch-1", "{resume}");
    let msg = resume["message"].as_str().unwrap();
    assert!(
        msg.contains("more than a checkpoint file of rudder's can be")
            && msg.contains("are not a run's"),
        "{msg}"
    );
    assert_eq!(jsonl(&d.join("r/metrics.jsonl")).len(), 4);
}

#[test]
fn a_long_runs_own_config_stays_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train(d, "r", &["--epochs", "1"]);
    // A config.json past 1 MiB (resumes recorded over a long life) still resumes.
    let p = d.join("r/config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    c["resumes"] = serde_json::json!(vec![
        serde_json::json!({"options": {"note": "x".repeat(1000)}});
        1500
    ]);
    std::fs::write(&p, c.to_string()).unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() > 1 << 20);
    rudder(d, &["train", "-q", "--resume", "r", "--epochs", "2"]).ok("big config");
    let c: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(c["resumes"].as_array().unwrap().len(), 1501);
}
