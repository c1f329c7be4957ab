//! A run on loaded data: a new run claims its folder, a resumed one takes the
//! folder's lock, validates its checkpoints and cuts its logs back to the one it
//! continues from; then the trainer runs, and the run says how it ended. A rank
//! other than 0 follows rank 0 and writes nothing.

use rudder_core::Task;
use rudder_core::config::{ConfigError, TrainConfig};
use rudder_core::term::say;
use rudder_core::text::{fmt_metric, fmt_num};
use rudder_nn::data::{Data, Source};
use rudder_policy::Controller;
use rudder_run::checkpoint::Loaded;
use rudder_run::log::RunLog;

use crate::Error;
use crate::trainer::{Learner, Summary, TrainError, Trainer};

/// Trains as configured by `cfg` on already loaded `data` (a sweep's trials share
/// theirs), in the caller's thread pool (see [`crate::with_threads`]).
pub fn train_on(
    cfg: &TrainConfig,
    data: &Data,
    controller: &mut dyn Controller,
) -> Result<Summary, Error> {
    let (learner, param_count) = crate::build_learner(cfg, data)?;
    train_learner(cfg, data, learner, param_count, controller)
}

/// Trains `learner` (its model has `param_count` parameters) as configured by `cfg`
/// on `data`: the run folder, a resume, the trainer; what [`train_on`] and
/// [`crate::fit`] share.
pub fn train_learner(
    cfg: &TrainConfig,
    data: &Data,
    learner: Box<dyn Learner>,
    param_count: usize,
    controller: &mut dyn Controller,
) -> Result<Summary, Error> {
    let world = crate::dist::world();
    if world.rank() != 0 {
        return follow(cfg, data, learner, param_count, controller);
    }
    // What steers the run, recorded in config.json and run_start; a resume says
    // which locked plugins changed since the run's last start.
    let provenance: Vec<serde_json::Value> = controller
        .provenance()
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    let plugin_notes = plugin_changes(cfg.provenance.as_deref().unwrap_or(&[]), &provenance);
    let mut with_provenance = cfg.clone();
    with_provenance.provenance = Some(provenance);
    let cfg = &with_provenance;
    let (log, resume) = open_log(cfg, data, learner.as_ref())?;
    if world.size() > 1 {
        // The other ranks read the checkpoint this run resumes from (or none).
        let from = match &resume {
            Some((Some(l), _)) => Some(l.dir.clone()),
            _ => None,
        };
        crate::dist::share(world, Some(from)).map_err(TrainError::Rank)?;
    }
    say_start(cfg, data, param_count);
    let mut trainer = Trainer::new(cfg, data, learner, param_count, log);
    match resume {
        Some((Some(loaded), skipped)) => {
            trainer.resume_from(loaded, controller)?;
            trainer.note_skipped(skipped);
            trainer.note(plugin_notes);
        }
        Some((None, _)) => trainer.restart(),
        None => {}
    }
    if let Some(tb) = &cfg.tensorboard {
        let name = cfg.out.file_name().unwrap_or_default().to_string_lossy();
        trainer = trainer.with_tensorboard(tb, &name, &controller.sources());
    }
    let summary = trainer.run(controller)?;
    if !cfg.quiet && !summary.interrupted {
        say_done(cfg, &summary);
    }
    Ok(summary)
}

