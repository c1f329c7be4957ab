//! The kinds of event a run records in `events.jsonl`: the trainer's own and those
//! of its policies, by the names the file uses.

use serde::{Deserialize, Serialize};

/// What happened: the `kind` of an `events.jsonl` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run started: parameters, kernels, ranks.
    RunStart,
    /// The run was continued from a checkpoint.
    Resume,
    /// A checkpoint was written (or could not be).
    Checkpoint,
    /// A rollback restored a checkpoint's weights.
    Rollback,
    /// A policy, the sweep's guard or the trainer stopped the run.
    Stop,
    /// A policy's `log` line.
    Log,
    /// The run ended (its reason, when it was stopped or interrupted).
    RunEnd,
    /// A policy's accepted decision (a schedule's per-step LR is not one).
    Decision,
    /// A decision rejected whole; `key` names the key at fault.
    InvalidDecision,
    /// A script error or a budget overrun; its place in `file:line:col`.
    PolicyError,
    /// A new version of a policy swapped in; `message` is `v2`, `v3`, ...
    Reload,
    /// A new version that did not load; the old one runs on.
    ReloadFailed,
    /// A decision key a framework adapter (Python) cannot apply.
    UnsupportedDecision,
    /// A policy name that the standard library has resolved to a file on the search
    /// path instead: `policy`, `path`.
    Shadowed,
    /// A report, TensorBoard or other output that could not be written; the run goes
    /// on without it: `sink`, `message`.
    SinkError,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 15] = [
        EventKind::RunStart,
        EventKind::Resume,
        EventKind::Checkpoint,
        EventKind::Rollback,
        EventKind::Stop,
        EventKind::Log,
        EventKind::RunEnd,
        EventKind::Decision,
        EventKind::InvalidDecision,
        EventKind::PolicyError,
        EventKind::Reload,
        EventKind::ReloadFailed,
        EventKind::UnsupportedDecision,
        EventKind::Shadowed,
        EventKind::SinkError,
    ];

    /// The name `events.jsonl` writes (`invalid_decision`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStart => "run_start",
            EventKind::Resume => "resume",
            EventKind::Checkpoint => "checkpoint",
            EventKind::Rollback => "rollback",
            EventKind::Stop => "stop",
            EventKind::Log => "log",
            EventKind::RunEnd => "run_end",
            EventKind::Decision => "decision",
            EventKind::InvalidDecision => "invalid_decision",
            EventKind::PolicyError => "policy_error",
            EventKind::Reload => "reload",
            EventKind::ReloadFailed => "reload_failed",
            EventKind::UnsupportedDecision => "unsupported_decision",
            EventKind::Shadowed => "shadowed",
            EventKind::SinkError => "sink_error",
        }
    }

    /// The kind `events.jsonl` calls `name`.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names() {
        for k in EventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(EventKind::from_name(k.as_str()), Some(k));
        }
    }
}
