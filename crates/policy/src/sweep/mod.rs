//! Sweep policies: schedulers over a population of trials, as Rhai scripts with the
//! sandbox, limits, hot reload and `policy test` of every policy. A sweep policy
//! defines `on_report(sweep)`, called when a trial finishes an epoch, with every
//! trial's settings, status and metrics history; it answers decisions over the
//! population (`stop`, `pause`, `resume`, `exploit`, `start`, `log`, `metrics`) that
//! the sweep carries out. The standard library's are `sweep/asha`,
//! `sweep/hyperband`, `sweep/median` (Optuna's pruners, number for number) and
//! `sweep/pbt` (Ray Tune's Population Based Training).

mod decision;
pub mod replay;

use std::path::PathBuf;

use rhai::Dynamic;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use decision::{Exploit, SweepDecision};

use crate::params::apply_params;
use crate::script::error::ScriptError;
use crate::script::find;
use crate::script::policy::Policy;
use crate::{LoadError, Param, SearchPath};

pub use crate::hooks::ON_REPORT;

/// Uniform draws in [0, 1) each report gives a scheduler (`sweep.random`), for the
/// choices it makes at random (PBT's clone and mutations).
pub const DRAWS: usize = 32;

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Planned, not started yet (or waiting for a slot).
    Pending,
    /// Training.
    Running,
    /// Stopped by the scheduler with its checkpoint kept, waiting to be resumed.
    Paused,
    /// Stopped before its planned epochs by the scheduler (Optuna's pruned).
    Stopped,
    /// Ended on its own: its planned epochs, or its own policies' stop.
    Done,
    /// Its launcher could not finish it: every attempt ended early (a cluster's node
    /// lost, a time limit, a crash) and the retries are spent. Optuna's `FAIL`.
    Failed,
}

impl Status {
    /// `"running"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    /// Whether it will not train again.
    pub fn finished(self) -> bool {
        matches!(self, Status::Stopped | Status::Done | Status::Failed)
    }
}

/// One trial as a scheduler sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialView {
    /// Its name in the sweep (its run folder's).
    pub id: String,
    /// Its place in the order trials were planned or started (0-based).
    pub number: usize,
    /// Its current settings: the searched ones, and `lr`, `batch_size`, `momentum`,
    /// `weight_decay`, `accumulation` as they are now (after exploits).
    pub settings: Map<String, Value>,
    /// Where it stands.
    pub status: Status,
    /// Its `metrics.jsonl` lines so far, one per epoch (`step` below is their count).
    pub history: Vec<Value>,
}

/// What one report gives the scheduler besides the trials.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// Every trial, in their planned order.
    pub trials: &'a [TrialView],
    /// Index into `trials` of the one that just finished an epoch.
    pub trial: usize,
    /// The sweep's `--metric` and whether lower is better (`"min"`) or higher.
    pub metric: &'a str,
    /// `"min"` or `"max"`.
    pub mode: &'a str,
    /// The epochs each trial is planned for.
    pub epochs: usize,
    /// Trials the sweep runs at once.
    pub jobs: usize,
    /// [`DRAWS`] uniform draws in [0, 1).
    pub random: &'a [f64],
}

/// A sweep policy's call that failed: the sweep goes on as if it had decided
/// nothing (as with `--scheduler none`) and records this.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct SchedulerError {
    /// The policy's file (or the module's) at fault.
    pub file: PathBuf,
    /// 1-based; 0 where there is no place (a budget, a rejected decision).
    pub line: usize,
    /// 1-based; 0 with `line`.
    pub column: usize,
    /// What went wrong, on one line.
    pub message: String,
}

impl From<ScriptError> for SchedulerError {
    fn from(e: ScriptError) -> SchedulerError {
        SchedulerError {
            file: e.file,
            line: e.line,
            column: e.column,
            message: e.message,
        }
    }
}

/// A reload seen at a report: the new version, or why it failed (the old one runs on).
#[derive(Debug, Clone, PartialEq)]
pub enum Reloaded {
    /// It reloaded: its new version.
    Ok(String),
    /// The edit did not load; the previous version runs on.
    Failed(SchedulerError),
}

/// A loaded sweep policy.
pub struct Scheduler {
    policy: Policy,
    spec: String,
    params: Vec<Param>,
    search: SearchPath,
    /// The bytes of its script on disk at the last (re)load; `None` when embedded.
    on_disk: Option<Vec<u8>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("spec", &self.spec)
            .field("version", &self.policy.version)
            .finish()
    }
}

fn compile(spec: &str, params: &[Param], search: &SearchPath) -> Result<Policy, LoadError> {
    let src = find::locate(spec, search).map_err(|message| {
        let clipped = crate::text::clip(spec);
        LoadError::not_found(&clipped, message.replace(spec, &clipped))
    })?;
    let file = src.file.clone();
    let mut policies = vec![Policy::compile(src, search)?];
    apply_params(&mut policies, params)?;
    let policy = policies.pop().expect("one policy");
    if !policy.defines_fn(ON_REPORT, 1) {
        return Err(ScriptError {
            file,
            line: 0,
            column: 0,
            message: format!(
                "a sweep policy defines fn {ON_REPORT}(sweep); {} does not (a training policy goes to --policy)",
                policy.name
            ),
        }
        .into());
    }
    Ok(policy)
}

