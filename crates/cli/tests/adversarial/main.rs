//! The adversarial corpus: policies, files and processes written to break a run, each
//! thrown at the real binary. Every run must end in one of two ways: exit 0 with the
//! run complete and the fault recorded as an event with its place, or exit 2 with one
//! line naming the fault. Never a panic (101) or an abort (134), never a hang (a run is
//! killed after a generous deadline and the test fails; nothing asserts on speed),
//! never more than 1 GiB of memory, and the run's checkpoints stay resumable.

mod imports;
mod inputs;
mod limits;
mod models;
mod names;
mod output;
mod policy_tests;
mod run_folder;
mod state;
mod surfaces;
mod watcher;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A run is declared hung after this; every run here takes seconds.
const HANG: Duration = Duration::from_secs(120);
/// The most memory any run may take.
const MAX_RSS_KB: i64 = 1 << 20;

/// What a finished `rudder` process did.
pub struct Ran {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// Peak resident memory of the process, in KiB (`wait4`'s `ru_maxrss`).
    pub max_rss_kb: i64,
}

impl Ran {
    /// Asserts what every run must hold: it exited by itself (no signal, no hang), with
    /// 0, 1 or 2 (not a panic's 101), within the memory bound.
    pub fn sane(&self, what: &str) -> &Ran {
        assert!(
            matches!(self.code, Some(0..=2)),
            "{what}: exit {:?}\n{}",
            self.code,
            self.stderr
        );
        assert!(
            self.max_rss_kb < MAX_RSS_KB,
            "{what}: peak RSS {} KiB",
            self.max_rss_kb
        );
        self
    }

    /// Exit 2 with one line on stderr that contains each of `needles`.
    pub fn refused(&self, what: &str, needles: &[&str]) -> &Ran {
        self.sane(what);
        assert_eq!(self.code, Some(2), "{what}: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line, got {}", self.stderr);
        for n in needles {
            assert!(lines[0].contains(n), "{what}: {n:?} not in {}", lines[0]);
        }
        self
    }

    /// Exit 0, on top of [`Ran::sane`].
    pub fn ok(&self, what: &str) -> &Ran {
        self.sane(what);
        assert_eq!(self.code, Some(0), "{what}: {}", self.stderr);
        self
    }
}

/// The binary under test: this build's, or `$RUDDER_BIN` (to run the corpus against
/// another build, an older one say).
pub fn bin() -> PathBuf {
    std::env::var_os("RUDDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rudder")))
}

/// Runs the built `rudder` with `args` in `dir`, measuring its peak memory.
pub fn rudder(dir: &Path, args: &[&str]) -> Ran {
    rudder_env(dir, args, &[])
}

/// [`rudder`] with `env` added to its environment.
// The child is reaped by `wait4`, which also gives its peak memory.
#[allow(clippy::zombie_processes)]
pub fn rudder_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env_remove("RUDDER_DATA")
        .env_remove("RUDDER_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rudder starts");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let (status, rss) = loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child; status and usage are valid pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break (status, usage.ru_maxrss);
        }
        assert!(r == 0, "wait4 failed");
        if start.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rudder {args:?} hung (killed after {HANG:?})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let status = std::process::ExitStatus::from_raw(status);
    if let Some(sig) = status.signal() {
        panic!(
            "rudder {args:?} died of signal {sig}\n{}",
            err.join().unwrap()
        );
    }
    Ran {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        max_rss_kb: rss,
    }
}

/// Reads a JSONL file.
pub fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Writes `text` to `dir/name`, making folders.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

/// A policy that sets LR 0.05 at the start (so the run's LR shows it kept running)
/// and runs `body` at each epoch's end.
pub fn at_epoch_end(body: &str) -> String {
    format!("fn on_train_start(ctx) {{ #{{ lr: 0.05 }} }}\nfn on_epoch_end(ctx) {{\n{body}\n}}\n")
}

/// Trains `epochs` epochs on digits with `policy` into `dir/r`; the run must finish
/// every epoch at the LR its start set, and resume from its checkpoints. Returns
/// its events.
pub fn survives(dir: &Path, what: &str, policy: &str, epochs: usize) -> Vec<Value> {
    let n = epochs.to_string();
    let ran = rudder(
        dir,
        &[
            "train", "-q", "--epochs", &n, "--policy", policy, "--out", "r",
        ],
    );
    ran.ok(what);
    let m = jsonl(&dir.join("r/metrics.jsonl"));
    assert_eq!(m.len(), epochs, "{what}: every epoch ran");
    assert!(m.iter().all(|r| r["lr"] == 0.05), "{what}: {m:?}");
    let events = jsonl(&dir.join("r/events.jsonl"));
    // The checkpoints it left load: the finished run, resumed for one more epoch.
    let more = (epochs + 1).to_string();
    let again = rudder(dir, &["train", "-q", "--resume", "r", "--epochs", &more]);
    again.ok(&format!("{what}: resume"));
    assert!(
        jsonl(&dir.join("r/events.jsonl"))
            .iter()
            .any(|e| e["kind"] == "resume"),
        "{what}: the resume loaded a checkpoint"
    );
    events
}

/// The first event of `kind`, which must exist.
pub fn event<'a>(events: &'a [Value], kind: &str, what: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("{what}: no {kind} event in {events:?}"))
}
