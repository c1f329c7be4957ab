//! `rudder sweep`: one full run per trial, sharing the loaded data set: an LR
//! multiplier each (same seed, data order, epochs and batch size), or the points of a
//! grid or a random search over options and policy parameters (`plan`, `space`), the
//! LR coupled to the batch size; trials that diverge are stopped and marked; the
//! winner is picked by a metric; one report overlays every trial, and a sweep over
//! batch sizes says how the best LR moved with them (`rule`).

mod page;
mod plan;
mod rule;
mod space;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::Value;

use rudder_core::config::{ConfigError, TrainConfig};
use rudder_core::metric::Metric;
use rudder_core::text::{fmt_metric, plural};
use rudder_nn::data::Data;
use rudder_run::report;
use rudder_train::{load_policies, train_on};

use crate::cli::{SweepOptions, print_json};
use crate::error::AppError;

/// `rudder sweep`.
pub(crate) fn command(o: SweepOptions) -> Result<(), AppError> {
    let mut opts = o.train.clone().options();
    if opts.resume.is_some() {
        return Err(
            ConfigError::refused("--resume", "a sweep cannot be resumed; run it again").into(),
        );
    }
    if opts.out.is_none() {
        opts.out = Some(rudder_core::time::default_run_dir().with_extension("sweep"));
    }
    let base = opts.clone();
    // `-q` (or the config's `quiet`): no trial lines, no table.
    let cfg = super::resolve(opts)?;
    let jobs = o.jobs.max(1);
    let metric = Metric::from_name(&o.metric)
        .map_err(|e| ConfigError::invalid("--metric", e.to_string()))?;
    metric
        .check_task(cfg.task)
        .map_err(|e| ConfigError::invalid("--metric", e.to_string()))?;
    let search = plan::plans(&o, &base, &cfg)?;
    let spec = Spec {
        plans: search.plans,
        searched: search.record,
        metric,
        jobs,
    };
    let device = rudder_train::device(&cfg)?;
    let data = rudder_train::load_data(&cfg, &device)?;
    rudder_core::term::info(&format!(
        "rudder sweep: {} of {} ({}), {} at a time, in {}",
        plural(spec.plans.len() as i64, "trial"),
        plural(cfg.epochs as i64, "epoch"),
        search.summary,
        jobs.min(spec.plans.len()),
        cfg.out.display()
    ));
    let outcome = run(&cfg, &spec, &data)?;
    rudder_core::term::info_text(&table(&outcome));
    if let Some(r) = &outcome.lr_rule {
        rudder_core::term::info_text(&rule::text(r, outcome.metric));
    }
    match outcome.winner {
        Some(w) => {
            let t = &outcome.trials[w];
            rudder_core::term::info(&format!(
                "winner: {} (lr {}) by {}; report: {}",
                t.dir,
                report::fmt_num(t.lr),
                outcome.metric,
                cfg.out.join("report.html").display()
            ));
            print_json(
                serde_json::json!({"multiplier": t.multiplier, "lr": t.lr, "dir": cfg.out.join(&t.dir), "metric": outcome.metric, "score": t.score}),
            );
        }
        None => rudder_core::term::info("no winner: every trial diverged"),
    }
    Ok(())
}

/// What the sweep varies and how it picks.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Every trial, planned.
    pub(crate) plans: Vec<plan::Plan>,
    /// What was searched, as `sweep.json` records it.
    pub(crate) searched: Value,
    /// The metric that picks the winner: its best epoch (min for losses, max for
    /// accuracies).
    pub(crate) metric: Metric,
    /// Trials run at once.
    pub(crate) jobs: usize,
}

/// One trial in `sweep.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Trial {
    /// What the search set for it (`{}` for a sweep of the LR alone).
    pub(crate) settings: Value,
    /// The same, for people (`lr 0.1, momentum 0.9`).
    #[serde(skip)]
    pub(crate) described: String,
    pub(crate) multiplier: f64,
    pub(crate) lr: f64,
    /// The run directory, relative to the sweep's.
    pub(crate) dir: String,
    pub(crate) diverged: bool,
    /// Why it stopped before its planned epochs (a policy, `rudder ctl`), if it did.
    pub(crate) stop_reason: Option<String>,
    pub(crate) epochs_run: usize,
    /// The last epoch's metrics line.
    #[serde(rename = "final")]
    pub(crate) last: Value,
    /// Best val_loss and val_acc over the epochs, with their epochs.
    pub(crate) best: Value,
    /// The best value of the sweep's metric (`null` if none was finite).
    pub(crate) score: Option<f64>,
    /// The run as read back, for the sweep's report.
    #[serde(skip)]
    pub(crate) run: report::RunView,
}

