//! The control channel through real `rudder train` processes: `rudder ctl` steering a
//! running run (stop, set, save, rollback, rejections), hostile lines appended to
//! `control.jsonl` by hand, and a resume that does not apply again what its
//! checkpoint had applied (the book's Control page, docs/src/reference/control.md).
//! Waits poll the run folder with a generous deadline; nothing asserts on time.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use super::{bin, stderr};

use super::live::Live;

/// `rudder train` on the embedded digits into `dir/r`, for as long as it is told (a
/// policy that does nothing, so that no early stop ends it first).
fn start(dir: &Path, extra: &[&str]) -> Live {
    fs::write(dir.join("idle.rhai"), "fn on_epoch_end(ctx) { () }\n").unwrap();
    let mut args = vec![
        "-q",
        "--batch-size",
        "8",
        "--policy",
        "idle.rhai",
        "--out",
        "r",
    ];
    args.extend_from_slice(extra);
    Live::start(dir, &args)
}

trait Steer {
    fn control(&self, kind: &str) -> Vec<Value>;
    fn ctl(&self, args: &[&str]) -> Output;
    fn append(&self, bytes: &[u8]);
}

impl Steer for Live {
    /// The events from `control`, of `kind`.
    fn control(&self, kind: &str) -> Vec<Value> {
        self.kinds(kind)
            .into_iter()
            .filter(|e| e["policy"] == "control")
            .collect()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("ctl")
            .arg("r")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("rudder ctl runs")
    }

