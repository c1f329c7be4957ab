//! A run's line in the list: status, epoch, best metric, LR, samples/s, when it
//! started and on which host; a sweep's: its state, trials and winner. Each is
//! recomputed only when the run's files grew (a cache by their lengths).
//!
//! Whether a run is being trained is read from the kernel's table of locks
//! (`/proc/locks`) without taking the run's lock, so a look can never make a starting
//! run find its folder busy; where that table is missing, from the PID in `.lock`.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rudder_core::metric::Metric;
use serde_json::{Value, json};

use crate::scan::{Found, Kind};
use crate::tail;

/// The largest `config.json` or `sweep.json` read.
pub(crate) const MAX_JSON: u64 = 8 << 20;

/// How a run stands.
pub(crate) fn status(dir: &Path, locks: &Locks) -> (&'static str, Option<String>) {
    let last = tail::last(dir, "events.jsonl");
    if let Some(e) = last.as_ref().filter(|e| e["kind"] == "run_end") {
        return match e["reason"].as_str() {
            None => ("finished", None),
            Some("interrupted") => ("interrupted", None),
            Some(r) => ("stopped", Some(r.to_string())),
        };
    }
    if locks.held(dir) {
        ("running", None)
    } else {
        ("failed", Some("ended without a run_end event".into()))
    }
}

/// The flock locks held now, by device and inode.
pub(crate) struct Locks {
    held: Option<HashSet<(u32, u32, u64)>>,
}

impl Locks {
    /// The table as it is now.
    pub(crate) fn now() -> Locks {
        let held = std::fs::read_to_string("/proc/locks").ok().map(|t| {
            t.lines()
                .filter(|l| l.contains("FLOCK"))
                .filter_map(|l| {
                    let id = l.split_whitespace().find(|w| w.matches(':').count() == 2)?;
                    let mut p = id.split(':');
                    let major = u32::from_str_radix(p.next()?, 16).ok()?;
                    let minor = u32::from_str_radix(p.next()?, 16).ok()?;
                    Some((major, minor, p.next()?.parse().ok()?))
                })
                .collect()
        });
        Locks { held }
    }

    /// Whether a process holds the lock of run folder `dir`.
    pub(crate) fn held(&self, dir: &Path) -> bool {
        match &self.held {
            Some(set) => std::fs::metadata(dir).is_ok_and(|m| {
                let dev = m.dev();
                set.contains(&(libc::major(dev), libc::minor(dev), m.ino()))
            }),
            None => pid_alive(dir),
        }
    }
}

/// Whether the PID in `dir/.lock` is a live process on this machine.
fn pid_alive(dir: &Path) -> bool {
    let pid = std::fs::read_to_string(dir.join(".lock"))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid.is_some_and(|p| p > 0 && unsafe { libc::kill(p, 0) } == 0)
}

/// Summaries kept until a run's files change.
#[derive(Default)]
pub(crate) struct Cache {
    runs: Mutex<HashMap<PathBuf, (Vec<u64>, Value)>>,
}

impl Cache {
    /// The list's line for `found`.
    pub(crate) fn line(&self, found: &Found, locks: &Locks) -> Value {
        let dir = &found.dir;
        let files: &[&str] = match found.kind {
            Kind::Run => &["config.json", "metrics.jsonl", "events.jsonl"],
            Kind::Sweep => &["sweep.json"],
        };
        let stamp: Vec<u64> = files
            .iter()
            .map(|f| {
                std::fs::metadata(dir.join(f)).map_or(0, |m| m.len() ^ (m.mtime() as u64) << 32)
            })
            .collect();
        let cached = {
            let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.get(dir)
                .filter(|(s, _)| *s == stamp)
                .map(|(_, v)| v.clone())
        };
        let mut v = cached.unwrap_or_else(|| {
            let v = match found.kind {
                Kind::Run => run_line(dir),
                Kind::Sweep => sweep_line(dir),
            };
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            runs.insert(dir.clone(), (stamp, v.clone()));
            v
        });
        if found.kind == Kind::Run {
            let (s, reason) = status(dir, locks);
            v["status"] = json!(s);
            v["reason"] = json!(reason);
        }
        v["id"] = json!(found.id);
        v["kind"] = json!(found.kind);
        v["sweep"] = json!(found.sweep);
        v
    }
}

/// The metric a run is judged by: its `--monitor`, else the validation loss.
pub(crate) fn monitor(config: &Value) -> Metric {
    config["monitor"]
        .as_str()
        .and_then(|m| Metric::from_name(m).ok())
        .unwrap_or(Metric::ValLoss)
}

/// A run's line, status aside.
fn run_line(dir: &Path) -> Value {
    let config = tail::json_file(dir, "config.json", MAX_JSON).unwrap_or(Value::Null);
    let history = tail::read_all(dir, "metrics.jsonl").values;
    let last = history.last().cloned().unwrap_or(Value::Null);
    let metric = monitor(&config);
    let best = metric
        .best_epoch(&history)
        .map(|(epoch, value)| json!({"metric": metric.name(), "value": value, "epoch": epoch}));
    let start = tail::first(dir, "events.jsonl").unwrap_or(Value::Null);
    json!({
        "epoch": last["epoch"].as_u64().map(|e| e + 1).unwrap_or(0),
        "epochs": last.get("epochs").cloned().unwrap_or_else(|| config["epochs"].clone()),
        "best": best,
        "lr": last.get("lr").cloned().unwrap_or_else(|| config["lr"].clone()),
        "samples_per_s": last["samples_per_s"],
        "started": start["time"],
        "host": start["host"],
    })
}

/// A sweep's line: its state, its trials by status, the winner.
fn sweep_line(dir: &Path) -> Value {
    let sweep = tail::json_file(dir, "sweep.json", MAX_JSON).unwrap_or(Value::Null);
    let trials = sweep["trials"].as_array().cloned().unwrap_or_default();
    let mut by: HashMap<String, usize> = HashMap::new();
    for t in &trials {
        *by.entry(t["status"].as_str().unwrap_or("running").to_string())
            .or_default() += 1;
    }
    json!({
        "status": sweep["state"],
        "trials": trials.len(),
        "by_status": by,
        "metric": sweep["metric"],
        "winner": sweep["winner"],
        "launcher": sweep["launcher"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_is_seen_without_taking_it_and_run_end_says_how_it_ended() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let lock = std::fs::File::open(dir).unwrap();
        assert!(!Locks::now().held(dir));
        lock.lock().unwrap();
        assert!(Locks::now().held(dir));
        assert_eq!(status(dir, &Locks::now()).0, "running");
        drop(lock);
        assert_eq!(status(dir, &Locks::now()).0, "failed");
        let end = |reason: Value| {
            let line = json!({"kind": "run_end", "reason": reason}).to_string() + "\n";
            std::fs::write(dir.join("events.jsonl"), line).unwrap();
            status(dir, &Locks::now())
        };
        assert_eq!(end(Value::Null), ("finished", None));
        assert_eq!(end(json!("interrupted")), ("interrupted", None));
        assert_eq!(end(json!("console")), ("stopped", Some("console".into())));
    }
}