/// `sweep.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Outcome {
    pub(crate) metric: Metric,
    pub(crate) base_lr: f64,
    pub(crate) epochs: usize,
    pub(crate) batch_size: usize,
    pub(crate) seed: u64,
    /// How a trial's LR followed its batch size.
    pub(crate) lr_scaling: rudder_core::Rescale,
    /// The grid, or the samples and their space, and the multipliers.
    pub(crate) searched: Value,
    pub(crate) trials: Vec<Trial>,
    /// Index into `trials` of the best trial that did not diverge.
    pub(crate) winner: Option<usize>,
    /// What steered every trial (they build the same policies from the same
    /// files): each policy's files with their hashes and its plugin's origin, as a
    /// trial's `config.json` has it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) provenance: Vec<serde_json::Value>,
    /// With several batch sizes: the best LR at each, against the rules' predictions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lr_rule: Option<rule::Rule>,
}

/// `x1`, `x0.5`: a trial's folder name.
pub(crate) fn trial_name(m: f64) -> String {
    // Short whatever the multiplier: very small or large ones in exponent form.
    if (1e-4..1e6).contains(&m) {
        format!("x{m}")
    } else {
        format!("x{m:e}")
    }
}

/// Runs the trials of `spec` for `cfg` (whose `out` is the sweep's folder) on `data`.
fn run(cfg: &TrainConfig, spec: &Spec, data: &Data) -> Result<Outcome, AppError> {
    // The sweep's own folder: absent or empty, and ours while the trials run.
    let _lock = rudder_run::lock::claim(&cfg.out, "--out").map_err(rudder_train::Error::from)?;
    let results = run_trials(cfg, spec, data);
    if rudder_core::interrupt::requested() {
        return Err(AppError::Interrupted(format!(
            "interrupted; each trial in {} that ran checkpointed where it stopped (a sweep is not resumed: run it again)",
            cfg.out.display()
        )));
    }
    let mut trials = Vec::new();
    for r in results.into_inner().expect("no trial panics") {
        trials.push(r.expect("every trial ran")?);
    }
    let winner = spec
        .metric
        .best_of(
            trials
                .iter()
                .enumerate()
                .filter(|(_, t)| !t.diverged)
                .filter_map(|(i, t)| Some((i, t.score?))),
        )
        .map(|(i, _)| i);
    let outcome = Outcome {
        metric: spec.metric,
        base_lr: cfg.lr,
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        lr_scaling: cfg.lr_scaling,
        searched: spec.searched.clone(),
        lr_rule: None,
        provenance: trials
            .first()
            .and_then(|t| {
                let text =
                    std::fs::read_to_string(cfg.out.join(&t.dir).join("config.json")).ok()?;
                let c: serde_json::Value = serde_json::from_str(&text).ok()?;
                c.get("provenance")?.as_array().cloned()
            })
            .unwrap_or_default(),
        trials,
        winner,
    };
    let outcome = Outcome {
        lr_rule: rule::of(&outcome),
        ..outcome
    };
    write_outputs(&cfg.out, &outcome)?;
    Ok(outcome)
}

