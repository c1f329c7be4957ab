//! A Slurm task's side of the scheduler: its trial's controller wraps the trial's own
//! policies and, at each epoch's end, appends the epoch as the scheduler sees it to
//! `slurm/reports/TRIAL.jsonl`; under a scheduler, while the coordinator is alive
//! (its heartbeat fresh), it then waits until the coordinator has answered that
//! report (`slurm/acks/TRIAL.json`), so that what it decided is in the trial's
//! `control.jsonl` before the next epoch's first step: a stop, a pause or an exploit
//! lands at the epoch's end, as in a local sweep. A dead or detached coordinator
//! makes it wait for nothing; an answer that does not come within
//! [`MAX_WAIT`] lets it go on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use rudder_policy::{Controller, Ctx, Hook, Policies, Reply};

/// How old the coordinator's heartbeat may be for a trial to wait for it.
pub(crate) const STALE_S: f64 = 10.0;
/// The longest a trial waits for one answer.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);
/// The coordinator's heartbeat, in the sweep's `slurm/`.
pub(crate) const HEARTBEAT: &str = "coordinator.json";

/// Where trial `name` of the sweep in `sweep` reports (`reports/`) and is answered
/// (`acks/`).
pub(crate) fn reports(sweep: &Path, name: &str) -> PathBuf {
    sweep
        .join("slurm")
        .join("reports")
        .join(format!("{name}.jsonl"))
}

pub(crate) fn ack(sweep: &Path, name: &str) -> PathBuf {
    sweep
        .join("slurm")
        .join("acks")
        .join(format!("{name}.json"))
}

/// The controller of a trial in a Slurm task.
pub(crate) struct Heed {
    pub(crate) inner: Policies,
    pub(crate) sweep: PathBuf,
    pub(crate) name: String,
    /// Whether a scheduler decides (else nothing is waited for).
    pub(crate) wait: bool,
}

fn read(path: &Path) -> Option<Value> {
    let bytes = rudder_core::input::read(path, 1 << 16).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Heed {
    /// Epoch `reported` (counting from 1) told to the coordinator, and its answer
    /// waited for.
    fn report(&self, ctx: &Ctx) {
        let line = super::super::reporter::line_of(ctx);
        let file = reports(&self.sweep, &self.name);
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            rudder_core::term::say(&format!(
                "rudder sweep-task: cannot write {}: {e}",
                file.display()
            ));
            return;
        }
        if !self.wait {
            return;
        }
        let reported = ctx.epoch as u64 + 1;
        let ack = ack(&self.sweep, &self.name);
        let heartbeat = self.sweep.join("slurm").join(HEARTBEAT);
        let t0 = Instant::now();
        while t0.elapsed() < MAX_WAIT {
            if read(&ack).and_then(|a| a["epochs"].as_u64()).unwrap_or(0) >= reported {
                return;
            }
            let beat = read(&heartbeat)
                .and_then(|h| h["time"].as_f64())
                .unwrap_or(0.0);
            if super::super::attempts::now() - beat > STALE_S {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Controller for Heed {
    fn defines(&self, hook: Hook) -> bool {
        self.inner.defines(hook) || hook == Hook::EpochEnd
    }

    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply {
        let reply = if self.inner.defines(hook) {
            self.inner.call(hook, ctx)
        } else {
            Reply::default()
        };
        if hook == Hook::EpochEnd {
            self.report(ctx);
        }
        reply
    }

    super::super::reporter::forward_to_inner!();
}

/// The coordinator's heartbeat, written now.
pub(crate) fn beat(sweep: &Path) {
    let v = json!({"pid": std::process::id(), "time": super::super::attempts::now()});
    let _ = rudder_run::files::write_atomic(
        &sweep.join("slurm").join(HEARTBEAT),
        format!("{v}\n").as_bytes(),
    );
}
