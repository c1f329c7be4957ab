//! Checkpoints: `checkpoints/NAME/` holds `model.safetensors` (weights and batch-norm
//! running statistics, named as the candle model names them), `optimizer.safetensors`
//! (momentum buffers or AdamW moments) and `state.json` (everything else a resume
//! needs, with the SHA-256 of both tensor files). A folder is written under a
//! temporary name, each file fsynced, then renamed into place and the parent fsynced:
//! a reader sees a whole checkpoint or none. A resume takes the newest checkpoint
//! that validates whole (schema, checksums, log sizes that end lines of the logs)
//! before anything is cut or loaded; pruning moves a folder aside before deleting it.

mod find;
mod read;
mod write;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use rudder_core::metric::Metric;
use rudder_core::text::one_line;
use rudder_policy::{Best, PolicyState, Settings};
use serde::{Deserialize, Serialize};

pub use crate::log::LogSizes;
pub use find::{
    beyond_keep, beyond_keep_tagged, check_logs, folders, latest, list, locate, newest_valid,
};

/// Bytes free for an unprivileged writer on the file system holding `dir`
/// (`statvfs`'s available blocks); `None` where it cannot be told.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a valid out-parameter.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
pub use read::{check_model, load_model, parse_state, parse_tensors, read};
pub use write::{clean, remove, write};

/// `state.json`'s `format`: a file without it is not one of ours.
pub const FORMAT: &str = "rudder-checkpoint/2";
/// The format before checksums; still read (without them).
pub const FORMAT_1: &str = "rudder-checkpoint/1";

/// The weights and running statistics of a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimizer's state tensors of a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Everything else a resume needs, and the tensor files' checksums.
pub const STATE_FILE: &str = "state.json";

/// A checkpoint that cannot be read, does not fit the run, or is not there. The
/// binary's exit code 2 on resume; an event during a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file of a checkpoint that cannot be read, is damaged, or does not fit the
    /// model, the data or the run's logs: names the file and what is wrong.
    #[error("{at}: {message}")]
    File {
        /// The file, on one line.
        at: String,
        /// What is wrong, on one line.
        message: String,
    },
    /// A run has checkpoints and none of them validates.
    #[error("no checkpoint in {root} can be resumed: {}", faults.join("; "))]
    NoneValid {
        /// The checkpoints folder, on one line.
        root: String,
        /// Why each did not validate.
        faults: Vec<String>,
    },
    /// The run's logs, which a resume reads back, cannot be read: names the file,
    /// line and column.
    #[error("{0}")]
    Log(String),
    /// A rollback asked for a checkpoint the run has not written (`best`, `last`, a tag).
    #[error("no {0} checkpoint")]
    Missing(String),
}

/// The error for `path`: `msg` says what is wrong with it.
pub fn fault(path: &Path, msg: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::File {
        at: one_line(&path.display().to_string()),
        message: one_line(&msg.to_string()),
    }
}

/// The data order: the seed of the shuffle stream, how many epochs it has shuffled,
/// and how far into the current permutation the run is. Replaying `shuffles`
/// shuffles from the seed gives back the exact permutation and stream position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Shuffle {
    /// The shuffle stream's seed.
    pub seed: u64,
    /// Epochs shuffled so far.
    pub shuffles: u64,
    /// Examples of the current permutation already taken.
    pub cursor: usize,
}

/// The sums of an epoch in progress (a checkpoint between two steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// The training loss summed over the examples seen.
    pub loss_sum: f64,
    /// Examples classified correctly (0 for regression).
    pub correct: f64,
    /// Examples trained on so far this epoch.
    pub seen: usize,
    /// Seconds spent training this epoch so far.
    pub train_time_s: f64,
}

/// The best value so far of the `--monitor` metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitored {
    /// The metric (`--monitor`).
    pub metric: Metric,
    /// Its best value so far; `None` before the first.
    pub value: Option<f64>,
    /// The 0-based epoch that reached it.
    pub epoch: Option<usize>,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The checkpoint format, [`FORMAT`] or [`FORMAT_1`].
    pub format: String,
    /// The epoch to run next, or the one in progress when `partial` is set.
    pub epoch: usize,
    /// Optimizer steps done.
    pub step: u64,
    /// The sums of the epoch in progress, for a checkpoint between two steps.
    pub partial: Option<Partial>,
    /// The settings policies may change, as they stood.
    pub settings: Settings,
    /// Updates the optimizer has done (its count for bias correction).
    pub optimizer_steps: u64,
    /// The data order.
    pub rng: Shuffle,
    /// The best epoch by validation loss, as `ctx.best` shows it.
    pub best: Best,
    /// The best of the `--monitor` metric.
    pub monitored: Monitored,
    /// Each policy's name, source hash and `this`.
    pub policies: Vec<PolicyState>,
    /// The logs' sizes, to cut them back to on resume.
    pub logs: LogSizes,
    /// Scalars policies asked to record for the epoch in progress.
    pub policy_metrics: BTreeMap<String, f64>,
    /// SHA-256 (hex) of `model.safetensors` and `optimizer.safetensors`, by file name
    /// (format 2; a format-1 checkpoint has none).
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Loaded {
    /// The checkpoint's folder.
    pub dir: PathBuf,
    /// Its `state.json`.
    pub state: State,
    /// The model's tensors by name.
    pub model: HashMap<String, Tensor>,
    /// The optimizer's state tensors by name.
    pub optimizer: HashMap<String, Tensor>,
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    rudder_policy::checksum::sha256_hex(bytes)
}

/// The epoch a checkpoint belongs to: the one in progress (`in_progress`), else the
/// last finished, for `epoch` as `State` counts it (the next to run).
pub fn boundary_epoch(epoch: usize, in_progress: bool) -> usize {
    if in_progress {
        epoch
    } else {
        epoch.saturating_sub(1)
    }
}

/// `epoch-N` or `step-N`: the names the trainer gives and prunes.
pub fn is_periodic(name: &str) -> bool {
    ["epoch-", "step-"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// What a checkpoint holds, ready to write.
pub struct Snapshot<'a> {
    /// The `state.json` to write.
    pub state: &'a State,
    /// The model's tensors by name.
    pub model: &'a [(String, Tensor)],
    /// The optimizer's state tensors by name.
    pub optimizer: &'a [(String, Tensor)],
}

#[cfg(test)]
mod tests;