/// Every trial of `spec`, `spec.jobs` at a time on threads of their own, each
/// trial's result in its multiplier's place (`None`: not started, after Ctrl-C).
fn run_trials(
    cfg: &TrainConfig,
    spec: &Spec,
    data: &Data,
) -> Mutex<Vec<Option<Result<Trial, AppError>>>> {
    let jobs = spec.jobs.clamp(1, spec.plans.len());
    let trial_cfg = |p: &plan::Plan| {
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
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Trial, AppError>>>> =
        Mutex::new((0..spec.plans.len()).map(|_| None).collect());
    let work = || {
        loop {
            // After Ctrl-C no trial starts; the running ones checkpoint.
            if rudder_core::interrupt::requested() {
                break;
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(p) = spec.plans.get(i) else {
                break;
            };
            let c = trial_cfg(p);
            let r = run_trial(&c, p, data, spec.metric);
            if let Ok(t) = &r {
                rudder_core::term::info(&format!(
                    "rudder sweep: {} (lr {}) done: {}, best {} {}{}",
                    t.dir,
                    report::fmt_num(t.lr),
                    plural(t.epochs_run as i64, "epoch"),
                    spec.metric,
                    t.score.map_or("-".into(), fmt_metric),
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
                .stack_size(rudder_policy::limits::POLICY_STACK)
                .spawn_scoped(s, work);
            if started.is_err() {
                work();
            }
        }
    });
    results
}

fn run_trial(
    cfg: &TrainConfig,
    p: &plan::Plan,
    data: &Data,
    metric: Metric,
) -> Result<Trial, AppError> {
    let mut policies = load_policies(
        &cfg.policy,
        &cfg.param,
        cfg.lr_scaling,
        rudder_policy::WatchMode::Off,
    )?;
    let summary = rudder_train::with_threads(cfg.threads, || train_on(cfg, data, &mut policies))?;
    let view = report::load_run(&cfg.out)
        .map_err(|e| ConfigError::file(format!("--out {}", cfg.out.display()), e))?;
    let best = |k: Metric| {
        k.best_epoch(&view.history).map_or(
            Value::Null,
            |(e, v)| serde_json::json!({"epoch": e, "value": v}),
        )
    };
    Ok(Trial {
        settings: space::settings_json(&p.settings),
        described: space::describe(&p.settings),
        multiplier: p.multiplier,
        lr: cfg.lr,
        dir: p.name.clone(),
        diverged: summary.diverged,
        stop_reason: summary.stop_reason.clone(),
        epochs_run: summary.epochs_run,
        last: view.history.last().cloned().unwrap_or(Value::Null),
        best: {
            let (score, _) = report::score_key(&view.history);
            let mut b = serde_json::Map::new();
            b.insert("val_loss".into(), best(Metric::ValLoss));
            b.insert(score.name().into(), best(score));
            if metric != Metric::ValLoss && metric != score {
                b.insert(metric.name().into(), best(metric));
            }
            Value::Object(b)
        },
        score: metric.best_epoch(&view.history).map(|(_, v)| v),
        run: report::RunView {
            name: format!(
                "{} lr {}{}",
                p.name,
                report::fmt_num(cfg.lr),
                if summary.diverged { " (diverged)" } else { "" }
            ),
            ..view
        },
    })
}

/// `sweep.json` and `report.html` in the sweep's folder.
fn write_outputs(dir: &Path, o: &Outcome) -> Result<(), AppError> {
    let io = |p: PathBuf| move |e: std::io::Error| ConfigError::file(p.display().to_string(), e);
    let mut text = serde_json::to_string_pretty(o).expect("a sweep serialises");
    text.push('\n');
    rudder_run::files::write_atomic(&dir.join("sweep.json"), text.as_bytes())
        .map_err(io(dir.join("sweep.json")))?;
    let runs: Vec<report::RunView> = by_lr(o).map(|(_, t)| t.run.clone()).collect();
    let title = format!(
        "rudder sweep: {}, batch {}, base lr {}, winner by {}: {}",
        plural(o.epochs as i64, "epoch"),
        o.batch_size,
        report::fmt_num(o.base_lr),
        o.metric,
        o.winner
            .map_or("none (all diverged)".into(), |w| o.trials[w].dir.clone())
    );
    let page = report::compare_with(&title, &runs, &page::extra(o));
    report::write_page(&dir.join("report.html"), &page).map_err(io(dir.join("report.html")))?;
    Ok(())
}

/// The trials (with their index in `o.trials`) from the smallest LR to the largest,
/// as the table and the report list them (sweep.json keeps the multipliers' order).
fn by_lr(o: &Outcome) -> impl Iterator<Item = (usize, &Trial)> {
    // Trials of the same settings stay together, in the grid's order.
    let group = |t: &Trial| {
        o.trials
            .iter()
            .position(|u| u.settings == t.settings)
            .unwrap_or(0)
    };
    let mut order: Vec<(usize, &Trial)> = o.trials.iter().enumerate().collect();
    order.sort_by(|a, b| group(a.1).cmp(&group(b.1)).then(a.1.lr.total_cmp(&b.1.lr)));
    order.into_iter()
}

/// The table printed on stderr at the end of a sweep.
fn table(o: &Outcome) -> String {
    // Classification's accuracy, or a regression's RMSE.
    let lines: Vec<Value> = o.trials.iter().map(|t| t.last.clone()).collect();
    let (score, label) = report::score_key(&lines);
    let w = o
        .trials
        .iter()
        .map(|t| t.dir.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let sampled = o.searched.get("samples").is_some();
    let mut out = format!(
        "{:<w$} {:>10} {:>14} {:>6} {:>14} {:>13}  {}\n",
        "trial",
        "lr",
        format!("best {}", o.metric),
        "epoch",
        "final loss",
        format!("final {label}"),
        "note"
    );
    for (i, t) in by_lr(o) {
        let best_epoch = t
            .best
            .get(o.metric.name())
            .and_then(|b| b.get("epoch"))
            .and_then(Value::as_u64)
            // 1-based, as people count epochs (sweep.json keeps the 0-based index).
            .map_or("-".into(), |e| (e + 1).to_string());
        let f = |k: &str| {
            t.last
                .get(k)
                .and_then(Value::as_f64)
                .map_or("-".into(), fmt_metric)
        };
        let settings = if sampled {
            format!("  {}", t.described)
        } else {
            String::new()
        };
        let line = format!(
            "{:<w$} {:>10} {:>14} {:>6} {:>14} {:>13}  {:<8}{settings}\n",
            t.dir,
            report::fmt_num(t.lr),
            t.score.map_or("-".into(), fmt_metric),
            best_epoch,
            f("val_loss"),
            f(score.name()),
            if o.winner == Some(i) {
                "winner"
            } else if t.diverged {
                "diverged"
            } else if t.stop_reason.is_some() {
                "stopped"
            } else {
                ""
            }
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