impl Scheduler {
    /// Finds and compiles the sweep policy `spec` (a name such as `sweep/asha`, or a
    /// path) with `params` over its `fn params()`.
    pub fn load(spec: &str, params: &[Param], search: &SearchPath) -> Result<Scheduler, LoadError> {
        let policy = compile(spec, params, search)?;
        let on_disk = read_script(&policy.file);
        Ok(Scheduler {
            policy,
            spec: spec.to_string(),
            params: params.to_vec(),
            search: search.clone(),
            on_disk,
        })
    }

    /// Its name (`sweep/asha`, or the file's stem).
    pub fn name(&self) -> &str {
        &self.policy.name
    }

    /// The content hash of its sources.
    pub fn version(&self) -> &str {
        &self.policy.version
    }

    /// Its script's path (`<embedded>/...` for the standard library's).
    pub fn file(&self) -> &std::path::Path {
        &self.policy.file
    }

    /// `policy check`'s warnings for it, placed in its script.
    pub fn lint(&self) -> Vec<String> {
        self.policy.lint().iter().map(ToString::to_string).collect()
    }

    /// Its merged parameters, as JSON.
    pub fn params(&self) -> Value {
        Value::Object(
            self.policy
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), crate::script::state::to_json(v)))
                .collect(),
        )
    }

    /// Its `this`, as JSON (what `sweep.json` keeps for a resumed sweep).
    pub fn this(&self) -> Value {
        crate::script::state::to_json(&self.policy.this)
    }

    /// Gives it back a `this` saved by [`Scheduler::this`].
    pub fn set_this(&mut self, this: &Value) {
        self.policy.this = crate::script::state::from_json(this);
    }

    /// Whether its script changed on disk since it was (re)loaded; then recompiles
    /// it, keeping `this`. `None` when nothing changed (or it is embedded).
    pub fn reload_if_changed(&mut self) -> Option<Reloaded> {
        let now = read_script(&self.policy.file)?;
        if self.on_disk.as_ref() == Some(&now) {
            return None;
        }
        self.on_disk = Some(now);
        Some(match compile(&self.spec, &self.params, &self.search) {
            Ok(mut p) => {
                p.this = std::mem::take(&mut self.policy.this);
                self.policy = p;
                Reloaded::Ok(self.policy.version.clone())
            }
            Err(e) => Reloaded::Failed(SchedulerError {
                file: e.file.unwrap_or_else(|| self.policy.file.clone()),
                line: e.line,
                column: e.column,
                message: e.message,
            }),
        })
    }

    /// Calls `on_report(sweep)` for `r`: its decisions, checked against the trials.
    pub fn on_report(&mut self, r: &Report) -> Result<SweepDecision, SchedulerError> {
        let sweep = view(r, self.policy.params_value());
        let got = self
            .policy
            .call_fn(ON_REPORT, sweep)
            .map_err(SchedulerError::from)?;
        decision::parse(&got, r.trials).map_err(|message| SchedulerError {
            file: self.policy.file.clone(),
            line: 0,
            column: 0,
            message,
        })
    }
}

/// The script's bytes, for a script on disk.
fn read_script(file: &std::path::Path) -> Option<Vec<u8>> {
    if file.starts_with("<embedded>") {
        return None;
    }
    rudder_core::input::read(file, crate::limits::MAX_SOURCE).ok()
}

/// A trial as the script sees it: `id`, `number`, `settings`, `status`, `history`,
/// `step` (epochs reported), `last` (the last epoch's line or `()`).
fn trial_json(t: &TrialView) -> Value {
    serde_json::json!({
        "id": t.id,
        "number": t.number,
        "settings": t.settings,
        "status": t.status.name(),
        "history": t.history,
        "step": t.history.len(),
        "last": t.history.last().cloned().unwrap_or(Value::Null),
    })
}

/// The `sweep` map `on_report` gets.
fn view(r: &Report, params: &Dynamic) -> Dynamic {
    let trials: Vec<Value> = r.trials.iter().map(trial_json).collect();
    let mut m = Map::new();
    m.insert("trial".into(), trials[r.trial].clone());
    m.insert("trials".into(), Value::Array(trials));
    m.insert("metric".into(), r.metric.into());
    m.insert("mode".into(), r.mode.into());
    m.insert("epochs".into(), r.epochs.into());
    m.insert("jobs".into(), r.jobs.into());
    m.insert("random".into(), r.random.to_vec().into());
    let mut map = crate::script::convert::from_json(&Value::Object(m))
        .try_cast::<rhai::Map>()
        .unwrap_or_default();
    map.insert("params".into(), params.clone());
    Dynamic::from_map(map).into_read_only()
}
