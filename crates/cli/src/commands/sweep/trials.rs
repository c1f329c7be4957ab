//! A sweep's trials on threads of their own, `--jobs` at a time: each trial's run
//! (its first, or a paused one's resumed from its checkpoint) under the controller
//! that reports to the population, and the trial as `sweep.json` records it, read
//! back from its folder.

use rudder_core::config::TrainConfig;
use rudder_core::text::{fmt_metric, plural};
use rudder_nn::data::Data;
use rudder_run::report;
use rudder_train::{load_policies, train_on};

use super::coord::Coordinator;
use super::plan::Plan;
use super::{AppError, Trial, reporter};

/// The configuration of trial `p`'s first run in the sweep `cfg`, sharing `jobs`.
fn trial_cfg(cfg: &TrainConfig, p: &Plan, jobs: usize) -> TrainConfig {
    let mut c = p.cfg.clone();
    c.out = cfg.out.join(&p.name);
    // TensorBoard: a folder per sweep, a run per trial in it.
    c.tensorboard = cfg
        .tensorboard
        .as_ref()
        .map(|d| d.join(cfg.out.file_name().unwrap_or_default()));
    c.quiet = true;
    c.watch = rudder_policy::WatchMode::Off;
    c.threads = (cfg.threads / jobs).max(1);
    c.stop_on_divergence = true;
    c
}

/// A paused trial's next run: its folder resumed to its planned epochs.
fn resumed_cfg(first: &TrainConfig) -> Result<TrainConfig, AppError> {
    let opts = rudder_core::TrainOptions {
        resume: Some(first.out.clone()),
        epochs: Some(first.epochs),
        ..Default::default()
    };
    let mut c = rudder_train::resolve(opts)?;
    c.quiet = true;
    c.watch = rudder_policy::WatchMode::Off;
    c.threads = first.threads;
    c.stop_on_divergence = true;
    c.tensorboard = first.tensorboard.clone();
    Ok(c)
}

/// Every trial of `coord`, `coord.jobs` at a time on threads of their own; a paused
/// trial's slot goes to the next waiting one at once.
pub(super) fn run_all(cfg: &TrainConfig, coord: &Coordinator, data: &Data) {
    let jobs = coord.jobs.clamp(1, coord.lock().slots.len().max(1));
    let work = || {
        while let Some(i) = coord.next() {
            let (plan, started) = {
                let st = coord.lock();
                (st.slots[i].plan.clone(), st.slots[i].started)
            };
            let first = trial_cfg(cfg, &plan, jobs);
            let r = if started {
                resumed_cfg(&first).and_then(|c| run_trial(&c, &plan, data, coord, i))
            } else {
                run_trial(&first, &plan, data, coord, i)
            };
            if let Ok(t) = &r {
                rudder_core::term::info(&format!(
                    "rudder sweep: {} (lr {}) {}: {}, best {} {}{}",
                    t.dir,
                    report::fmt_num(t.lr),
                    if t.stop_reason.as_deref() == Some("paused by the scheduler") {
                        "paused"
                    } else if t.stop_reason.as_deref() == Some("scheduler") {
                        "stopped"
                    } else {
                        "done"
                    },
                    plural(t.epochs_run as i64, "epoch"),
                    coord.metric,
                    t.score.map_or("-".into(), fmt_metric),
                    if t.diverged { ", diverged" } else { "" }
                ));
            }
            coord.finished(i, r);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            // Policies run on the trial's thread: it gets their stack.
            let started = std::thread::Builder::new()
                .name("rudder-trial".into())
                .stack_size(rudder_policy::limits::POLICY_STACK)
                .spawn_scoped(s, work);
            if started.is_err() {
                work();
            }
        }
    });
}

fn run_trial(
    cfg: &TrainConfig,
    p: &Plan,
    data: &Data,
    coord: &Coordinator,
    index: usize,
) -> Result<Trial, AppError> {
    let inner = load_policies(
        &cfg.policy,
        &cfg.param,
        cfg.lr_scaling,
        rudder_policy::WatchMode::Off,
    )?;
    let mut controller = reporter::Reporter {
        inner,
        coord,
        index,
    };
    let summary = rudder_train::with_threads(cfg.threads, || train_on(cfg, data, &mut controller))?;
    let mut t = super::record::read(
        &cfg.out,
        p,
        coord.metric,
        summary.diverged,
        summary.stop_reason.clone(),
    )?;
    t.interrupted = summary.interrupted;
    Ok(t)
}
