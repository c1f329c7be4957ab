//! `rudder sweep`: one full run per trial, sharing the loaded data set: an LR
//! multiplier each (same seed, data order, epochs and batch size), or the points of a
//! grid or a random search over options and policy parameters (`plan`, `space`), the
//! LR coupled to the batch size; trials that diverge are stopped and marked; the
//! winner is picked by a metric; one report overlays every trial, and a sweep over
//! batch sizes says how the best LR moved with them (`rule`).

mod attempts;
mod console;
mod coord;
mod copy;
mod decide;
mod lineage;
mod page;
mod plan;
mod record;
mod reporter;
mod resume;
mod rule;
mod slurm;
mod space;
mod table;
mod trials;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use rudder_core::config::{ConfigError, TrainConfig};
use rudder_core::metric::Metric;
use rudder_core::text::plural;
use rudder_nn::data::Data;
use rudder_run::report;

use crate::cli::{SweepOptions, print_json};
use crate::error::AppError;

pub(crate) use slurm::task;

/// `rudder sweep`, or `rudder sweep --resume DIR`.
pub(crate) fn command(o: SweepOptions) -> Result<(), AppError> {
    let Some(dir) = o.train.resume.clone() else {
        // What `--resume` replans from: the arguments after `sweep`.
        let all: Vec<String> = std::env::args().collect();
        let args = all
            .iter()
            .position(|a| a == "sweep")
            .map_or(Vec::new(), |i| all[i + 1..].to_vec());
        return start(o, args, None);
    };
    let given: Vec<String> = std::env::args()
        .skip_while(|a| a != "sweep")
        .skip(1)
        .filter(|a| a.starts_with('-'))
        .filter(|a| !a.starts_with("--resume") && !a.starts_with("-q") && !a.starts_with("--quiet"))
        .collect();
    if let Some(a) = given.first() {
        return Err(ConfigError::refused(
            rudder_core::text::clip(a),
            "a resumed sweep takes its options from its sweep.json; give only --resume DIR",
        )
        .into());
    }
    let (mut resumed, saved) = resume::options(&dir)?;
    resumed.train.quiet = o.train.quiet.or(resumed.train.quiet);
    // A detached sweep is followed from here on.
    resumed.detach = false;
    resumed.dry_run = false;
    let args = saved["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    start(resumed, args, Some(saved))
}

/// The sweep of `o` (whose arguments were `args`), from scratch or from `saved`.
fn start(o: SweepOptions, args: Vec<String>, saved: Option<Value>) -> Result<(), AppError> {
    let mut opts = o.train.clone().options();
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
    let scheduler = scheduler(&o)?;
    let launch = slurm::launch(&o)?;
    let spec = Spec {
        plans: search.plans,
        searched: search.record,
        metric,
        jobs,
        base: base.clone(),
    };
    if let Some(l) = launch.as_ref().filter(|l| l.dry_run) {
        rudder_core::term::out_text(&slurm::dry_run(&cfg, l, spec.plans.len(), jobs));
        return Ok(());
    }
    // On Slurm each task loads its own data.
    let data = match &launch {
        None => {
            let device = rudder_train::device(&cfg)?;
            Some(rudder_train::load_data(&cfg, &device)?)
        }
        Some(_) => None,
    };
    rudder_core::term::info(&format!(
        "rudder sweep: {} of {} ({}), {} at a time{}, in {}",
        plural(spec.plans.len() as i64, "trial"),
        plural(cfg.epochs as i64, "epoch"),
        search.summary,
        jobs.min(spec.plans.len()),
        if launch.is_some() { " on Slurm" } else { "" },
        cfg.out.display()
    ));
    let how = How {
        data: data.as_ref(),
        launch: launch.as_ref(),
    };
    let Some(outcome) = run(&cfg, &spec, scheduler, how, Resume { args, saved })? else {
        rudder_core::term::info(&format!(
            "rudder sweep: detached; its tasks run in Slurm: rudder sweep --resume {} follows them",
            cfg.out.display()
        ));
        return Ok(());
    };
    rudder_core::term::info_text(&table::text(&outcome));
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
    /// The command's options (what a scheduler's new trials start from).
    pub(crate) base: rudder_core::TrainOptions,
}

/// Where the trials run: here on `data`, or on Slurm.
#[derive(Clone, Copy)]
struct How<'a> {
    data: Option<&'a Data>,
    launch: Option<&'a slurm::Launch>,
}