    /// Appends raw bytes to the run's control.jsonl, as a person or a script would.
    fn append(&self, bytes: &[u8]) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("r/control.jsonl"))
            .unwrap();
        f.write_all(bytes).unwrap();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn ctl_steers_a_running_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = start(tmp.path(), &["--epochs", "100000"]);
    run.wait("the first epoch", |r| !r.metrics().is_empty());

    let o = run.ctl(&["set", "lr=0.0123", "momentum=0.5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("r: lr 0.0123, momentum 0.5 applied at step "),
        "{}",
        stdout(&o)
    );
    run.wait("an epoch at the new LR", |r| {
        r.metrics().iter().any(|m| m["lr"].as_f64() == Some(0.0123))
    });
    let d = &run.control("decision")[0];
    assert_eq!(d["hook"], "control");
    assert_eq!(d["line"], 1);
    assert_eq!(d["decision"]["lr"], 0.0123);
    assert!(d["id"].as_str().unwrap().starts_with("ctl-"), "{d}");

    let o = run.ctl(&["save", "warm"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("; checkpoints/warm"), "{}", stdout(&o));
    run.wait("checkpoints/warm", |r| {
        r.dir.join("r/checkpoints/warm/state.json").is_file()
    });

    let o = run.ctl(&["rollback", "last"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("rolled back to checkpoints/"),
        "{}",
        stdout(&o)
    );
    let rb = run
        .events()
        .into_iter()
        .find(|e| e["kind"] == "rollback")
        .expect("a rollback event");
    assert_eq!(rb["hook"], "control");

    // Rejected by the run (its value against its state): exit 2, the reason.
    let o = run.ctl(&["set", "batch_size=0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("rejected at step") && stderr(&o).contains("batch_size: must be 1..="),
        "{}",
        stderr(&o)
    );
    assert_eq!(run.control("invalid_decision").len(), 1);
    // Rejected before it is written (a key no decision has): nothing appended.
    let before = fs::read(run.dir.join("r/control.jsonl")).unwrap();
    let o = run.ctl(&["set", "lr_=1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did you mean lr?"), "{}", stderr(&o));
    assert_eq!(fs::read(run.dir.join("r/control.jsonl")).unwrap(), before);

    // Writers at once (a second process, a third...): each line whole, each answered.
    let writers: Vec<Child> = (0..6)
        .map(|i| {
            Command::new(bin())
                .args(["ctl", "r", "set", &format!("metrics={{\"w\": {i}}}")])
                .current_dir(&run.dir)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for w in writers {
        let o = w.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    }
    let mut seen: Vec<Value> = run
        .control("decision")
        .iter()
        .filter_map(|e| e["decision"]["metrics"].get("w").cloned())
        .collect();
    seen.sort_by_key(|v| v.as_f64().map(|x| x as i64));
    assert_eq!(
        seen,
        (0..6).map(|i| Value::from(i as f64)).collect::<Vec<_>>()
    );

    let o = run.ctl(&["stop", "enough for today"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("stop (enough for today) applied"),
        "{}",
        stdout(&o)
    );
    let mut run = run;
    let status = run.child.0.wait().unwrap();
    assert!(status.success());
    let end = run
        .events()
        .into_iter()
        .find(|e| e["kind"] == "run_end")
        .unwrap();
    assert_eq!(end["reason"], "enough for today");

    // Nobody reads the channel of a run that ended: refused, nothing written.
    let before = fs::read(run.dir.join("r/control.jsonl")).unwrap();
    let o = run.ctl(&["stop"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no rudder is training this run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(run.dir.join("r/control.jsonl")).unwrap(), before);
}

#[test]
fn hostile_lines_are_invalid_decisions_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    // Polled by its length, not by native events.
    let run = start(tmp.path(), &["--epochs", "100000", "--watch", "poll"]);
    run.wait("the first epoch", |r| !r.metrics().is_empty());
    // A line torn mid-write is not read until its newline comes.
    run.append(b"{\"lr\": 0.");
    run.append(b"not json\n");
    run.append(b"{\"lr\": 0.02, \"stopp\": true}\n");
    run.append(b"[1, 2]\n");
    run.append(b"{\"lr\": \"fast\"}\n");
    // 3 MiB with no newline, then its end.
    for _ in 0..3 {
        run.append(&vec![b'x'; 1 << 20]);
    }
    run.append(b"\n{\"lr\": -1}\n\xff\n{\"save\": \"best\", \"id\": 7}\n");
    run.wait("eight rejected lines", |r| {
        r.control("invalid_decision").len() >= 8
    });
    let got: Vec<(u64, String)> = run
        .control("invalid_decision")
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        (1, "line"),
        (2, "stopp"),
        (3, "decision"),
        (4, "lr"),
        (5, "line"),
        (6, "lr"),
        (7, "line"),
        (8, "save"),
    ];
    let want: Vec<(u64, String)> = want.iter().map(|(n, k)| (*n, k.to_string())).collect();
    assert_eq!(got, want);
    let msgs: Vec<String> = run
        .control("invalid_decision")
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(msgs[1].contains("did you mean stop?"), "{msgs:?}");
    assert!(msgs[4].contains("longer than 64 KiB"), "{msgs:?}");
    assert_eq!(run.control("invalid_decision")[7]["id"], 7);
    // The run went on training, and takes a good line after them all.
    let epochs = run.metrics().len();
    run.wait("another epoch", |r| r.metrics().len() > epochs);
    run.append(b"{\"lr\": 0.0321}\n{\"stop\": true}\n");
    let mut run = run;
    assert!(run.child.0.wait().unwrap().success());
    let ok = run.control("decision");
    assert_eq!(ok.len(), 2, "{ok:?}");
    assert_eq!(
        (ok[0]["line"].as_u64(), ok[1]["line"].as_u64()),
        (Some(9), Some(10))
    );
    let end = run
        .events()
        .into_iter()
        .find(|e| e["kind"] == "run_end")
        .unwrap();
    assert_eq!(end["reason"], "stopped through control.jsonl");
}

#[test]
fn a_resume_does_not_apply_again_what_the_run_had_read() {
    let tmp = tempfile::tempdir().unwrap();
    // With --watch off the channel is read at each epoch's start.
    let mut run = start(tmp.path(), &["--epochs", "100000", "--watch", "off"]);
    run.wait("the first epoch", |r| !r.metrics().is_empty());
    run.append(b"{\"lr\": 0.05, \"log\": \"once\"}\n");
    run.wait("an epoch at lr 0.05, and its checkpoint", |r| {
        r.metrics().iter().any(|m| m["lr"] == 0.05)
    });
    run.append(b"{\"stop\": true, \"reason\": \"pause\"}\n");
    assert!(run.child.0.wait().unwrap().success());
    let end = run
        .events()
        .into_iter()
        .find(|e| e["kind"] == "run_end")
        .unwrap();
    assert_eq!(end["reason"], "pause");
    let stopped_at = run.metrics().len();
    // A line written while nothing trains the run is read by the resumed run; the
    // two the run had read are not applied again (no second stop, no second log).
    run.append(b"{\"log\": \"after the resume\"}\n");
    let extended = (stopped_at + 2).to_string();
    let o = Command::new(bin())
        .args([
            "train", "-q", "--resume", "r", "--epochs", &extended, "--watch", "off",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        run.metrics().len(),
        stopped_at + 2,
        "trained on: not stopped again"
    );
    // Each line applied once: the stop (read at the epoch's end, before its
    // checkpoint, or at the next epoch's start, whose record the resume cuts back)
    // at most once, the logs each once.
    let decisions = run.control("decision");
    assert!(decisions.iter().filter(|e| e["line"] == 2).count() <= 1);
    let lines: Vec<(Value, Value)> = decisions
        .into_iter()
        .filter(|e| e["line"] != 2)
        .map(|e| (e["line"].clone(), e["decision"]["log"].clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (1.into(), "once".into()),
            (3.into(), "after the resume".into())
        ]
    );
    assert_eq!(
        run.metrics().pop().unwrap()["lr"],
        0.05,
        "the LR it was set to"
    );
}

#[test]
fn a_sweeps_trials_are_steered_through_their_own_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("idle.rhai"), "fn on_epoch_end(ctx) { () }\n").unwrap();
    let child = Command::new(bin())
        .args([
            "sweep",
            "-q",
            "--epochs",
            "100000",
            "--batch-size",
            "8",
            "--policy",
            "idle.rhai",
            "--multipliers",
            "1,2",
            "--jobs",
            "2",
            "--out",
            "sw",
        ])
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sweep = super::Reaped(child);
    let t = std::time::Instant::now();
    while !["x1", "x2"]
        .iter()
        .all(|x| d.join(format!("sw/{x}/metrics.jsonl")).is_file())
    {
        assert!(t.elapsed().as_secs() < 60, "the trials never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for (trial, reason) in [("sw/x2", "a loser, by hand"), ("sw/x1", "enough")] {
        let o = Command::new(bin())
            .args(["ctl", trial, "stop", reason])
            .current_dir(d)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    assert!(sweep.0.wait().unwrap().success());
    let s: Value =
        serde_json::from_str(&fs::read_to_string(d.join("sw/sweep.json")).unwrap()).unwrap();
    let reasons: Vec<&Value> = s["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["stop_reason"])
        .collect();
    assert_eq!(
        reasons,
        [&Value::from("enough"), &Value::from("a loser, by hand")]
    );
}
