//! `rudder sweep`: one full run per LR multiplier, same seed, data order, epochs and
//! batch size, sharing the loaded data set; trials that diverge are stopped and
//! marked; the winner is picked by a metric; one report overlays every trial.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::Value;

use crate::config::{ConfigError, TrainConfig};
use crate::data::Data;
use crate::pipeline::{AppError, load_policies, train_on};
use crate::report;
use crate::runlog::{best_epoch, best_of};

/// What the sweep varies and how it picks.
#[derive(Debug, Clone)]
pub struct Spec {
    pub multipliers: Vec<f64>,
    /// The metric that picks the winner: its best epoch (min for losses, max for
    /// accuracies).
    pub metric: String,
    pub jobs: usize,
}

/// One trial in `sweep.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub multiplier: f64,
    pub lr: f64,
    /// The run directory, relative to the sweep's.
    pub dir: String,
    pub diverged: bool,
    pub epochs_run: usize,
    /// The last epoch's metrics line.
    #[serde(rename = "final")]
    pub last: Value,
    /// Best val_loss and val_acc over the epochs, with their epochs.
    pub best: Value,
    /// The best value of the sweep's metric (`null` if none was finite).
    pub score: Option<f64>,
    /// The run as read back, for the sweep's report.
    #[serde(skip)]
    pub run: report::RunView,
}

/// `sweep.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub metric: String,
    pub base_lr: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub trials: Vec<Trial>,
    /// Index into `trials` of the best trial that did not diverge.
    pub winner: Option<usize>,
}

/// `x1`, `x0.5`: a trial's folder name.
pub fn trial_name(m: f64) -> String {
    // Short whatever the multiplier: very small or large ones in exponent form.
    if (1e-4..1e6).contains(&m) {
        format!("x{m}")
    } else {
        format!("x{m:e}")
    }
}

/// The sweep's own options: finite multipliers > 0, each once; a known metric.
pub fn check(spec: &Spec) -> Result<(), AppError> {
    if spec.multipliers.is_empty() || spec.multipliers.iter().any(|m| !m.is_finite() || *m <= 0.0) {
        return Err(ConfigError(format!(
            "--multipliers: need finite numbers > 0, got {:?}",
            spec.multipliers
        ))
        .into());
    }
    crate::runlog::check_metric(&spec.metric).map_err(|m| ConfigError(format!("--metric: {m}")))?;
    // Each trial has a folder of its own: two multipliers that are the same number
    // would share one.
    let mut names: Vec<String> = spec.multipliers.iter().map(|&m| trial_name(m)).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ConfigError(format!(
            "--multipliers: {} is given twice",
            w[0].trim_start_matches('x')
        ))
        .into());
    }
    Ok(())
}

/// Runs the trials of `spec` for `cfg` (whose `out` is the sweep's folder) on `data`.
pub fn run(cfg: &TrainConfig, spec: &Spec, data: &Data) -> Result<Outcome, AppError> {
    check(spec)?;
    crate::runlog::check_task_metric(&spec.metric, cfg.task)
        .map_err(|m| ConfigError(format!("--metric: {m}")))?;
    // Policies are checked once here, so a bad one is exit 2 before any trial.
    load_policies(
        &cfg.policy,
        &cfg.param,
        cfg.lr_scaling,
        crate::policy::WatchMode::Off,
    )?;
    // The sweep's own folder: absent or empty, and ours while the trials run.
    let _lock = crate::runlog::claim(&cfg.out, "--out").map_err(ConfigError)?;
    let jobs = spec.jobs.clamp(1, spec.multipliers.len());
    let trial_cfg = |m: f64| {
        let mut c = cfg.clone();
        c.lr = cfg.lr * m;
        c.out = cfg.out.join(trial_name(m));
        // TensorBoard: a folder per sweep, a run per trial in it.
        c.tensorboard = cfg
            .tensorboard
            .as_ref()
            .map(|d| d.join(cfg.out.file_name().unwrap_or_default()));
        c.quiet = true;
        c.watch = crate::policy::WatchMode::Off;
        c.threads = (cfg.threads / jobs).max(1);
        c.stop_on_divergence = true;
        c
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Trial, AppError>>>> =
        Mutex::new((0..spec.multipliers.len()).map(|_| None).collect());
    let work = || {
        loop {
            // After Ctrl-C no trial starts; the running ones checkpoint.
            if crate::interrupt::requested() {
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&m) = spec.multipliers.get(i) else {
                break;
            };
            let c = trial_cfg(m);
            let r = run_trial(&c, m, data, &spec.metric);
            if let Ok(t) = &r {
                crate::runlog::say(&format!(
                    "rudder sweep: {} (lr {}) done: {} epochs, best {} {}{}",
                    t.dir,
                    report::fmt_num(t.lr),
                    t.epochs_run,
                    spec.metric,
                    t.score.map_or("-".into(), |v| format!("{v:.4}")),
                    if t.diverged { ", diverged" } else { "" }
                ));
            }
            results.lock().expect("no trial panics")[i] = Some(r);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            // Policies run on the trial's thread: it gets their stack.
            let started = std::thread::Builder::new()
                .name("rudder-trial".into())
                .stack_size(crate::policy::limits::POLICY_STACK)
                .spawn_scoped(s, work);
            if started.is_err() {
                work();
            }
        }
    });
    if crate::interrupt::requested() {
        return Err(AppError::Interrupted(format!(
            "interrupted; each trial in {} that ran checkpointed where it stopped (a sweep is not resumed: run it again)",
            cfg.out.display()
        )));
    }
    let mut trials = Vec::new();
    for r in results.into_inner().expect("no trial panics") {
        trials.push(r.expect("every trial ran")?);
    }
    let winner = best_of(
        &spec.metric,
        trials
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.diverged)
            .filter_map(|(i, t)| Some((i, t.score?))),
    )
    .map(|(i, _)| i);
    let outcome = Outcome {
        metric: spec.metric.clone(),
        base_lr: cfg.lr,
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        trials,
        winner,
    };
    write_outputs(&cfg.out, &outcome)?;
    Ok(outcome)
}

