//! From a configuration to a finished run: resolve the options (command line over
//! `--config`, or a run's own `config.json` on `--resume`), load the data, build the
//! model and learner, load the policies, and hand them to the trainer. `rudder train`,
//! `sweep` and `lr-find` all go through here.

use candle_core::Device;

use crate::config::{ConfigError, Kernels, TrainConfig, TrainOptions, parse_device};
use crate::data::DataError;
use crate::engine::Net;
use crate::policy::{Controller, Rescale};
use crate::policy::{LoadError, LoadErrorKind, Messages, Param, Policies, WatchMode};
use crate::runlog::RunLog;
use crate::train::{Engine, Graph, Learner, Summary, TrainError, Trainer};
use crate::{data, model, optim};

/// Any failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("{0} policy test case(s) failed")]
    TestsFailed(usize),
    /// SIGINT or SIGTERM: the message says where and how to go on.
    #[error("{0}")]
    Interrupted(String),
}

impl AppError {
    /// 2 for bad usage, configuration, data or checkpoint; 1 for a failure during
    /// the run.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Data(_) | AppError::Checkpoint(_) => 2,
            AppError::Train(_) | AppError::TestsFailed(_) => 1,
            AppError::Interrupted(_) => crate::interrupt::EXIT_CODE,
        }
    }
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
) -> Result<Resumed, AppError> {
    let flag = format!("--resume {}", dir.display());
    let fault = |e: std::io::Error| ConfigError(format!("{flag}: {e}"));
    let lock = crate::runlog::Lock::take(dir, "--resume").map_err(ConfigError)?;
    let root = dir.join("checkpoints");
    crate::checkpoint::clean(&root).map_err(fault)?;
    let found = crate::checkpoint::newest_valid(&root, dir)?;
    let (loaded, notes) = match found {
        Some((l, notes)) => {
            // Everything that could refuse the resume, before anything is changed.
            crate::checkpoint::check_model(learner.model(), &l.model, &l.dir)?;
            crate::train::fits(&l, cfg.seed, train_len)?;
            (Some(l), notes)
        }
        None => {
            // No checkpoint at all: only a run that finished no epoch may start over.
            let done = crate::runlog::read_jsonl(&dir.join("metrics.jsonl"))
                .map_err(|m| ConfigError(format!("{flag}: {m}")))?
                .len();
            if done > 0 {
                return Err(ConfigError(format!(
                    "{flag}: {done} finished epoch(s) in metrics.jsonl but no checkpoint to continue from; start a new run (--out) or restore checkpoints/"
                ))
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
    record.insert("time".into(), crate::runlog::now_iso().into());
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

/// What [`open_resumed`] found.
struct Resumed {
    log: RunLog,
    loaded: Option<crate::checkpoint::Loaded>,
    config: TrainConfig,
    skipped: Vec<String>,
}

/// Merges the `--config` file under the command line and validates both.
pub fn resolve(cli: TrainOptions) -> Result<TrainConfig, ConfigError> {
    cli.check(&|k| format!("--{}", k.replace('_', "-")))?;
    if let Some(dir) = cli.resume.clone() {
        if cli.config.is_some() {
            return Err(ConfigError(
                "--config: a resumed run takes its options from its own config.json; give changes as flags".into(),
            ));
        }
        if cli.out.as_ref().is_some_and(|o| *o != dir) {
            return Err(ConfigError(format!(
                "--out: a resumed run stays in its folder {}",
                dir.display()
            )));
        }
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(ConfigError(format!(
                "--resume {}: no config.json there (not a run directory)",
                dir.display()
            )));
        }
        let mut file = TrainOptions::from_run(&path, &dir)?;
        let (resumes, data) = (file.resumes.take(), file.data_sha256.take());
        file.check(&|k| format!("{}: {k}", path.display()))?;
        (file.resumes, file.data_sha256) = (resumes, data);
        // Options that would change the model, the data or the optimizer's state are
        // refused; the others override the run's from the resume on.
        let given = cli.given();
        let before = file.given();
        for key in crate::config::FIXED_ON_RESUME {
            if let Some(v) = given.get(*key)
                && before.get(*key) != Some(v)
            {
                return Err(ConfigError(format!(
                    "--{}: a resumed run keeps its {}; start a new run (--out) to change it",
                    key.replace('_', "-"),
                    match *key {
                        "data" | "val_fraction" | "seed" => "data and its split",
                        "optimizer" => "optimizer (its state is in the checkpoints)",
                        _ => "model",
                    }
                )));
            }
        }
        let overrides = crate::config::Overrides {
            epochs: cli.epochs,
            lr: cli.lr,
            batch_size: cli.batch_size,
            accumulation: cli.accumulation,
            momentum: cli.momentum,
            weight_decay: cli.weight_decay,
            given,
        };
        let mut merged = cli.or(file);
        merged.out = Some(dir);
        let mut cfg = merged.resolve()?;
        cfg.overrides = overrides;
        return Ok(cfg);
    }
    let merged = match &cli.config {
        Some(path) => {
            let file = TrainOptions::from_file(path)?;
            file.check(&|k| format!("{}: {k}", path.display()))?;
            cli.or(file)
        }
        None => cli,
    };
    merged.resolve()
}

/// The device `--device` names.
pub fn device(cfg: &TrainConfig) -> Result<Device, ConfigError> {
    match parse_device(&cfg.device).map_err(|m| ConfigError(format!("--device: {m}")))? {
        None => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        Some(n) => {
            // Under mpirun each rank takes the GPU of its index on its machine.
            let n = crate::dist::local_gpu(n);
            // candle's CUDA errors carry a backtrace after the message: keep the message.
            Device::new_cuda(n).map_err(|e| {
                let e = e.to_string();
                let msg = e.lines().next().unwrap_or_default();
                ConfigError(format!(
                    "--device {}: no usable CUDA device {n}: {msg}",
                    cfg.device
                ))
            })
        }
        #[cfg(not(feature = "cuda"))]
        Some(_) => Err(ConfigError(format!(
            "--device {}: this rudder was built without CUDA (cargo build --release --features cuda)",
            cfg.device
        ))),
    }
}

/// `rudder train`. A run stopped by a signal is the error that says how to resume it.
pub fn train(opts: TrainOptions) -> Result<Summary, AppError> {
    let cfg = resolve(opts)?;
    // Every rank loads the policies (a fault is the same exit 2 everywhere); rank 0
    // alone calls and watches them.
    let root = crate::dist::world().rank() == 0;
    let watch = if root { cfg.watch } else { WatchMode::Off };
    let mut policies = load_policies(&cfg.policy, &cfg.param, cfg.lr_scaling, watch)?;
    if let Some(mode) = policies.watching()
        && !cfg.quiet
    {
        crate::runlog::say(&format!(
            "rudder: watching {} policy file(s) for changes ({mode})",
            policies.watched_files().len()
        ));
    }
    let summary = train_with(&cfg, &mut policies)?;
    if summary.interrupted {
        let at = format!(
            "interrupted at epoch {} step {}",
            summary.epochs_run + 1,
            summary.steps
        );
        let here = cfg
            .out
            .join("checkpoints")
            .join(format!("step-{}", summary.steps));
        let how = match &summary.last_checkpoint {
            Some(last) if *last == here => {
                format!("continue with: rudder train --resume {}", cfg.out.display())
            }
            Some(last) => format!(
                "its checkpoint could not be written (see events.jsonl); continue from {} with: rudder train --resume {}",
                last.strip_prefix(&cfg.out).unwrap_or(last).display(),
                cfg.out.display()
            ),
            None => "no checkpoint could be written: the run cannot be continued".into(),
        };
        return Err(AppError::Interrupted(format!("{at}; {how}")));
    }
    Ok(summary)
}

/// Loads `specs` with `params` from the search path, watching their files in
/// `watch`; faults are exit code 2.
pub fn load_policies(
    specs: &[String],
    params: &[String],
    rule: Rescale,
    watch: WatchMode,
) -> Result<Policies, ConfigError> {
    let params = params
        .iter()
        .map(|p| {
            p.parse::<Param>()
                .map_err(|m| ConfigError(format!("--param {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Policies::builder()
        .policies(specs.iter().cloned())
        .params(params)
        .rescale(rule)
        .watch(watch)
        .messages(Messages::to(crate::runlog::say))
        .build()
        .map_err(|e| ConfigError(flagged(&e)))
}

/// A load error as the command line says it: naming `--policy`, `--param` or
/// `--watch`.
pub fn flagged(e: &LoadError) -> String {
    match (e.kind, &e.spec) {
        (LoadErrorKind::NotFound, Some(spec)) => format!("--policy {spec}: {}", e.message),
        (LoadErrorKind::Param, _) => format!("--param {}", e.message),
        (LoadErrorKind::Watch, _) => format!("--watch: {}", e.message),
        _ => e.to_string(),
    }
}

/// Trains as configured by `cfg`, steered by `controller`.
pub fn train_with(cfg: &TrainConfig, controller: &mut dyn Controller) -> Result<Summary, AppError> {
    let device = device(cfg)?;
    #[cfg(feature = "nccl")]
    if let Device::Cuda(d) = &device
        && crate::dist::world().size() > 1
        && crate::dist::nccl::get().is_none()
    {
        crate::dist::nccl::connect(crate::dist::world(), d)
            .map_err(|e| ConfigError(format!("--device {}: NCCL: {e}", cfg.device)))?;
    }
    let data = load_data(cfg, &device)?;
    with_threads(cfg.threads, || train_on(cfg, &data, controller))
}

/// Runs `f` with `threads` CPU threads for the tensor kernels: in a rayon pool of its
/// own, so the engine's products and candle's parallel loops run there (the process
/// environment is never changed; a sweep's trials each get their own pool). Where a
/// pool cannot be started, `f` runs on the global one.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("rudder-kernel-{i}"))
        // `f` runs on a worker, and calls the policies: it needs their stack.
        .stack_size(crate::policy::limits::POLICY_STACK)
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Loads the data set `cfg` names onto `device`.
pub fn load_data(cfg: &TrainConfig, device: &Device) -> Result<data::Data, AppError> {
    let regression = (cfg.task == crate::config::Task::Regression).then_some(cfg.targets);
    Ok(data::load_task(
        &cfg.source(),
        regression,
        cfg.val_fraction,
        cfg.seed,
        device,
    )?)
}

/// The model and learner for `cfg` on `data`: the CPU engine where it applies, else
/// candle's autograd. Returns the learner and the parameter count.
pub fn build_learner(
    cfg: &TrainConfig,
    data: &data::Data,
) -> Result<(Box<dyn Learner>, usize), AppError> {
    let device = data.train.x.device().clone();
    let io = model::Io {
        features: data.features,
        image: data.image,
        classes: data.classes,
    };
    let arch = cfg.arch()?;
    arch.check_size(io, cfg.batch_size).map_err(ConfigError)?;
    let model = model::build(&arch, io, cfg.seed, &device).map_err(ConfigError)?;
    let param_count = model.param_count();
    let kernels = if device.is_cpu() && cfg.kernels == Kernels::Rudder {
        Net::from_model(&arch, io, &model, cfg.threads).ok()
    } else {
        None
    };
    let learner: Box<dyn Learner> = match kernels {
        Some(net) => {
            let engine = Engine::new(
                model,
                net,
                optim::Flat::new(cfg.optimizer, cfg.hyper()).with_threads(cfg.threads),
                cfg.loss,
            );
            match &data.targets {
                Some(t) => Box::new(engine.regression(cfg.huber_delta, &t.std)),
                None => Box::new(engine),
            }
        }
        None => {
            let opt = optim::build(cfg.optimizer, model.params(), cfg.hyper())
                .map_err(TrainError::from)?;
            let graph = Graph::new(model, opt, cfg.loss);
            match &data.targets {
                Some(t) => Box::new(
                    graph
                        .regression(cfg.huber_delta, &t.std)
                        .map_err(TrainError::from)?,
                ),
                None => Box::new(graph),
            }
        }
    };
    Ok((learner, param_count))
}

/// A rank other than 0 of a many-process run: the same model and data order, the
/// checkpoint rank 0 resumes from (read from the run folder: several machines need it
/// on a shared file system), rank 0's decisions; it writes nothing.
fn follow(
    cfg: &TrainConfig,
    data: &data::Data,
    learner: Box<dyn Learner>,
    param_count: usize,
    controller: &mut dyn Controller,
) -> Result<Summary, AppError> {
    let world = crate::dist::world();
    let from: Option<std::path::PathBuf> = crate::dist::share(world, None)
        .map_err(TrainError::Rank)?
        .flatten();
    let mut trainer = Trainer::new(cfg, data, learner, param_count, RunLog::silent(&cfg.out));
    match from {
        Some(dir) => {
            let loaded = crate::checkpoint::read(&dir)?;
            trainer.resume_from(loaded, controller)?;
        }
        None if cfg.resume.is_some() => trainer.restart(),
        None => {}
    }
    Ok(trainer.run(controller)?)
}

/// Trains as configured by `cfg` on already loaded `data` (a sweep's trials share
/// theirs), in the caller's thread pool (see [`with_threads`]).
pub fn train_on(
    cfg: &TrainConfig,
    data: &data::Data,
    controller: &mut dyn Controller,
) -> Result<Summary, AppError> {
    let (learner, param_count) = build_learner(cfg, data)?;
    train_learner(cfg, data, learner, param_count, controller)
}

/// Trains `learner` (its model has `param_count` parameters) as configured by `cfg`
/// on `data`: the run folder, a resume, the trainer; what [`train_on`] and
/// [`crate::fit`] share.
pub fn train_learner(
    cfg: &TrainConfig,
    data: &data::Data,
    learner: Box<dyn Learner>,
    param_count: usize,
    controller: &mut dyn Controller,
) -> Result<Summary, AppError> {
    let world = crate::dist::world();
    if world.rank() != 0 {
        return follow(cfg, data, learner, param_count, controller);
    }
    let out_fault = |e: std::io::Error| ConfigError(format!("--out {}: {e}", cfg.out.display()));
    let (log, resume) = match &cfg.resume {
        Some(dir) => {
            if let Some(sha) = &cfg.data_sha256
                && *sha != data.fingerprint
            {
                return Err(ConfigError(format!(
                    "--resume {}: the data ({}) is not the data this run trained on (its SHA-256 differs); a resumed run keeps its data",
                    dir.display(),
                    crate::runlog::clip(&cfg.source().name())
                ))
                .into());
            }
            let mut r = open_resumed(cfg, dir, learner.as_ref(), data.train.len())?;
            // A run from before the fingerprint adopts its data's now.
            r.config
                .data_sha256
                .get_or_insert_with(|| data.fingerprint.clone());
            crate::runlog::write_config(&cfg.out, &r.config).map_err(out_fault)?;
            (r.log, Some((r.loaded, r.skipped)))
        }
        None => {
            let lock = crate::runlog::claim(&cfg.out, "--out").map_err(ConfigError)?;
            let mut written = cfg.clone();
            written.data_sha256 = Some(data.fingerprint.clone());
            crate::runlog::write_config(&cfg.out, &written).map_err(out_fault)?;
            (
                RunLog::create(&cfg.out, cfg.log_steps, lock).map_err(out_fault)?,
                None,
            )
        }
    };
    if world.size() > 1 {
        // The other ranks read the checkpoint this run resumes from (or none).
        let from = match &resume {
            Some((Some(l), _)) => Some(l.dir.clone()),
            _ => None,
        };
        crate::dist::share(world, Some(from)).map_err(TrainError::Rank)?;
    }
    if !cfg.quiet {
        let ranks = match world.size() {
            1 => String::new(),
            n => format!(" x {n} ranks ({})", world.name()),
        };
        crate::runlog::say(&format!(
            "rudder: {} on {} ({} train / {} val, {} classes), {} parameters{ranks}, run dir {}",
            cfg.model.name(),
            cfg.source().name(),
            data.train.len(),
            data.val.len(),
            data.classes,
            param_count,
            cfg.out.display()
        ));
    }
    // A value rudder changes is said, on its own line, quiet or not.
    let asked = cfg.overrides.batch_size.unwrap_or(cfg.batch_size);
    if asked > data.train.len() {
        crate::runlog::say(&format!(
            "rudder: --batch-size {asked} is more than the {} training examples; using {}",
            data.train.len(),
            data.train.len()
        ));
    }
    let mut trainer = Trainer::new(cfg, data, learner, param_count, log);
    match resume {
        Some((Some(loaded), skipped)) => {
            trainer.resume_from(loaded, controller)?;
            trainer.note_skipped(skipped);
        }
        Some((None, _)) => trainer.restart(),
        None => {}
    }
    if let Some(tb) = &cfg.tensorboard {
        let name = cfg.out.file_name().unwrap_or_default();
        trainer = trainer.with_tensorboard(&tb.join(name));
    }
    let summary = trainer.run(controller)?;
    if !cfg.quiet
        && !summary.interrupted
        && let Some(last) = &summary.last
    {
        // The numbers of the weights the run ends with: a restored epoch's, when a
        // rollback after the last epoch brought its weights back.
        let (what, line) = match &summary.restored {
            Some((e, r)) => (
                format!("; weights of epoch {} (restored)", e + 1),
                r.clone(),
            ),
            None => (String::new(), last.to_value()),
        };
        let get = |k: &str| line[k].as_f64().unwrap_or(f64::NAN);
        let scores = match cfg.task {
            crate::config::Task::Classification => format!("val_acc {:.4}", get("val_acc")),
            crate::config::Task::Regression => format!(
                "val_rmse {}, val_mae {}, val_r2 {:.4}",
                crate::runlog::fmt_num(get("val_rmse")),
                crate::runlog::fmt_num(get("val_mae")),
                get("val_r2")
            ),
        };
        crate::runlog::say(&format!(
            "done: {} epoch{}, {} steps{what}: {scores}, val_loss {:.4}; report: {}",
            summary.epochs_run,
            if summary.epochs_run == 1 { "" } else { "s" },
            summary.steps,
            get("val_loss"),
            cfg.out.join("report.html").display()
        ));
    }
    Ok(summary)
}