/// What a sweep records for `--resume`, and what it resumes from.
struct Resume {
    args: Vec<String>,
    saved: Option<Value>,
}

/// `--scheduler` with its `--scheduler-param`s, loaded (`none`: no scheduler).
fn scheduler(o: &SweepOptions) -> Result<Option<rudder_policy::sweep::Scheduler>, AppError> {
    if o.scheduler == "none" {
        if let Some(p) = o.scheduler_param.first() {
            return Err(ConfigError::invalid(
                format!("--scheduler-param {}", rudder_core::text::clip(p)),
                "needs a --scheduler (sweep/asha, sweep/hyperband, sweep/median, sweep/pbt or a file)",
            )
            .into());
        }
        return Ok(None);
    }
    let params: Vec<rudder_policy::Param> = o
        .scheduler_param
        .iter()
        .map(|p| {
            p.parse::<rudder_policy::Param>().map_err(|e| {
                ConfigError::invalid(format!("--scheduler-param {:?}", e.input()), e.reason())
            })
        })
        .collect::<Result<_, _>>()?;
    let search = rudder_policy::SearchPath::from_env()
        .map_err(|e| ConfigError::invalid("--scheduler", e.to_string()))?;
    rudder_policy::sweep::Scheduler::load(&o.scheduler, &params, &search)
        .map(Some)
        .map_err(|e| {
            ConfigError::invalid(
                format!("--scheduler {}", rudder_core::text::clip(&o.scheduler)),
                e.to_string(),
            )
            .into()
        })
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
    /// Why it stopped before its planned epochs (a policy, `rudder ctl`, the
    /// scheduler), if it did.
    pub(crate) stop_reason: Option<String>,
    /// Where it ended: `done`, `stopped` (by the scheduler), `paused`.
    pub(crate) status: rudder_policy::sweep::Status,
    /// The checkpoints it copied from others (PBT's exploits), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) lineage: Vec<Value>,
    /// Ended by Ctrl-C or SIGTERM mid-run (it resumes with the sweep).
    #[serde(skip)]
    pub(crate) interrupted: bool,
    /// Its tasks on a cluster: task index, attempts (`--launcher slurm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slurm: Option<Value>,
    /// Its trainer settings as planned (what its lineage starts from).
    #[serde(skip)]
    pub(crate) initial: serde_json::Map<String, Value>,
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
    /// `done` (while the sweep runs, `running`: what `--resume` reads).
    pub(crate) state: &'static str,
    /// The command's arguments after `sweep`.
    pub(crate) args: Vec<String>,
    /// Where its trials ran: `local` or `slurm`.
    pub(crate) launcher: &'static str,
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
    /// The scheduler, its parameters and its `this` at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scheduler: Option<Value>,
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

/// Runs the trials of `spec` for `cfg` (whose `out` is the sweep's folder), here or
/// on Slurm, under `scheduler` if any; `None` when detached from its Slurm tasks.
fn run(
    cfg: &TrainConfig,
    spec: &Spec,
    scheduler: Option<rudder_policy::sweep::Scheduler>,
    how: How<'_>,
    resume: Resume,
) -> Result<Option<Outcome>, AppError> {
    // The sweep's own folder: absent or empty (or the one resumed), and ours while
    // the trials run.
    let _lock = match resume.saved {
        Some(_) => rudder_run::lock::Lock::take(&cfg.out, "--resume"),
        None => rudder_run::lock::claim(&cfg.out, "--out"),
    }
    .map_err(rudder_train::Error::from)?;
    let mut coord = coord::Coordinator::new(
        cfg,
        &spec.base,
        spec.plans.clone(),
        scheduler,
        spec.metric,
        spec.jobs,
    );
    coord.args = resume.args.clone();
    coord.slurm = how.launch.is_some();
    if let Some(saved) = &resume.saved {
        resume::restore(&coord, saved)?;
    }
    coord.save(&coord.lock());
    match (how.launch, how.data) {
        (Some(l), _) => {
            if !slurm::run_all(&coord, l, resume.saved.is_none())? {
                return Ok(None);
            }
        }
        (None, Some(data)) => trials::run_all(cfg, &coord, data),
        (None, None) => unreachable!("a local sweep has its data"),
    }
    if rudder_core::interrupt::requested() {
        return Err(AppError::Interrupted(format!(
            "interrupted; each trial in {} that ran checkpointed where it stopped: rudder sweep --resume {} goes on",
            cfg.out.display(),
            cfg.out.display()
        )));
    }
    let st = coord.state.into_inner().unwrap_or_else(|e| e.into_inner());
    let outcome = outcome(cfg, spec, st, resume.args)?;
    write_outputs(&cfg.out, &outcome)?;
    Ok(Some(outcome))
}

/// The sweep's record once its trials are done: `st`'s trials and scheduler, the
/// winner, the batch-size rule.
fn outcome(
    cfg: &TrainConfig,
    spec: &Spec,
    st: coord::State,
    args: Vec<String>,
) -> Result<Outcome, AppError> {
    let mut trials = Vec::new();
    for slot in st.slots {
        let Some(r) = slot.result else { continue };
        let mut t = r?;
        t.status = slot.view.status;
        t.lineage = slot.lineage;
        t.slurm = slot.tasks.as_ref().map(attempts::Tasks::json);
        t.initial = coord::settings_of(&slot.plan);
        trials.push(t);
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
        state: "done",
        launcher: if trials.iter().any(|t| t.slurm.is_some()) {
            "slurm"
        } else {
            "local"
        },
        args,
        scheduler: st.scheduler.as_ref().map(|s| {
            serde_json::json!({"name": s.name(), "file": s.file(), "version": s.version(), "params": s.params(), "this": s.this(), "reports": st.reports})
        }),
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
    Ok(Outcome {
        lr_rule: rule::of(&outcome),
        ..outcome
    })
}

/// `sweep.json` and `report.html` in the sweep's folder.
fn write_outputs(dir: &Path, o: &Outcome) -> Result<(), AppError> {
    let io = |p: PathBuf| move |e: std::io::Error| ConfigError::file(p.display().to_string(), e);
    let mut text = serde_json::to_string_pretty(o).expect("a sweep serialises");
    text.push('\n');
    rudder_run::files::write_atomic(&dir.join("sweep.json"), text.as_bytes())
        .map_err(io(dir.join("sweep.json")))?;
    let runs: Vec<report::RunView> = table::by_lr(o)
        .filter(|(_, t)| t.epochs_run > 0)
        .map(|(_, t)| t.run.clone())
        .collect();
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
    // After exploits (PBT): the winner's lineage as a policy anyone can rerun.
    if let Some(w) = o
        .winner
        .filter(|_| o.trials.iter().any(|t| !t.lineage.is_empty()))
    {
        let file = dir.join("best_schedule.rhai");
        let text = lineage::policy(&o.trials, w, &dir.display().to_string());
        rudder_run::files::write_atomic(&file, text.as_bytes()).map_err(io(file.clone()))?;
        rudder_core::term::info(&format!(
            "rudder sweep: the winner's schedule, as a policy: {}",
            file.display()
        ));
    }
    Ok(())
}