/// A note per locked plugin whose version, commit or files differ between a run's
/// recorded provenance and this start's (`plugin goyal: 1.0.0 abc -> 1.1.0 def`).
fn plugin_changes(before: &[serde_json::Value], now: &[serde_json::Value]) -> Vec<String> {
    let plugins = |list: &[serde_json::Value]| {
        list.iter()
            .filter_map(|p| p.get("plugin").cloned())
            .filter_map(|o| Some((o.get("name")?.as_str()?.to_string(), o)))
            .collect::<std::collections::BTreeMap<String, serde_json::Value>>()
    };
    let (old, new) = (plugins(before), plugins(now));
    let at = |o: &serde_json::Value| {
        let commit = o
            .get("commit")
            .and_then(|c| c.as_str())
            .map(|c| &c[..c.len().min(12)]);
        format!(
            "{} {}",
            o.get("version").and_then(|v| v.as_str()).unwrap_or("?"),
            commit.unwrap_or_else(|| o.get("checksum").and_then(|c| c.as_str()).unwrap_or("?"))
        )
    };
    let mut notes = Vec::new();
    for (name, o) in &new {
        match old.get(name) {
            Some(b) if b.get("checksum") == o.get("checksum") => {}
            Some(b) => notes.push(format!("plugin {name} changed: {} -> {}", at(b), at(o))),
            None if !old.is_empty() => notes.push(format!("plugin {name} is new: {}", at(o))),
            None => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        notes.push(format!("plugin {name} is no longer used"));
    }
    notes
}

/// A resume's checkpoint (`None`: the run had none yet) and the notes on the newer
/// ones that did not validate.
type Resume = Option<(Option<Loaded>, Vec<String>)>;

/// The run folder's logs, its `config.json` written: a new run claims `cfg.out`; a
/// resume takes the folder's lock, checks the data is the run's and cuts the logs
/// back to its checkpoint.
fn open_log(
    cfg: &TrainConfig,
    data: &Data,
    learner: &dyn Learner,
) -> Result<(RunLog, Resume), Error> {
    let out_fault =
        |e: std::io::Error| ConfigError::file(format!("--out {}", cfg.out.display()), e);
    match &cfg.resume {
        Some(dir) => {
            if let Some(sha) = &cfg.data_sha256
                && *sha != data.fingerprint
            {
                return Err(ConfigError::refused(
                    format!("--resume {}", dir.display()),
                    format!(
                        "the data ({}) is not the data this run trained on (its SHA-256 differs); a resumed run keeps its data",
                        rudder_core::text::clip(&Source::of(cfg).name())
                    ),
                )
                .into());
            }
            let mut r = open_resumed(cfg, dir, learner, data.train.len())?;
            // A run from before the fingerprint adopts its data's now.
            r.config
                .data_sha256
                .get_or_insert_with(|| data.fingerprint.clone());
            if r.config.model_sha256.is_none()
                && let Some((_, sha)) = rudder_nn::model::Arch::file_record(cfg)?
            {
                r.config.model_sha256 = Some(sha);
            }
            rudder_run::files::write_config(&cfg.out, &r.config).map_err(out_fault)?;
            Ok((r.log, Some((r.loaded, r.skipped))))
        }
        None => {
            let lock = rudder_run::lock::claim(&cfg.out, "--out")?;
            let mut written = cfg.clone();
            written.data_sha256 = Some(data.fingerprint.clone());
            if let Some((real, sha)) = rudder_nn::model::Arch::file_record(cfg)? {
                written.model = rudder_core::ModelKind::File(real);
                written.model_sha256 = Some(sha);
            }
            rudder_run::files::write_config(&cfg.out, &written).map_err(out_fault)?;
            let log = RunLog::create(&cfg.out, cfg.log_steps, lock).map_err(out_fault)?;
            Ok((log, None))
        }
    }
}

/// The run's first lines on stderr: what trains on what, and a batch size rudder
/// had to lower (said quiet or not).
fn say_start(cfg: &TrainConfig, data: &Data, param_count: usize) {
    let world = crate::dist::world();
    if !cfg.quiet {
        let ranks = match world.size() {
            1 => String::new(),
            n => format!(" x {n} ranks ({})", world.name()),
        };
        say(&format!(
            "rudder: {} on {} ({} train / {} val, {} classes), {} parameters{ranks}, run dir {}",
            cfg.model.name(),
            Source::of(cfg).name(),
            data.train.len(),
            data.val.len(),
            data.classes,
            param_count,
            cfg.out.display()
        ));
    }
    let asked = cfg.overrides.batch_size.unwrap_or(cfg.batch_size);
    if asked > data.train.len() {
        say(&format!(
            "rudder: --batch-size {asked} is more than the {} training examples; using {}",
            data.train.len(),
            data.train.len()
        ));
    }
}

/// The run's last line: the scores of the weights it ends with (a restored epoch's,
/// when a rollback after the last epoch brought its weights back).
fn say_done(cfg: &TrainConfig, summary: &Summary) {
    let Some(last) = &summary.last else {
        return;
    };
    let (what, line) = match &summary.restored {
        Some((e, r)) => (
            format!("; weights of epoch {} (restored)", e + 1),
            r.clone(),
        ),
        None => (String::new(), last.to_value()),
    };
    let get = |k: &str| line[k].as_f64().unwrap_or(f64::NAN);
    let scores = match cfg.task {
        Task::Classification => format!("val_acc {}", fmt_metric(get("val_acc"))),
        Task::Regression => format!(
            "val_rmse {}, val_mae {}, val_r2 {}",
            fmt_num(get("val_rmse")),
            fmt_num(get("val_mae")),
            fmt_metric(get("val_r2"))
        ),
    };
    say(&format!(
        "done: {} epoch{}, {} steps{what}: {scores}, val_loss {}; report: {}",
        summary.epochs_run,
        if summary.epochs_run == 1 { "" } else { "s" },
        summary.steps,
        fmt_metric(get("val_loss")),
        cfg.out.join("report.html").display()
    ));
}

/// A resume's first steps, before anything of the run is changed: takes the run's
/// lock, picks the newest checkpoint that validates whole (or refuses, naming every
/// checkpoint, when none does), checks it fits the model, then cuts the logs back to
/// it. Returns the logs, the checkpoint (`None`: the run had none yet and starts
/// over) and the configuration to write, with this resume appended to `resumes`.
fn open_resumed(
    cfg: &TrainConfig,
    dir: &std::path::Path,
    learner: &dyn Learner,
    train_len: usize,
) -> Result<Resumed, Error> {
    let flag = format!("--resume {}", dir.display());
    let fault = |e: std::io::Error| ConfigError::file(flag.clone(), e);
    let lock = rudder_run::lock::Lock::take(dir, "--resume")?;
    let root = dir.join("checkpoints");
    rudder_run::checkpoint::clean(&root).map_err(fault)?;
    let found = rudder_run::checkpoint::newest_valid(&root, dir)?;
    let (loaded, notes) = match found {
        Some((l, notes)) => {
            // Everything that could refuse the resume, before anything is changed.
            refuse_finished(cfg, dir, &flag, &l)?;
            rudder_run::checkpoint::check_model(learner.model(), &l.model, &l.dir)?;
            crate::trainer::fits(&l, cfg.seed, train_len)?;
            (Some(l), notes)
        }
        None => {
            // No checkpoint at all: only a run that finished no epoch may start over.
            let done = rudder_run::files::read_jsonl(&dir.join("metrics.jsonl"))
                .map_err(|e| ConfigError::file(flag.clone(), e))?
                .len();
            if done > 0 {
                return Err(ConfigError::refused(
                    flag,
                    format!(
                        "{} in metrics.jsonl but no checkpoint to continue from; start a new run (--out) or restore checkpoints/",
                        rudder_core::text::plural(done as i64, "finished epoch")
                    ),
                )
                .into());
            }
            (None, Vec::new())
        }
    };
    let sizes = loaded.as_ref().map(|l| l.state.logs).unwrap_or_default();
    let log = RunLog::reopen(dir, cfg.log_steps, sizes, lock).map_err(fault)?;
    let mut written = cfg.clone();
    let (step, epoch) = loaded
        .as_ref()
        .map_or((0, 0), |l| (l.state.step, l.state.epoch));
    let mut record = serde_json::Map::new();
    record.insert("time".into(), rudder_core::time::now_iso().into());
    record.insert("step".into(), step.into());
    record.insert("epoch".into(), epoch.into());
    record.insert(
        "checkpoint".into(),
        loaded.as_ref().map_or(serde_json::Value::Null, |l| {
            l.dir
                .strip_prefix(dir)
                .unwrap_or(&l.dir)
                .display()
                .to_string()
                .into()
        }),
    );
    record.insert("options".into(), cfg.overrides.given.clone().into());
    if !notes.is_empty() {
        record.insert("skipped".into(), notes.clone().into());
    }
    written.resumes.push(record.into());
    Ok(Resumed {
        log,
        loaded,
        config: written,
        skipped: notes,
    })
}

/// Refuses to resume a run that ended (its last event a `run_end` not caused by a
/// signal), unless `--epochs` asks for more epochs than it finished: resuming it
/// would otherwise do nothing.
fn refuse_finished(
    cfg: &TrainConfig,
    dir: &std::path::Path,
    flag: &str,
    l: &Loaded,
) -> Result<(), ConfigError> {
    let events = rudder_run::files::read_jsonl(&dir.join("events.jsonl")).unwrap_or_default();
    let Some(end) = events.last().filter(|e| e["kind"] == "run_end") else {
        return Ok(());
    };
    let reason = end["reason"].as_str();
    let done = l.state.epoch;
    if reason == Some("interrupted") || l.state.partial.is_some() {
        return Ok(());
    }
    if cfg.overrides.epochs.is_some_and(|e| e > done) {
        return Ok(());
    }
    let how = match reason {
        Some(r) => format!("stopped after epoch {done}: {}", rudder_core::text::clip(r)),
        None => format!(
            "finished all {}",
            rudder_core::text::plural(done as i64, "epoch")
        ),
    };
    Err(ConfigError::refused(
        flag,
        format!(
            "the run {how}, so there is nothing to resume; to train it longer, resume with --epochs N (N > {done})"
        ),
    ))
}

/// What [`open_resumed`] found.
struct Resumed {
    log: RunLog,
    loaded: Option<Loaded>,
    config: TrainConfig,
    skipped: Vec<String>,
}

/// A rank other than 0 of a many-process run: the same model and data order, the
/// checkpoint rank 0 resumes from (read from the run folder: several machines need it
/// on a shared file system), rank 0's decisions; it writes nothing.
fn follow(
    cfg: &TrainConfig,
    data: &Data,
    learner: Box<dyn Learner>,
    param_count: usize,
    controller: &mut dyn Controller,
) -> Result<Summary, Error> {
    let world = crate::dist::world();
    let from: Option<std::path::PathBuf> = crate::dist::share(world, None)
        .map_err(TrainError::Rank)?
        .flatten();
    let mut trainer = Trainer::new(cfg, data, learner, param_count, RunLog::silent(&cfg.out));
    match from {
        Some(dir) => {
            let loaded = rudder_run::checkpoint::read(&dir)?;
            trainer.resume_from(loaded, controller)?;
        }
        None if cfg.resume.is_some() => trainer.restart(),
        None => {}
    }
    Ok(trainer.run(controller)?)
}