fn run_trial(cfg: &TrainConfig, m: f64, data: &Data, metric: &str) -> Result<Trial, AppError> {
    let mut policies = load_policies(
        &cfg.policy,
        &cfg.param,
        cfg.lr_scaling,
        crate::policy::WatchMode::Off,
    )?;
    let summary =
        crate::pipeline::with_threads(cfg.threads, || train_on(cfg, data, &mut policies))?;
    let view = report::load_run(&cfg.out).map_err(ConfigError)?;
    let best = |k: &str| {
        best_epoch(&view.history, k).map_or(
            Value::Null,
            |(e, v)| serde_json::json!({"epoch": e, "value": v}),
        )
    };
    Ok(Trial {
        multiplier: m,
        lr: cfg.lr,
        dir: trial_name(m),
        diverged: summary.diverged,
        epochs_run: summary.epochs_run,
        last: view.history.last().cloned().unwrap_or(Value::Null),
        best: {
            let (score, _) = report::score_key(&view.history);
            let mut b = serde_json::Map::new();
            b.insert("val_loss".into(), best("val_loss"));
            b.insert(score.into(), best(score));
            if metric != "val_loss" && metric != score {
                b.insert(metric.into(), best(metric));
            }
            Value::Object(b)
        },
        score: best_epoch(&view.history, metric).map(|(_, v)| v),
        run: report::RunView {
            name: format!(
                "{} lr {}{}",
                trial_name(m),
                report::fmt_num(cfg.lr),
                if summary.diverged { " (diverged)" } else { "" }
            ),
            ..view
        },
    })
}

/// `sweep.json` and `report.html` in the sweep's folder.
fn write_outputs(dir: &Path, o: &Outcome) -> Result<(), AppError> {
    let io = |p: PathBuf| move |e: std::io::Error| ConfigError(format!("{}: {e}", p.display()));
    let mut text = serde_json::to_string_pretty(o).expect("a sweep serialises");
    text.push('\n');
    crate::runlog::write_atomic(&dir.join("sweep.json"), text.as_bytes())
        .map_err(io(dir.join("sweep.json")))?;
    let runs: Vec<report::RunView> = o.trials.iter().map(|t| t.run.clone()).collect();
    let title = format!(
        "rudder sweep: {} epochs, batch {}, base lr {}, winner by {}: {}",
        o.epochs,
        o.batch_size,
        report::fmt_num(o.base_lr),
        o.metric,
        o.winner
            .map_or("none (all diverged)".into(), |w| o.trials[w].dir.clone())
    );
    report::write_page(&dir.join("report.html"), &report::compare(&title, &runs))
        .map_err(io(dir.join("report.html")))?;
    Ok(())
}

/// The table printed on stderr at the end of a sweep.
pub fn table(o: &Outcome) -> String {
    // Classification's accuracy, or a regression's RMSE.
    let lines: Vec<Value> = o.trials.iter().map(|t| t.last.clone()).collect();
    let (score, label) = report::score_key(&lines);
    let mut out = format!(
        "{:<10} {:>10} {:>14} {:>6} {:>14} {:>13}  {}\n",
        "trial",
        "lr",
        format!("best {}", o.metric),
        "epoch",
        "final loss",
        format!("final {label}"),
        "note"
    );
    for (i, t) in o.trials.iter().enumerate() {
        let best_epoch = t
            .best
            .get(&o.metric)
            .and_then(|b| b.get("epoch"))
            .and_then(Value::as_u64)
            // 1-based, as people count epochs (sweep.json keeps the 0-based index).
            .map_or("-".into(), |e| (e + 1).to_string());
        let f = |k: &str| {
            t.last
                .get(k)
                .and_then(Value::as_f64)
                .map_or("-".into(), |v| format!("{v:.4}"))
        };
        out.push_str(&format!(
            "{:<10} {:>10} {:>14} {:>6} {:>14} {:>13}  {}\n",
            t.dir,
            report::fmt_num(t.lr),
            t.score.map_or("-".into(), |v| format!("{v:.4}")),
            best_epoch,
            f("val_loss"),
            f(score),
            if o.winner == Some(i) {
                "winner"
            } else if t.diverged {
                "diverged"
            } else {
                ""
            }
        ));
    }
    out
}
