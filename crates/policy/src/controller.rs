//! The seam between a training loop and whatever steers it: a [`Controller`] is
//! called at each hook and answers a [`Reply`] (a validated decision, the events to
//! record, the errors met); it never fails the run.

use std::path::PathBuf;

use serde::Serialize;

use crate::{Ctx, Decision, Hook};

/// What a set of policies answers to one hook: the merged, validated decision, the
/// events to record, and the errors among them, typed.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Reply {
    /// The merged decision of every policy whose call succeeded.
    pub decision: Decision,
    /// What to record in `events.jsonl`, in order.
    pub events: Vec<PolicyEvent>,
    /// The calls that failed (a script error, a budget overrun, a rejected decision):
    /// their decisions were dropped, the others' kept.
    pub errors: Vec<HookError>,
}

impl Reply {
    /// A reply of `decision` alone.
    pub fn new(decision: Decision) -> Reply {
        Reply {
            decision,
            ..Reply::default()
        }
    }

    /// `self` followed by `later` (a reload's reply, then the hook's): the later
    /// decision wins key by key, events and errors in order.
    pub fn then(mut self, later: Reply) -> Reply {
        self.decision = self.decision.then(later.decision);
        self.events.extend(later.events);
        self.errors.extend(later.errors);
        self
    }
}

pub use rudder_core::EventKind;

/// A place in a policy's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Location {
    /// The file's path.
    pub file: String,
    /// 1-based; 0 where the fault has no place in a file (a budget, a missing file).
    pub line: usize,
    /// 1-based; 0 where `line` is.
    pub column: usize,
}

/// Something a policy did that belongs in `events.jsonl`; serialised as the line's
/// fields (`kind`, `policy`, `hook`, `version`, and by kind `message`, `file`, `line`,
/// `column`, `key`, `decision`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PolicyEvent {
    /// What happened.
    pub kind: EventKind,
    /// The policy's name.
    pub policy: String,
    /// The hook being called (`Hook::Reload` for a reload).
    pub hook: Hook,
    /// The content hash of the policy's sources (for `reload_failed`, of the version
    /// that failed).
    pub version: String,
    /// The error, or the version reached by a reload (`v2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where a script error or a failed reload happened.
    #[serde(flatten)]
    pub at: Option<Location>,
    /// The decision key at fault, for `invalid_decision`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The decision as JSON (the accepted one, or the rejected one, bounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<serde_json::Value>,
    /// For `reload`: the files the new version was built from, with their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<crate::project::FileHash>>,
}

impl PolicyEvent {
    /// An event of `kind` for `policy` at `hook`, with no message, place, key or
    /// decision.
    pub fn new(kind: EventKind, policy: &str, hook: Hook, version: &str) -> PolicyEvent {
        PolicyEvent {
            kind,
            policy: policy.to_string(),
            hook,
            version: version.to_string(),
            message: None,
            at: None,
            key: None,
            decision: None,
            files: None,
        }
    }
}

/// Why a policy's call was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookErrorKind {
    /// The script failed: an error it threw or met, or a budget it overran.
    Script,
    /// It returned a decision that was rejected (`key` names the key at fault).
    InvalidDecision,
}

/// A policy's hook call that failed; the run goes on with the values it had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("policy {policy}, {}: {}:{line}:{column}: {message}", hook.function(), file.display())]
#[non_exhaustive]
pub struct HookError {
    /// Why the call was dropped.
    pub kind: HookErrorKind,
    /// The policy's name.
    pub policy: String,
    /// The hook that was called.
    pub hook: Hook,
    /// Where: the innermost place of a script error; the policy's file for a rejected
    /// decision (line and column 0).
    pub file: PathBuf,
    /// 1-based; 0 where there is no place (a rejected decision, a budget).
    pub line: usize,
    /// 1-based; 0 where there is no place (a rejected decision, a budget).
    pub column: usize,
    /// The error, or the rejected key and why.
    pub message: String,
    /// The decision key at fault.
    pub key: Option<String>,
}

/// A policy's part of a checkpoint: its name, the hash of its sources, and `this`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct PolicyState {
    /// The policy's name.
    pub name: String,
    /// The content hash of its sources.
    pub version: String,
    /// Its `this`, as JSON.
    pub this: serde_json::Value,
}

impl PolicyState {
    /// A policy's state from its name, version and `this`.
    pub fn new(name: &str, version: &str, this: serde_json::Value) -> PolicyState {
        PolicyState {
            name: name.to_string(),
            version: version.to_string(),
            this,
        }
    }
}

/// Whatever steers a run: called at each hook, it returns decisions and never fails
/// the run (its errors become events). [`crate::Policies`] is one; a test or a
/// hand-written rule can be another.
pub trait Controller: Send {
    /// Whether any policy defines `hook`; the trainer skips building a ctx otherwise.
    fn defines(&self, hook: Hook) -> bool;
    /// Calls `hook` on every policy with `ctx`: the merged decision, its events and
    /// errors.
    fn call(&mut self, hook: Hook, ctx: &Ctx) -> Reply;
    /// Whether a watched file changed since the last call (then call
    /// [`Controller::reload`] at the next step boundary). Never by default.
    fn reload_due(&mut self) -> bool {
        false
    }
    /// Reloads what changed on disk: `reload` / `reload_failed` events, and the
    /// decisions of `on_reload`.
    fn reload(&mut self, _ctx: &Ctx) -> Reply {
        Reply::default()
    }
    /// What steers the run, per policy: its files with their hashes, and its
    /// locked plugin's origin (what `config.json` and `run_start` record).
    fn provenance(&self) -> Vec<crate::project::Provenance> {
        Vec::new()
    }
    /// Each policy's name and script text, as it runs (what TensorBoard shows).
    fn sources(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The state a checkpoint keeps (per policy: name, version, `this`).
    fn snapshot(&self) -> Vec<PolicyState> {
        Vec::new()
    }
    /// Gives each policy its `this` from a checkpoint; returns a note for each policy
    /// whose source changed since (it runs in its new version) or that the
    /// checkpoint does not know.
    fn restore(&mut self, _saved: &[PolicyState]) -> Vec<String> {
        Vec::new()
    }
}
