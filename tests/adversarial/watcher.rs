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

impl Run {
    fn start(dir: &Path, policy: &str) -> Run {
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
            .stderr(Stdio::null())
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

    /// Ends the run with a policy that stops; it must exit 0.
    fn finish(mut self, policy: &Path) {
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
    let opens = Arc::new(AtomicUsize::new(0));
    let counter = opens.clone();
    let wanted = pol.canonicalize().unwrap();
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
    w.watch(d, RecursiveMode::NonRecursive).unwrap();
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
