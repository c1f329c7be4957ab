//! What rudder prints: lines on stderr and stdout that a closed or broken pipe cannot
//! turn into a failure (a run goes on, its files are still written).

use std::io::Write;

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
