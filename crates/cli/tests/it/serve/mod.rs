//! `rudder serve` end to end: a real server on real run folders, requests made by hand
//! (the token, the origin, paths that lead out, bounded bodies), and headless
//! Chromium driven through WebDriver (Debian's `chromedriver`, the `fantoccini`
//! client) against real training runs: the list, live charts, controls, the policy
//! editor, hostile text. Browser tests skip with a line where chromedriver is missing
//! and fail under CI. Waits have generous deadlines; nothing asserts on time.

mod bench;
mod browser;
mod http;
mod pages;
mod sweeps;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Reaped, bin};

/// A `rudder serve` process on an unused port.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) base: String,
    pub(crate) token: String,
    _child: Reaped,
}

impl Server {
    /// `rudder serve DIRS --port 0` in `cwd`, once it printed where it listens.
    pub(crate) fn start(cwd: &Path, dirs: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .arg("serve")
            .args(dirs)
            .args(["--port", "0"])
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rudder serve starts");
        let out = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).expect("its line");
        let url = line
            .split(" at ")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim()
            .to_string();
        let (base, token) = url.split_once("/?token=").expect("a token in the URL");
        Server {
            base: base.to_string(),
            token: token.to_string(),
            url,
            _child: Reaped(child),
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self._child.0.id()
    }

    /// `host:port`.
    pub(crate) fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }
}

/// Waits until `done` holds (90 s at most), saying what it waited for if not.
pub(crate) fn until(what: &str, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
