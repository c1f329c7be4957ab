//! Integration tests: the `rudder` binary end to end, the data readers against the
//! published checksums, and the trainer's decision seam.

mod cli;
mod control;
mod data;
mod live;
mod messages;
mod models;
mod packages;
mod policies;
mod regression;
mod reload;
mod resume;
mod schedulers;
mod seam;
mod search;
mod serve;
mod slurm;
mod strict;
mod tensorboard;
mod tutorial;
mod ux;
mod workflow;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test: this build's, or `$RUDDER_BIN` (another build, to see a
/// test fail on the behaviour it was written against).
pub fn bin() -> PathBuf {
    std::env::var_os("RUDDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rudder")))
}

/// Runs the built `rudder` with `args` in `dir`.
pub fn rudder(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUDDER_DATA")
        .output()
        .expect("rudder runs")
}

/// The output's stderr, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads a JSONL file into values.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

/// The lines of a JSONL file being written that parse so far (none if it is absent).
pub fn lines_so_far(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A child process killed and reaped when the test that started it ends, passed or
/// failed.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository's root (data/, plugins/, bench/).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cli is two folders down")
        .to_path_buf()
}

/// The policy runtime's crate, whose `scripts/` is the standard library (and its
/// test cases).
pub fn library() -> PathBuf {
    repo().join("crates/policy")
}

/// Where the fetched data sets are (`$RUDDER_DATA`, else `./data`), if `name` is
/// there. Under CI (`CI` set) a missing data set fails the test instead of skipping.
pub fn data_path(name: &str) -> Option<PathBuf> {
    let root = std::env::var_os("RUDDER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("data"));
    let p = root.join(name);
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: .ci/run fetches it", p.display());
    }
    skip(&format!(
        "{} is missing (see the README to fetch it)",
        p.display()
    ));
    None
}

/// Says a test skipped its check, on the real stderr: the test harness captures
/// what `eprintln!` writes (and shows it only for failures), so this line shows in
/// `cargo test`'s output whatever its options.
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "test skipped: {why}");
}
