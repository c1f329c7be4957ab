//! The stop a signal asks for: a flag the trainer reads between optimizer steps (it
//! finishes the step, writes `step-N`, records a `run_end` with reason
//! `interrupted`). The `rudder` binary sets it from its SIGINT, SIGTERM, SIGHUP and SIGUSR1
//! handlers; a library user sets it from their own, or never.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The flag itself, for a signal handler that sets it (`signal_hook::flag`).
pub fn flag() -> &'static AtomicBool {
    &REQUESTED
}

/// Whether a stop was asked for.
#[inline]
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Asks for a stop as a signal would (tests, and library users with their own
/// handlers).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}
