//! A trial's tasks on a cluster, as `sweep.json` records them: its task index in the
//! sweep's array, and every attempt (a submission, or a requeue of one) with its job,
//! node, state, exit code and the time it spent queued and running. Shared by the
//! population (`coord`), the Slurm launcher and the report.

use serde::{Deserialize, Serialize};

/// Every task a trial had.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tasks {
    /// Its index in the sweep's array (its place in `slurm/trials.json`).
    pub(crate) task: usize,
    /// In the order they were submitted (a requeue is a new attempt of the same job).
    pub(crate) attempts: Vec<Attempt>,
    /// Why it failed, once every retry was spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failed: Option<String>,
}

/// One try at a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    /// The array task as Slurm names it: `JOBID_TASK`.
    pub(crate) job: String,
    /// Slurm's restart count of the job when it started (requeues).
    #[serde(default)]
    pub(crate) restart: u32,
    /// Slurm's state as last seen: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`,
    /// `CANCELLED`, `NODE_FAIL`, `TIMEOUT`, `OUT_OF_MEMORY`, `REQUEUED`, ...
    pub(crate) state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) node: Option<String>,
    /// The task's exit code, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit: Option<i32>,
    /// What the trial said at its end: `done`, `interrupted` (it checkpointed on a
    /// signal) or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<String>,
    /// Unix seconds: submitted (or requeued), started, seen ended.
    pub(crate) submitted: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) started: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ended: Option<f64>,
}

/// States after which a task runs no more (Slurm's `squeue`/`sacct` names).
const TERMINAL: [&str; 11] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "REVOKED",
    "SPECIAL_EXIT",
];

/// Whether Slurm's `state` (`CANCELLED by 0` as sacct has it) has ended the task.
pub(crate) fn terminal(state: &str) -> bool {
    let first = state.split_whitespace().next().unwrap_or("");
    TERMINAL.contains(&first) || first == "GONE"
}

impl Attempt {
    /// A task just submitted as `job` at `now`.
    pub(crate) fn new(job: String, now: f64) -> Attempt {
        Attempt {
            job,
            restart: 0,
            state: "PENDING".into(),
            node: None,
            exit: None,
            outcome: None,
            submitted: now,
            started: None,
            ended: None,
        }
    }

    /// Seconds between its submission and its start.
    pub(crate) fn queued_s(&self) -> Option<f64> {
        self.started.map(|s| (s - self.submitted).max(0.0))
    }

    /// Seconds between its start and its end.
    pub(crate) fn running_s(&self) -> Option<f64> {
        Some((self.ended? - self.started?).max(0.0))
    }

    /// Whether it has ended (as far as the coordinator has seen).
    pub(crate) fn over(&self) -> bool {
        self.ended.is_some()
    }
}

impl Tasks {
    /// Its newest attempt.
    pub(crate) fn current(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub(crate) fn current_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// Whether a task of it is queued or running.
    pub(crate) fn active(&self) -> bool {
        self.current().is_some_and(|a| !a.over())
    }

    /// Attempts that ended without finishing it (what `--max-retries` counts).
    pub(crate) fn failures(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.over() && a.outcome.as_deref() != Some("done") && a.state != "REQUEUED")
            .count()
    }

    /// The record with each attempt's `queued_s` and `running_s`, as `sweep.json`
    /// has it.
    pub(crate) fn json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(list) = v["attempts"].as_array_mut() {
            for (a, out) in self.attempts.iter().zip(list) {
                out["queued_s"] = a.queued_s().map_or(serde_json::Value::Null, round);
                out["running_s"] = a.running_s().map_or(serde_json::Value::Null, round);
            }
        }
        v
    }
}

fn round(s: f64) -> serde_json::Value {
    serde_json::json!((s * 1000.0).round() / 1000.0)
}

/// Now, in Unix seconds.
pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_that_end_a_task() {
        assert!(terminal("CANCELLED by 0"));
        assert!(terminal("NODE_FAIL"));
        assert!(!terminal("PENDING"));
        assert!(!terminal("RUNNING"));
        assert!(!terminal("REQUEUED"));
    }

    #[test]
    fn failures_count_what_ended_unfinished() {
        let mut t = Tasks::default();
        let mut a = Attempt::new("7_0".into(), 10.0);
        a.started = Some(12.5);
        a.ended = Some(20.0);
        a.state = "REQUEUED".into();
        t.attempts.push(a.clone());
        a.state = "CANCELLED".into();
        t.attempts.push(a.clone());
        a.outcome = Some("done".into());
        a.state = "COMPLETED".into();
        t.attempts.push(a);
        assert_eq!(t.failures(), 1);
        assert!(!t.active());
        let j = t.json();
        assert_eq!(j["attempts"][0]["queued_s"], 2.5);
        assert_eq!(j["attempts"][0]["running_s"], 7.5);
    }
}
