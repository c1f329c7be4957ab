//! Ctrl-C, SIGTERM and SIGHUP (SPEC section 9): the first one sets a flag that the trainer
//! reads between optimizer steps (it finishes the step, writes `step-N`, records a
//! `run_end` with reason `interrupted` and the binary exits 130); a second one exits
//! at once with 130. Only the binary installs the handlers; a library
//! user who does not keeps the flag false.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The exit code of an interrupted run (128 + SIGINT, as shells report it).
pub const EXIT_CODE: u8 = 130;

/// Installs the handlers. The conditional exit is registered first, so it acts on
/// the second signal only (signal-hook runs a signal's actions in order).
pub fn install() -> std::io::Result<()> {
    // SIGHUP: the terminal closed; the run stops as for Ctrl-C rather than die.
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_conditional_shutdown(sig, EXIT_CODE as i32, &REQUESTED)?;
        signal_hook::flag::register(sig, &REQUESTED)?;
    }
    Ok(())
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
