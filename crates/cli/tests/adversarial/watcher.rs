//! Hot reload against hostile saves, through a running `rudder train`: a save that is
//! not UTF-8, or that imports a cycle or a module whose top level never ends, is a
//! `reload_failed` and the old version keeps running; a symlinked policy reloads when
//! its target is edited; and the watcher reacts to content changes only (it does not
//! re-read the policy after its own reads, or when an editor opens it). Waits poll
//! with a generous deadline; nothing asserts on speed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use serde_json::Value;

use super::{jsonl, write};

struct Run {
    dir: PathBuf,
    child: Child,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens of `file` seen from now on, counted by inotify.
fn count_opens(dir: &Path, file: &Path) -> (notify::RecommendedWatcher, Arc<AtomicUsize>) {
    let opens = Arc::new(AtomicUsize::new(0));
    let counter = opens.clone();
    let wanted = file.canonicalize().unwrap();
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(e) = res
            && matches!(
                e.kind,
                EventKind::Access(notify::event::AccessKind::Open(_))
            )
            && e.paths
                .iter()
                .any(|p| p.canonicalize().ok().as_ref() == Some(&wanted))
        {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    w.watch(dir, RecursiveMode::NonRecursive).unwrap();
    (w, opens)
}

impl Run {
    fn start(dir: &Path, policy: &str) -> Run {
        Run::start_with(dir, policy, Stdio::null())
    }

    /// With stderr written to `dir/stderr.txt`.
    fn start_logged(dir: &Path, policy: &str) -> Run {
        let f = std::fs::File::create(dir.join("stderr.txt")).unwrap();
        Run::start_with(dir, policy, Stdio::from(f))
    }

    fn start_with(dir: &Path, policy: &str, stderr: Stdio) -> Run {
        let child = Command::new(super::bin())
            .args([
                "train",
                "-q",
                "--epochs",
                "100000",
                "--batch-size",
                "8",
                "--policy",
                policy,
                "--watch",
                "auto",
                "--out",
                "r",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("rudder starts");
        let run = Run {
            dir: dir.to_path_buf(),
            child,
        };
        run.wait("the first epoch", |r| !r.metrics().is_empty());
        run
    }

    fn metrics(&self) -> Vec<Value> {
        jsonl(&self.dir.join("r/metrics.jsonl"))
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        jsonl(&self.dir.join("r/events.jsonl"))
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    fn wait(&self, what: &str, done: impl Fn(&Run) -> bool) {
        let t = Instant::now();
        while !done(self) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "gave up waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Epochs still run, at the LR the current version sets.
    fn still_training_at(&self, lr: f64) {
        let n = self.metrics().len();
        self.wait("two more epochs", |r| r.metrics().len() >= n + 2);
        assert_eq!(self.metrics().last().unwrap()["lr"], lr);
    }

    /// Peak memory so far, in KiB (the kernel's `VmHWM`).
    fn peak_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Ends the run with a policy that stops; it must exit 0.
    fn finish(mut self, policy: &Path) {
        assert!(self.peak_kb() < 1 << 20, "peak RSS {} KiB", self.peak_kb());
        let _ = std::fs::remove_file(policy);
        std::fs::write(policy, "fn on_epoch_start(ctx) { #{ stop: true } }\n").unwrap();
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                assert_eq!(s.code(), Some(0));
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the run did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

const V1: &str = "fn on_epoch_start(ctx) { #{ lr: 0.01 } }\n";

#[test]
fn hostile_saves_are_reload_failed_and_the_old_version_runs_on() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pol = write(d, "steer.rhai", V1);
    write(d, "spin.rhai", "let i = 0;\nloop { i += 1; }\n");
    write(d, "me.rhai", "import \"me\" as me;\n");
    let run = Run::start(d, "steer.rhai");
    for (i, (save, says)) in [
        (
            &b"fn on_epoch_start(ctx) { #{ lr: 0.5 } } // \xff\n"[..],
            "not UTF-8",
        ),
        (
            b"import \"me\" as m;\nfn on_epoch_start(ctx) { #{ lr: 0.5 } }\n",
            "import cycle me.rhai -> me.rhai",
        ),
        (
            b"import \"spin\" as s;\nfn on_epoch_start(ctx) { #{ lr: 0.5 } }\n",
            "operations",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&pol, save).unwrap();
        run.wait("reload_failed", |r| r.events("reload_failed").len() > i);
        let e = &run.events("reload_failed")[i];
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
        run.still_training_at(0.01);
    }
    assert!(run.events("reload").is_empty());
    run.finish(&pol);
}

#[test]
fn a_symlinked_policy_reloads_when_its_target_is_edited() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = write(elsewhere.path(), "real.rhai", V1);
    let d = tmp.path();
    std::os::unix::fs::symlink(&target, d.join("steer.rhai")).unwrap();
    let run = Run::start(d, "steer.rhai");
    std::fs::write(&target, "fn on_epoch_start(ctx) { #{ lr: 0.02 } }\n").unwrap();
    run.wait("reload", |r| !r.events("reload").is_empty());
    run.still_training_at(0.02);
    run.finish(&target);
}

#[test]
fn the_watcher_reacts_to_content_changes_only() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pol = write(d, "steer.rhai", V1);
    let run = Run::start(d, "steer.rhai");
    std::fs::write(&pol, "fn on_epoch_start(ctx) { #{ lr: 0.02 } }\n").unwrap();
    run.wait("reload", |r| !r.events("reload").is_empty());
    // Count every open of the policy file from here on: a reading editor below, and
    // whatever rudder does by itself.
    let (w, opens) = count_opens(d, &pol);
    // An editor (or grep) opens and reads the file a few times without changing it.
    for _ in 0..5 {
        let _ = std::fs::read(&pol).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = run.metrics().len();
    run.wait("more epochs", |r| r.metrics().len() >= n + 10);
    // Ours are the 5 reads; each would have made rudder read the file again, and its
    // own read again, every debounce period, had it reacted to opens.
    let seen = opens.load(Ordering::SeqCst);
    assert!(seen <= 5, "the policy file was opened {seen} times");
    assert_eq!(run.events("reload").len(), 1);
    assert!(run.events("reload_failed").is_empty());
    drop(w);
    run.finish(&pol);
}

#[test]
fn files_swapped_in_that_are_not_policies_are_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let pol = write(
        d,
        "steer.rhai",
        "import \"m\" as m;\nfn on_epoch_start(ctx) { #{ lr: 0.01 } }\nfn on_epoch_end(ctx) { m::boom(ctx.epoch) }\n",
    );
    let module = write(d, "m.rhai", "fn boom(e) {\n  throw \"boom \" + e;\n}\n");
    let run = Run::start_logged(d, "steer.rhai");
    // The module becomes a link to a system file: the running version's errors still
    // show the line they were compiled from, and the reload is refused.
    std::fs::remove_file(&module).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &module).unwrap();
    run.wait("reload_failed", |r| !r.events("reload_failed").is_empty());
    run.still_training_at(0.01);
    // The policy becomes a FIFO (reading would block), then /dev/zero (reading
    // would never end).
    std::fs::remove_file(&pol).unwrap();
    let fifo = std::ffi::CString::new(pol.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    run.wait("a refused FIFO", |r| {
        r.events("reload_failed").iter().any(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("not a regular file")
        })
    });
    run.still_training_at(0.01);
    std::fs::remove_file(&pol).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &pol).unwrap();
    run.still_training_at(0.01);
    assert!(run.events("reload").is_empty());
    std::fs::remove_file(&module).unwrap();
    write(d, "m.rhai", "fn boom(e) { () }\n");
    run.finish(&pol);
    let err = std::fs::read_to_string(d.join("stderr.txt")).unwrap();
    assert!(err.contains("throw \"boom \" + e;"), "{err}");
    assert!(!err.contains("root:"), "{err}");
}

#[test]
fn a_module_is_read_once_not_at_every_call() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "m.rhai", "fn lr() { 0.05 }\n");
    write(
        d,
        "p.rhai",
        "import \"m\" as m;\nfn on_step(ctx) { #{ lr: m::lr() } }\n",
    );
    let (w, opens) = count_opens(d, &d.join("m.rhai"));
    let ran = super::rudder(
        d,
        &[
            "train", "-q", "--epochs", "2", "--watch", "off", "--policy", "p.rhai", "--out", "r",
        ],
    );
    ran.ok("imports");
    // Give inotify's last events time to arrive.
    std::thread::sleep(Duration::from_millis(200));
    drop(w);
    // Compiled once, hashed once for the version (52 steps call the hook).
    let n = opens.load(Ordering::SeqCst);
    assert!(n <= 2, "m.rhai was opened {n} times");
}
