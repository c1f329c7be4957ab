//! Crash points for the tests: with `RUDDER_FAULT` set to `step:S` the process halts
//! after optimizer step S; with `checkpoint:NAME`, in the middle of writing that
//! checkpoint (its weights written, its state not); with `checkpoint:prune-NAME`, in
//! the middle of deleting it (moved aside, not yet removed). It says so on stderr and
//! waits to be killed (the resume tests kill it there with SIGKILL), or interrupted
//! (SIGINT: it then goes on, and sees the interrupt). Unset, a point costs a compare
//! and allocates nothing.
//!
//! `die:S` kills the process with SIGKILL after step S, as a crashed machine would;
//! `pace:MS` makes every optimizer step last MS milliseconds more (a run long enough
//! to be steered or signalled mid-epoch); `RUDDER_FAULT_RANK=R` limits any of them to
//! rank R of a many-process run (the rank its MPI launcher gave it), and
//! `RUDDER_FAULT_TASK=N` to task N of a Slurm job array (`SLURM_ARRAY_TASK_ID`).

use std::sync::OnceLock;

enum Spec {
    Step(u64),
    Die(u64),
    Pace(u64),
    Checkpoint(String),
}

fn spec() -> Option<&'static Spec> {
    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let v = std::env::var("RUDDER_FAULT").ok()?;
        if let Ok(r) = std::env::var("RUDDER_FAULT_RANK")
            && r.parse::<usize>().ok() != Some(rudder_core::launcher::rank().unwrap_or(0))
        {
            return None;
        }
        if let Ok(t) = std::env::var("RUDDER_FAULT_TASK")
            && std::env::var("SLURM_ARRAY_TASK_ID").ok() != Some(t)
        {
            return None;
        }
        match v.split_once(':')? {
            ("step", s) => s.parse().ok().map(Spec::Step),
            ("die", s) => s.parse().ok().map(Spec::Die),
            ("pace", ms) => ms.parse().ok().map(Spec::Pace),
            ("checkpoint", name) => Some(Spec::Checkpoint(name.to_string())),
            _ => None,
        }
    })
    .as_ref()
}

/// Waits to be killed; a SIGINT or SIGTERM lets the run go on instead, so a test can
/// interrupt it at this exact point.
fn halt(what: &str) {
    rudder_core::term::say(&format!(
        "rudder: fault point {what} reached; waiting to be killed"
    ));
    while !rudder_core::interrupt::requested() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// After optimizer step `step`.
pub fn step(step: u64) {
    match spec() {
        Some(Spec::Step(s)) if *s == step => halt(&format!("step:{step}")),
        Some(Spec::Die(s)) if *s == step => {
            rudder_core::term::say(&format!("rudder: fault point die:{step}: SIGKILL"));
            // SAFETY: kill(2) on our own pid, with no memory passed.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        Some(Spec::Pace(ms)) => std::thread::sleep(std::time::Duration::from_millis(*ms)),
        _ => {}
    }
}

/// Half-way through writing checkpoint `name`.
pub fn checkpoint(name: &str) {
    if let Some(Spec::Checkpoint(n)) = spec()
        && n == name
    {
        halt(&format!("checkpoint:{name}"));
    }
}
