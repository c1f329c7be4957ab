//! `rudder sweep --resume DIR`: a sweep interrupted (Ctrl-C, kill -9, a lost
//! machine) goes on from what its `sweep.json` recorded while it ran: the command's
//! own arguments (so the same trials are planned), each trial's status and lineage,
//! the trials its scheduler started, and the scheduler's `this` and draws. Finished
//! trials are read back, not rerun; the others resume from their checkpoints.

use std::path::Path;

use clap::Parser;
use serde_json::Value;

use rudder_core::config::ConfigError;
use rudder_policy::sweep::Status;

use super::coord::{Coordinator, Slot};
use crate::cli::{Cli, Command, SweepOptions};
use crate::error::AppError;

/// The options `dir`'s sweep was started with (its `sweep.json`'s `args`), and what
/// that file recorded.
pub(super) fn options(dir: &Path) -> Result<(SweepOptions, Value), AppError> {
    let flag = format!("--resume {}", dir.display());
    let file = dir.join("sweep.json");
    let bytes = rudder_core::input::read(&file, 64 << 20)
        .map_err(|e| ConfigError::file(format!("{flag}: {}", file.display()), e))?;
    let saved: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ConfigError::invalid(
            format!("{flag}: {}:{}:{}", file.display(), e.line(), e.column()),
            e.to_string(),
        )
    })?;
    if saved["state"] == "done" {
        return Err(
            ConfigError::refused(flag, "this sweep finished: there is nothing to resume").into(),
        );
    }
    let args: Vec<String> = saved["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| {
            ConfigError::invalid(
                flag.clone(),
                "its sweep.json has no args: not a sweep rudder can resume",
            )
        })?;
    let cli = Cli::try_parse_from(
        ["rudder".to_string(), "sweep".to_string()]
            .into_iter()
            .chain(args),
    )
    .map_err(|e| {
        ConfigError::invalid(
            flag.clone(),
            format!("its recorded arguments do not parse: {}", e.kind()),
        )
    })?;
    let Command::Sweep(mut o) = cli.command else {
        return Err(ConfigError::invalid(flag, "its recorded arguments are not a sweep's").into());
    };
    o.train.out = Some(dir.to_path_buf());
    o.train.resume = None;
    Ok((*o, saved))
}

/// The run folder `dir`'s metrics lines (none when it has no readable log).
fn history(dir: &Path) -> Vec<Value> {
    rudder_run::files::read_jsonl(&dir.join("metrics.jsonl")).unwrap_or_default()
}

fn status_of(v: &Value) -> Status {
    serde_json::from_value(v.clone()).unwrap_or(Status::Pending)
}

/// Gives `coord` (planned from the same arguments) the state `saved` recorded.
pub(super) fn restore(coord: &Coordinator, saved: &Value) -> Result<(), AppError> {
    let mut st = coord.lock();
    let trials = saved["trials"].as_array().cloned().unwrap_or_default();
    // The scheduler's own trials, planned again from their settings.
    for t in &trials {
        if let (Some(name), Some(settings)) = (t["dir"].as_str(), t["start"].as_object())
            && !st.slots.iter().any(|s| s.plan.name == name)
        {
            let k = st.slots.iter().filter(|s| s.start.is_some()).count();
            let p = super::plan::started(&coord.base, &coord.cfg, settings, k)
                .map_err(|why| ConfigError::invalid("--resume", why))?;
            let i = st.slots.len();
            st.slots.push(Slot::new(p, i, Some(settings.clone())));
        }
    }
    for t in &trials {
        let Some(i) = st
            .slots
            .iter()
            .position(|s| Some(s.plan.name.as_str()) == t["dir"].as_str())
        else {
            continue;
        };
        restore_trial(coord, &mut st.slots[i], t);
    }
    let waiting: Vec<usize> = (0..st.slots.len())
        .filter(|&i| {
            !st.slots[i].view.status.finished() && st.slots[i].view.status != Status::Paused
        })
        .filter(|&i| !st.slots[i].tasks.as_ref().is_some_and(|t| t.active()))
        .collect();
    st.queue = waiting.into();
    if let (Some(s), Some(sched)) = (st.scheduler.as_mut(), saved.get("scheduler")) {
        s.set_this(&sched["this"]);
    }
    st.reports = saved["scheduler"]["reports"].as_u64().unwrap_or(0);
    Ok(())
}

/// Slot `s` as `t`, its entry in `sweep.json`, recorded it.
fn restore_trial(coord: &Coordinator, s: &mut Slot, t: &Value) {
    let dir = coord.cfg.out.join(&s.plan.name);
    s.lineage = t["lineage"].as_array().cloned().unwrap_or_default();
    for e in &s.lineage {
        if let Some(m) = e["settings"].as_object() {
            s.view.settings.extend(m.clone());
        }
    }
    let lines = history(&dir);
    let status = status_of(&t["status"]);
    s.view.status = status;
    s.tasks = serde_json::from_value(t["slurm"].clone()).ok();
    if coord.slurm && !status.finished() && status != Status::Paused {
        // Its task may still run: its folder stays, and the epochs not yet
        // reported are reported as the coordinator follows it again.
        let reported = t["epochs_reported"].as_u64().unwrap_or(0) as usize;
        s.view.history = lines[..reported.min(lines.len())].to_vec();
        s.started = dir.join("config.json").is_file();
        s.view.status = if s.started {
            Status::Running
        } else {
            Status::Pending
        };
        return;
    }
    match status {
        Status::Done | Status::Stopped | Status::Failed => {
            s.view.history = lines;
            s.started = true;
            s.result = Some(if dir.join("metrics.jsonl").is_file() {
                super::record::read(
                    &dir,
                    &s.plan,
                    coord.metric,
                    t["diverged"].as_bool().unwrap_or(false),
                    t["stop_reason"].as_str().map(str::to_string),
                )
            } else {
                Ok(super::record::not_run(&s.plan))
            });
        }
        Status::Paused => {
            s.view.history = lines;
            s.started = true;
        }
        Status::Running | Status::Pending => {
            s.view.status = Status::Pending;
            let n = super::copy::newest_epoch(&dir).map_or(0, |(n, _)| n);
            if n > 0 && dir.join("config.json").is_file() {
                // It resumes from its newest checkpoint; the logs are cut to it.
                s.view.history = lines[..n.min(lines.len())].to_vec();
                s.started = true;
            } else if dir.exists() {
                // Killed before its first checkpoint: it starts again.
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}
