//! `rudder sweep-task SWEEP --task N --token T`: what task N of a sweep's Slurm array
//! runs (started by `srun`, one process per rank). It checks that it sees the
//! sweep's folder as the coordinator wrote it (the marker), records its start (job,
//! node, time), trains trial N of `slurm/trials.json` into its run folder (or
//! resumes it from its newest checkpoint: a requeue, a retry, a paused trial's
//! turn), and records its end. A signal (Slurm's warning, a preemption's SIGTERM, a
//! `scancel`) checkpoints the trial at its next step; the task then exits 75 and its
//! batch script requeues it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use rudder_core::TrainOptions;
use rudder_core::config::ConfigError;

use crate::cli::SweepTaskOptions;
use crate::error::{AppError, NOT_SHARED, REQUEUE};

/// What a task of the array trains: `slurm/trials.json`'s entry `N`.
pub(crate) const TRIALS: &str = "trials.json";
/// The marker the coordinator writes before it submits anything.
pub(crate) const MARKER: &str = "marker";

/// This task as Slurm named it: `JOBID_TASK`, its restart count and its node.
pub(crate) struct Me {
    pub(crate) job: String,
    pub(crate) restart: u32,
    pub(crate) node: String,
}

impl Me {
    fn from_env(task: usize) -> Me {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Me {
            job: format!(
                "{}_{}",
                var("SLURM_ARRAY_JOB_ID").unwrap_or_else(|| "local".into()),
                task
            ),
            restart: var("SLURM_RESTART_COUNT")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            node: var("SLURMD_NODENAME")
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_else(|| "?".into()),
        }
    }
}

/// Where task `job`'s `restart`-th run records its `what` (`start`, `end`).
pub(crate) fn record_path(sweep: &Path, job: &str, restart: u32, what: &str) -> PathBuf {
    sweep
        .join("slurm")
        .join("attempts")
        .join(format!("{job}.{restart}.{what}.json"))
}

/// `rudder sweep-task`.
pub(crate) fn command(o: SweepTaskOptions) -> Result<(), AppError> {
    let me = Me::from_env(o.task);
    let marker = o.dir.join("slurm").join(MARKER);
    let seen = std::fs::read_to_string(&marker).unwrap_or_default();
    if seen.trim() != o.token {
        return Err(AppError::Task(
            NOT_SHARED,
            format!(
                "rudder sweep-task: task {} on node {} cannot see the sweep's folder {} as its coordinator wrote it ({} is {}): the sweep's folder must be on a file system every node shares",
                me.job,
                me.node,
                o.dir.display(),
                marker.display(),
                if seen.is_empty() {
                    "missing"
                } else {
                    "another sweep's"
                }
            ),
        ));
    }
    let ranks: usize = std::env::var("SLURM_NTASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    if ranks > 1 && rudder_train::dist::world().size() == 1 {
        return Err(ConfigError::invalid(
            "--ntasks",
            format!("this trial was started as {ranks} Slurm tasks, but they are not one MPI job: a rudder built with --features mpi, started by srun with MPI (MpiDefault, or SLURM_MPI_TYPE=pmix), trains one trial on many ranks"),
        )
        .into());
    }
    let root = rudder_train::dist::world().rank() == 0;
    let (name, opts, wait) = entry(&o.dir, o.task)?;
    if root {
        write(
            &record_path(&o.dir, &me.job, me.restart, "start"),
            &json!({"job": me.job, "restart": me.restart, "node": me.node, "time": super::super::attempts::now(), "trial": name}),
        );
    }
    let outcome = train(&o.dir, &name, opts, wait);
    if root {
        let mut end = match &outcome {
            Ok(s) if s.interrupted => json!({"outcome": "interrupted", "epochs_run": s.epochs_run}),
            Ok(s) => {
                json!({"outcome": "done", "epochs_run": s.epochs_run, "diverged": s.diverged, "stop_reason": s.stop_reason})
            }
            Err(e) => json!({"outcome": "failed", "message": e.to_string()}),
        };
        end["time"] = json!(super::super::attempts::now());
        write(&record_path(&o.dir, &me.job, me.restart, "end"), &end);
    }
    match outcome? {
        s if s.interrupted => Err(AppError::Task(
            REQUEUE,
            format!(
                "rudder sweep-task: {name} checkpointed at step {} on a signal; its next start resumes from there",
                s.steps
            ),
        )),
        _ => Ok(()),
    }
}

/// Trial `n` of the sweep in `dir`: its folder's name, its options, and whether a
/// scheduler decides (its reports are then waited on).
fn entry(dir: &Path, n: usize) -> Result<(String, TrainOptions, bool), AppError> {
    let file = dir.join("slurm").join(TRIALS);
    let flag = format!("--task {n}");
    let bytes = rudder_core::input::read(&file, 64 << 20)
        .map_err(|e| ConfigError::file(format!("{flag}: {}", file.display()), e))?;
    let all: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ConfigError::invalid(
            format!("{flag}: {}:{}:{}", file.display(), e.line(), e.column()),
            e.to_string(),
        )
    })?;
    let t = all["trials"].get(n).ok_or_else(|| {
        ConfigError::invalid(flag.clone(), format!("{} has no trial {n}", file.display()))
    })?;
    let name = t["name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(ConfigError::invalid(flag, "the trial has no folder name").into());
    }
    let opts: TrainOptions = serde_json::from_value(t["options"].clone())
        .map_err(|e| ConfigError::invalid(format!("{flag}: {}", file.display()), e.to_string()))?;
    Ok((name, opts, all["scheduler"].as_bool().unwrap_or(false)))
}

/// Trains trial `name` of the sweep in `sweep` from `opts`, or resumes it from its
/// newest checkpoint; its reports waited on when `wait`.
fn train(
    sweep: &Path,
    name: &str,
    mut opts: TrainOptions,
    wait: bool,
) -> Result<rudder_train::Summary, AppError> {
    let run = &sweep.join(name);
    let resumable = run.join("config.json").is_file()
        && !rudder_run::checkpoint::list(&run.join("checkpoints")).is_empty();
    let mut cfg = if resumable {
        rudder_train::resolve(TrainOptions {
            resume: Some(run.to_path_buf()),
            epochs: opts.epochs,
            ..Default::default()
        })?
    } else {
        if run.exists() && rudder_train::dist::world().rank() == 0 {
            // An attempt that ended before its first checkpoint: it starts again.
            let _ = std::fs::remove_dir_all(run);
        }
        opts.out = Some(run.to_path_buf());
        rudder_train::resolve(opts)?
    };
    cfg.quiet = true;
    // Polling sees the coordinator's control lines on any shared file system.
    cfg.watch = rudder_policy::WatchMode::Poll;
    cfg.stop_on_divergence = true;
    cfg.threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let inner = rudder_train::load_policies(
        &cfg.policy,
        &cfg.param,
        cfg.lr_scaling,
        rudder_policy::WatchMode::Off,
    )?;
    let mut heed = super::heed::Heed {
        inner,
        sweep: sweep.to_path_buf(),
        name: name.to_string(),
        wait,
    };
    Ok(rudder_train::train_with(&cfg, &mut heed)?)
}

/// Writes `v` to `path` whole (a failure is said: the coordinator then goes by
/// Slurm's states alone).
fn write(path: &Path, v: &Value) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = format!("{v}\n");
    if let Err(e) = rudder_run::files::write_atomic(path, text.as_bytes()) {
        rudder_core::term::say(&format!(
            "rudder sweep-task: cannot write {}: {e}",
            path.display()
        ));
    }
}
