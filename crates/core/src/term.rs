//! What rudder prints: lines on stderr and stdout that a closed or broken pipe cannot
//! turn into a failure (a run goes on, its files are still written).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Makes [`info`] silent (a command's `-q`): warnings, errors and results still print.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether [`set_quiet`] silenced [`info`].
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// [`say`], unless the command was told `-q`: what a command tells a person along
/// the way (`wrote compare.html`, a sweep's trial lines), never a warning or error.
pub fn info(msg: &str) {
    if !is_quiet() {
        say(msg);
    }
}

/// [`say_text`], unless the command was told `-q`.
pub fn info_text(text: &str) {
    if !is_quiet() {
        say_text(text);
    }
}

/// Writes `msg` and a newline to stderr, ignoring a closed or broken stderr.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Writes `text` as it is to stderr, ignoring a closed or broken stderr.
pub fn say_text(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes `text` as it is to stdout, ignoring a closed or broken stdout.
pub fn out_text(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Writes `msg` and a newline to stdout, ignoring a closed or broken stdout.
pub fn out(msg: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{msg}");
}
