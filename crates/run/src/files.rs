//! The run folder's files as files: written atomically (`config.json`, reports,
//! `sweep.json`, lr-find's), and JSONL read back with the place of a bad line.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

pub use rudder_core::atomic::write_atomic;

/// `config` as pretty JSON in `dir/config.json`, atomically.
pub fn write_config(dir: &Path, config: &impl Serialize) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(config).map_err(std::io::Error::other)?;
    text.push(b'\n');
    write_atomic(&dir.join("config.json"), &text)
}

/// A JSONL file that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonlError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not JSON.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// 1-based.
        column: usize,
        /// serde's message.
        message: String,
    },
}

/// The objects of a JSONL file (blank lines skipped); errors name the file, and the
/// line and column of a bad line.
pub fn read_jsonl(path: &Path) -> Result<Vec<Value>, JsonlError> {
    let text = std::fs::read_to_string(path).map_err(|e| JsonlError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                JsonlError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    column: e.column(),
                    message: msg,
                }
            })
        })
        .collect()
}

/// `Some(x)` for a finite `x`, so JSON shows non-finite numbers as `null`.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}
