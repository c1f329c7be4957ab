//! A `rudder train` process running in the background, for the tests that act on a
//! run while it trains (hot reload, the control channel): its folder's logs read as
//! they grow, and waits with a deadline, so a broken build fails instead of hanging.
//! Nothing asserts on time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Reaped, bin, lines_so_far};

/// The run, writing `dir/r`; killed when the test ends.
pub(crate) struct Live {
    pub(crate) dir: PathBuf,
    pub(crate) child: Reaped,
}

impl Live {
    /// `rudder train ARGS` in `dir`, its output thrown away.
    pub(crate) fn start(dir: &Path, args: &[&str]) -> Live {
        let child = Command::new(bin())
            .arg("train")
            .args(args)
            .current_dir(dir)
            .env_remove("RUDDER_DATA")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rudder starts");
        Live {
            dir: dir.to_path_buf(),
            child: Reaped(child),
        }
    }

    pub(crate) fn metrics(&self) -> Vec<Value> {
        lines_so_far(&self.dir.join("r/metrics.jsonl"))
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        lines_so_far(&self.dir.join("r/events.jsonl"))
    }

    /// The events of `kind`.
    pub(crate) fn kinds(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Waits until `done` holds (60 s at most; the events are shown if it never does).
    pub(crate) fn wait(&self, what: &str, done: impl Fn(&Live) -> bool) {
        let t = Instant::now();
        while !done(self) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "gave up waiting for {what}: {:#?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
